-- KEYS: base, job, its errors. ARGV: id, worker, lease token, ok (1|0), result_json, error_json,
--   retryable (1|0), retry_delay_ms, keep_errors, hold_ms (> 0: the task was rate limited upstream; the job
--   waits again and the queue holds that long), the error's search words (space-separated)
-- Ends an attempt: COMPLETED; or after an error CANCELLED (if asked), DELAYED/WAITING for a retry, FAILED.
-- → {state, attempts, now}, or {'stale', state} when the job is no longer this lease's. A re-sent finish of
--   the same lease answers what the first one recorded.
local jk, ek, id, token = KEYS[2], KEYS[3], ARGV[1], ARGV[3]
local h = redis.call('HMGET', jk, 'state', 'lease', 'max_attempts', 'cancel_requested', 'started_at',
  'outcome_lease', 'outcome_state', 'outcome_attempts', 'worker')
local t = now_ms()
if h[6] == token then return {h[7], tonumber(h[8]), t} end
if h[1] ~= 'active' or h[2] ~= token then return {'stale', h[1] or ''} end
redis.call('ZREM', key('active'), id)
local function outcome(state, attempts)
  redis.call('HSET', jk, 'outcome_lease', token, 'outcome_state', state, 'outcome_attempts', attempts)
  return {state, attempts, t}
end
local hold = tonumber(ARGV[10] or 0)
if hold > 0 then
  -- Not a failure: no attempt and no delivery counted, and nothing on the queue starts before then.
  redis.call('HINCRBY', jk, 'deliveries', -1)
  redis.call('SET', key('hold'), 1, 'PX', hold)
  set_state(jk, id, 'active', 'waiting', t)
  requeue(jk, t)
  return outcome('waiting', tonumber(redis.call('HGET', jk, 'attempts')))
end
local attempts = redis.call('HINCRBY', jk, 'attempts', 1)
redis.call('HSET', jk, 'worker', '', 'lease', '')
local state
if ARGV[4] == '1' then
  state = 'completed'
  redis.call('HSET', jk, 'result', ARGV[5], 'finished_at', t)
  record_minute(t, 'completed', 'r', t - tonumber(h[5]))
else
  local failure = cjson.decode(ARGV[6])
  failure['worker'] = h[9]
  record_error(jk, ek, attempt_error(failure, t, attempts, h[5]), tonumber(ARGV[9]))
  reindex_error(jk, id, ARGV[11] or '')
  record_minute(t, 'failed', 'r', t - tonumber(h[5]))
  local delay = tonumber(ARGV[8])
  if h[4] == '1' then
    state = 'cancelled'
  elseif ARGV[7] == '1' and attempts < tonumber(h[3]) then
    if delay > 0 then
      state = 'delayed'
      redis.call('HSET', jk, 'run_at', t + delay, 'ready_at', t + delay)
      redis.call('ZADD', key('delayed'), t + delay, id)
      wake()
    else
      state = 'waiting'
      requeue(jk, t)
    end
  else
    state = 'failed'
  end
  if state == 'cancelled' or state == 'failed' then redis.call('HSET', jk, 'finished_at', t) end
end
set_state(jk, id, 'active', state, t)
return outcome(state, attempts)
