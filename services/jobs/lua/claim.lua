-- KEYS: base, the worker's last-claim record. ARGV: worker, claim token, lease_ms, the queue's throttle
-- (algorithm or '' for none, period_us, limit, capacity: the rate-limit service's rule for the queue), then
-- the names of the tasks the worker has.
-- Promotes due delayed jobs, then takes the first waiting job (lowest priority, then oldest) of a task the
-- worker has, unless the queue is paused or held or its throttle says not yet: ACTIVE, leased to the token
-- until now + lease. Jobs of other tasks stay waiting for a worker that has them.
-- → {id, message, deliveries, attempts, ready_at, now, task, more} or {'', next_due_ms or -1, now};
--   `more` is 0 when the queue has no waiting or delayed job left: the worker can sleep at once.
-- A re-sent claim (same token: its first reply was lost) answers the job the first one took.
local t = now_ms()
local worker, token = ARGV[1], ARGV[2]
local function claimed(id, more)
  local h = redis.call('HMGET', jkey(id), 'message', 'deliveries', 'attempts', 'ready_at', 'task')
  return {id, h[1], tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), t, h[5], more}
end
local last = redis.call('GET', KEYS[2])
if last then
  local sep = string.find(last, ' ', 1, true)
  if string.sub(last, 1, sep - 1) == token then
    local id = string.sub(last, sep + 1)
    local h = redis.call('HMGET', jkey(id), 'state', 'lease')
    if h[1] == 'active' and h[2] == token then return claimed(id, 1) end
    return {'', -1, t}
  end
end
local next_due = -1
local function later(due_at)
  if next_due < 0 or due_at < next_due then next_due = due_at end
end
local due = redis.call('ZRANGEBYSCORE', key('delayed'), '-inf', t, 'LIMIT', 0, 200)
for _, id in ipairs(due) do
  redis.call('ZREM', key('delayed'), id)
  local jk = jkey(id)
  if redis.call('HGET', jk, 'state') == 'delayed' then
    set_state(jk, id, 'delayed', 'waiting', t)
    local h = redis.call('HMGET', jk, 'priority', 'member')
    redis.call('ZADD', key('wait'), h[1], h[2])
  end
end
-- The tasks this worker has (ARGV[8]...): it takes only a job it can run, and leaves the rest to others.
local runnable = {}
for i = 8, #ARGV do runnable[ARGV[i]] = true end
local ready = redis.call('EXISTS', key('paused')) == 0
-- A task said its upstream is rate limiting: the whole queue holds until then.
local hold = redis.call('PTTL', key('hold'))
if ready and hold > 0 then
  later(t + hold)
  ready = false
end
-- The first waiting job (lowest priority, then oldest) among the first 100 that is of a task it has.
local chosen, chosen_member = nil, nil
if ready then
  for _, member in ipairs(redis.call('ZRANGE', key('wait'), 0, 99)) do
    local id = string.sub(member, 18)
    local h = redis.call('HMGET', jkey(id), 'state', 'task')
    if h[1] ~= 'waiting' then
      redis.call('ZREM', key('wait'), member)
    elseif runnable[h[2]] then
      chosen, chosen_member = id, member
      break
    end
  end
end
-- The queue's rule: a start consumes one from the queue's allowance, across every worker.
if chosen and ARGV[4] ~= '' then
  local decision = limit_decide(ARGV[4], key('throttle'), server_time_us(), tonumber(ARGV[5]),
    tonumber(ARGV[6]), tonumber(ARGV[7]), 1, false)
  if decision[1] == 0 then
    later(t + math.ceil(decision[4] / 1000))
    chosen = nil
  end
end
if chosen then
  local jk = jkey(chosen)
  redis.call('ZREM', key('wait'), chosen_member)
  redis.call('HINCRBY', jk, 'deliveries', 1)
  redis.call('HSET', jk, 'started_at', t, 'worker', worker, 'lease', token, 'last_worker', worker)
  record_minute(t, 'started', 'w', t - tonumber(redis.call('HGET', jk, 'ready_at') or t))
  set_state(jk, chosen, 'waiting', 'active', t)
  redis.call('ZADD', key('active'), t + tonumber(ARGV[3]), chosen)
  redis.call('SET', KEYS[2], token .. ' ' .. chosen, 'PX', 60000)
  local left = redis.call('ZCARD', key('wait'))
  -- More work left: wake another worker too.
  if left > 0 then wake() end
  local more = 0
  if left + redis.call('ZCARD', key('delayed')) > 0 then more = 1 end
  return claimed(chosen, more)
end
local first = redis.call('ZRANGE', key('delayed'), 0, 0, 'WITHSCORES')
if #first > 0 then later(tonumber(first[2])) end
return {'', next_due, t}
