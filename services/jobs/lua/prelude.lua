-- Shared by every job script. KEYS[1] is the queue's key base, `<prefix>:{<queue>}:` (the layout is in
-- services/jobs/keys.py): every key a script touches starts with it, so all share the queue's hash tag.
-- Keys the caller names come in KEYS; keys of jobs a script finds in an index are the base .. 'job:' .. id.
-- Times are Redis server time in milliseconds.
local B = KEYS[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function key(name) return B .. name end
local function jkey(id) return B .. 'job:' .. id end
local function ekey(id) return B .. 'errors:' .. id end
local function wake() redis.call('ZADD', key('marker'), 0, 'm') end
-- Moves a job between the per-state indexes (score: when it entered the state); counts the transition.
local function set_state(jk, id, from, to, t)
  redis.call('ZREM', key('s:' .. from), id)
  redis.call('ZADD', key('s:' .. to), t, id)
  redis.call('HSET', jk, 'state', to)
  redis.call('HINCRBY', jk, 'version', 1)
end
-- Back into the wait set at its original place (priority, then submit order).
local function requeue(jk, t)
  local h = redis.call('HMGET', jk, 'priority', 'member')
  redis.call('ZADD', key('wait'), h[1], h[2])
  redis.call('HSET', jk, 'ready_at', t, 'worker', '', 'lease', '')
  wake()
end
local function attempt_error(fields, t, attempts, started_at)
  fields['occurred_at'] = t
  fields['attempt'] = attempts
  fields['started_at'] = tonumber(started_at)
  return cjson.encode(fields)
end
local function record_error(jk, ek, encoded, keep)
  redis.call('RPUSH', ek, encoded)
  redis.call('LTRIM', ek, -keep, -1)
  redis.call('HSET', jk, 'error', encoded)
end
-- An operator's transition answers a re-sent call with the first call's reply (kept briefly under its
-- token), so a call repeated after a lost reply neither applies twice nor is refused as if it had failed.
local function remembered(token_key)
  local reply = redis.call('GET', token_key)
  if reply then return cjson.decode(reply) end
  return nil
end
local function remember(token_key, reply)
  redis.call('SET', token_key, cjson.encode(reply), 'PX', 60000)
  return reply
end
-- The job as the transition left it: its hash (less the message) and its attempt errors.
local function snapshot(jk, ek)
  local fields = redis.call('HGETALL', jk)
  local out = {}
  for i = 1, #fields, 2 do
    if fields[i] ~= 'message' then
      table.insert(out, fields[i])
      table.insert(out, fields[i + 1])
    end
  end
  return {out, redis.call('LRANGE', ek, 0, -1)}
end
