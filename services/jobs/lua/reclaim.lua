-- KEYS: base. ARGV: max_deliveries, limit, keep_errors
-- Jobs whose lease ran out (their worker died or hung): back to WAITING, or DEAD_LETTERED once they were
-- delivered max_deliveries times. → {requeued, dead_lettered ids...}. Run again, it finds nothing more.
local t = now_ms()
local expired = redis.call('ZRANGEBYSCORE', key('active'), '-inf', t, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {0}
for _, id in ipairs(expired) do
  redis.call('ZREM', key('active'), id)
  local jk = jkey(id)
  local h = redis.call('HMGET', jk, 'state', 'deliveries', 'attempts', 'started_at', 'worker')
  if h[1] == 'active' then
    redis.call('HSET', jk, 'worker', '', 'lease', '')
    if tonumber(h[2]) >= tonumber(ARGV[1]) then
      local message = 'its worker stopped responding on each of ' .. h[2] .. ' deliveries'
      record_error(jk, ekey(id), attempt_error({type = 'DeliveryLimitExceeded', message = message,
        retryable = false, worker = h[5]}, t, tonumber(h[3]), h[4]), tonumber(ARGV[3]))
      reindex_error(jk, id, ascii_words('DeliveryLimitExceeded ' .. message))
      redis.call('HSET', jk, 'finished_at', t)
      set_state(jk, id, 'active', 'dead_lettered', t)
      table.insert(out, id)
    else
      set_state(jk, id, 'active', 'waiting', t)
      requeue(jk, t)
      out[1] = out[1] + 1
    end
  end
end
return out
