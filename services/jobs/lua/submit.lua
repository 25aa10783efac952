-- KEYS: base, job. ARGV: id, queue, task, payload, message, priority, max_attempts, delay_ms, the payload's
--   search words (space-separated)
-- → {1, state, created_at} for a new job; {0, task} when the id exists on this queue (idempotent submit).
local jk, id = KEYS[2], ARGV[1]
if redis.call('EXISTS', jk) == 1 then
  return {0, redis.call('HGET', jk, 'task')}
end
local t = now_ms()
local seq = redis.call('INCR', key('seq'))
local member = string.format('%016x', seq) .. ':' .. id
local delay = tonumber(ARGV[8])
local state = 'waiting'
if delay > 0 then state = 'delayed' end
redis.call('HSET', jk, 'id', id, 'queue', ARGV[2], 'task', ARGV[3], 'payload', ARGV[4], 'message', ARGV[5],
  'priority', ARGV[6], 'max_attempts', ARGV[7], 'attempts', 0, 'deliveries', 0, 'created_at', t,
  'run_at', t + delay, 'ready_at', t + delay, 'member', member, 'state', state, 'version', 1,
  'ix_payload', ARGV[9] or '')
redis.call('ZADD', B .. 'ix:task:' .. ARGV[3], t, id)
redis.call('ZADD', B .. 'ix:state:' .. state, t, id)
index_words('payload', id, t, ARGV[9])
note_transition(jk, state, t, '')
redis.call('ZADD', key('all'), t, id)
redis.call('ZADD', key('s:' .. state), t, id)
if delay > 0 then
  redis.call('ZADD', key('delayed'), t + delay, id)
else
  redis.call('ZADD', key('wait'), ARGV[6], member)
end
wake()
return {1, state, t}
