-- ARGV: prefix, queue, max_deliveries, limit, keep_errors
-- Jobs whose lease ran out (their worker died or hung): back to WAITING, or DEAD_LETTERED once they were
-- delivered max_deliveries times. → {requeued, dead_lettered ids...}
local q = ARGV[2]
local t = now_ms()
local expired = redis.call('ZRANGEBYSCORE', qkey(q, 'active'), '-inf', t, 'LIMIT', 0, tonumber(ARGV[4]))
local out = {0}
for _, id in ipairs(expired) do
  redis.call('ZREM', qkey(q, 'active'), id)
  local h = redis.call('HMGET', jkey(id), 'state', 'deliveries', 'attempts', 'started_at')
  if h[1] == 'active' then
    redis.call('HSET', jkey(id), 'worker', '')
    if tonumber(h[2]) >= tonumber(ARGV[3]) then
      local message = 'its worker stopped responding on each of ' .. h[2] .. ' deliveries'
      record_error(id, attempt_error({type = 'DeliveryLimitExceeded', message = message, retryable = false},
        t, tonumber(h[3]), h[4]), tonumber(ARGV[5]))
      redis.call('HSET', jkey(id), 'finished_at', t)
      set_state(id, q, 'active', 'dead_lettered', t)
      table.insert(out, id)
    else
      set_state(id, q, 'active', 'waiting', t)
      requeue(id, q, t)
      out[1] = out[1] + 1
    end
  end
end
return out
