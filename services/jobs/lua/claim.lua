-- ARGV: prefix, worker, then (queue, lease_ms) pairs in the order to try them.
-- Promotes due delayed jobs, then takes the first waiting job (lowest priority, then oldest) of the
-- first unpaused queue that has one: ACTIVE, leased to `worker` until now + lease.
-- → {id, queue, message, deliveries, attempts, ready_at, now, task} or {'', next_due_ms or -1, now}
local t = now_ms()
local next_due = -1
for i = 3, #ARGV, 2 do
  local q, lease = ARGV[i], tonumber(ARGV[i + 1])
  local due = redis.call('ZRANGEBYSCORE', qkey(q, 'delayed'), '-inf', t, 'LIMIT', 0, 200)
  for _, id in ipairs(due) do
    redis.call('ZREM', qkey(q, 'delayed'), id)
    if redis.call('HGET', jkey(id), 'state') == 'delayed' then
      set_state(id, q, 'delayed', 'waiting', t)
      local h = redis.call('HMGET', jkey(id), 'priority', 'member')
      redis.call('ZADD', qkey(q, 'wait'), h[1], h[2])
    end
  end
  if redis.call('EXISTS', qkey(q, 'paused')) == 0 then
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
        local h = redis.call('HMGET', key, 'message', 'attempts', 'ready_at', 'task')
        return {id, q, h[1], deliveries, tonumber(h[2]), tonumber(h[3]), t, h[4]}
      end
    end
  end
  local first = redis.call('ZRANGE', qkey(q, 'delayed'), 0, 0, 'WITHSCORES')
  if #first > 0 then
    local due_at = tonumber(first[2])
    if next_due < 0 or due_at < next_due then next_due = due_at end
  end
end
return {'', next_due, t}
