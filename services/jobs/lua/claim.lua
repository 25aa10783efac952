-- ARGV: prefix, worker, then per queue, in the order to try them: queue, lease_ms, and its throttle
-- (algorithm or '' for none, period_us, limit, capacity) — the rate-limit service's rule for the queue.
-- Promotes due delayed jobs, then takes the first waiting job (lowest priority, then oldest) of the
-- first unpaused queue that has one: ACTIVE, leased to `worker` until now + lease.
-- → {id, queue, message, deliveries, attempts, ready_at, now, task, more} or {'', next_due_ms or -1, now};
--   `more` is 0 when none of the queues has a waiting or delayed job left: the worker can sleep at once.
local t = now_ms()
local next_due = -1
local function later(due_at)
  if next_due < 0 or due_at < next_due then next_due = due_at end
end
for i = 3, #ARGV, 6 do
  local q, lease, algorithm = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local due = redis.call('ZRANGEBYSCORE', qkey(q, 'delayed'), '-inf', t, 'LIMIT', 0, 200)
  for _, id in ipairs(due) do
    redis.call('ZREM', qkey(q, 'delayed'), id)
    if redis.call('HGET', jkey(id), 'state') == 'delayed' then
      set_state(id, q, 'delayed', 'waiting', t)
      local h = redis.call('HMGET', jkey(id), 'priority', 'member')
      redis.call('ZADD', qkey(q, 'wait'), h[1], h[2])
    end
  end
  local ready = redis.call('EXISTS', qkey(q, 'paused')) == 0 and redis.call('ZCARD', qkey(q, 'wait')) > 0
  -- A task said its upstream is rate limiting: the whole queue holds until then.
  local hold = redis.call('PTTL', qkey(q, 'hold'))
  if ready and hold > 0 then
    later(t + hold)
    ready = false
  end
  -- The queue's rule: a start consumes one from the queue's allowance, across every worker.
  if ready and algorithm ~= '' then
    local decision = limit_decide(algorithm, qkey(q, 'throttle'), server_time_us(), tonumber(ARGV[i + 3]),
      tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), 1, false)
    if decision[1] == 0 then
      later(t + math.ceil(decision[4] / 1000))
      ready = false
    end
  end
  if ready then
    while true do
      local popped = redis.call('ZPOPMIN', qkey(q, 'wait'))
      if #popped == 0 then break end
      local id = string.sub(popped[1], 18)
      local key = jkey(id)
      if redis.call('HGET', key, 'state') == 'waiting' then
        local deliveries = redis.call('HINCRBY', key, 'deliveries', 1)
        redis.call('HSET', key, 'started_at', t, 'worker', ARGV[2])
        set_state(id, q, 'waiting', 'active', t)
        redis.call('ZADD', qkey(q, 'active'), t + lease, id)
        -- More work left: wake another worker too.
        if redis.call('ZCARD', qkey(q, 'wait')) > 0 then wake(q) end
        local more = 0
        for j = 3, #ARGV, 6 do
          if redis.call('ZCARD', qkey(ARGV[j], 'wait')) + redis.call('ZCARD', qkey(ARGV[j], 'delayed')) > 0 then
            more = 1
            break
          end
        end
        local h = redis.call('HMGET', key, 'message', 'attempts', 'ready_at', 'task')
        return {id, q, h[1], deliveries, tonumber(h[2]), tonumber(h[3]), t, h[4], more}
      end
    end
  end
  local first = redis.call('ZRANGE', qkey(q, 'delayed'), 0, 0, 'WITHSCORES')
  if #first > 0 then later(tonumber(first[2])) end
end
return {'', next_due, t}
