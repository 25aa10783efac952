-- ARGV: prefix, id, worker, ok (1|0), result_json, error_json, retryable (1|0), retry_delay_ms, keep_errors,
--       hold_ms (> 0: the task was rate limited upstream; the job waits again and the queue holds that long)
-- Ends an attempt: COMPLETED; or after an error CANCELLED (if asked), DELAYED/WAITING for a retry, FAILED.
-- → {state, attempts, now}, or {'stale', state} when the job is no longer this worker's.
local id = ARGV[2]
local key = jkey(id)
local h = redis.call('HMGET', key, 'state', 'worker', 'queue', 'max_attempts', 'cancel_requested', 'started_at')
if h[1] ~= 'active' or h[2] ~= ARGV[3] then return {'stale', h[1] or ''} end
local q = h[3]
local t = now_ms()
redis.call('ZREM', qkey(q, 'active'), id)
local hold = tonumber(ARGV[10] or 0)
if hold > 0 then
  -- Not a failure: no attempt and no delivery counted, and nothing on the queue starts before then.
  redis.call('HINCRBY', key, 'deliveries', -1)
  redis.call('SET', qkey(q, 'hold'), 1, 'PX', hold)
  set_state(id, q, 'active', 'waiting', t)
  requeue(id, q, t)
  return {'waiting', tonumber(redis.call('HGET', key, 'attempts')), t}
end
local attempts = redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'worker', '')
local state
if ARGV[4] == '1' then
  state = 'completed'
  redis.call('HSET', key, 'result', ARGV[5], 'finished_at', t)
else
  record_error(id, attempt_error(cjson.decode(ARGV[6]), t, attempts, h[6]), tonumber(ARGV[9]))
  local delay = tonumber(ARGV[8])
  if h[5] == '1' then
    state = 'cancelled'
  elseif ARGV[7] == '1' and attempts < tonumber(h[4]) then
    if delay > 0 then
      state = 'delayed'
      redis.call('HSET', key, 'run_at', t + delay, 'ready_at', t + delay)
      redis.call('ZADD', qkey(q, 'delayed'), t + delay, id)
      wake(q)
    else
      state = 'waiting'
      requeue(id, q, t)
    end
  else
    state = 'failed'
  end
  if state == 'cancelled' or state == 'failed' then redis.call('HSET', key, 'finished_at', t) end
end
set_state(id, q, 'active', state, t)
return {state, attempts, t}
