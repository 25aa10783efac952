-- Shared by every script: ARGV[1] is the key prefix; times are Redis server time in milliseconds.
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function jkey(id) return P .. ':job:' .. id end
local function qkey(q, name) return P .. ':q:' .. q .. ':' .. name end
local function wake(q) redis.call('ZADD', qkey(q, 'marker'), 0, 'm') end
-- Moves a job between the per-state indexes (score: when it entered the state).
local function set_state(id, q, from, to, t)
  redis.call('ZREM', qkey(q, 's:' .. from), id)
  redis.call('ZADD', qkey(q, 's:' .. to), t, id)
  redis.call('HSET', jkey(id), 'state', to)
end
-- Back into the wait set at its original place (priority, then submit order).
local function requeue(id, q, t)
  local h = redis.call('HMGET', jkey(id), 'priority', 'member')
  redis.call('ZADD', qkey(q, 'wait'), h[1], h[2])
  redis.call('HSET', jkey(id), 'ready_at', t, 'worker', '')
  wake(q)
end
local function attempt_error(fields, t, attempts, started_at)
  fields['occurred_at'] = t
  fields['attempt'] = attempts
  fields['started_at'] = tonumber(started_at)
  return cjson.encode(fields)
end
local function record_error(id, encoded, keep)
  redis.call('RPUSH', jkey(id) .. ':errors', encoded)
  redis.call('LTRIM', jkey(id) .. ':errors', -keep, -1)
  redis.call('HSET', jkey(id), 'error', encoded)
end
