-- ARGV: prefix, id, queue, task, payload, message, priority, max_attempts, delay_ms
-- → {1, state, created_at} for a new job; {0, queue, task} when the id exists (idempotent submit).
local id, q = ARGV[2], ARGV[3]
local key = jkey(id)
if redis.call('EXISTS', key) == 1 then
  local existing = redis.call('HMGET', key, 'queue', 'task')
  return {0, existing[1], existing[2]}
end
local t = now_ms()
local seq = redis.call('INCR', P .. ':seq')
local member = string.format('%016x', seq) .. ':' .. id
local delay = tonumber(ARGV[9])
local state = 'waiting'
if delay > 0 then state = 'delayed' end
redis.call('HSET', key, 'id', id, 'queue', q, 'task', ARGV[4], 'payload', ARGV[5], 'message', ARGV[6],
  'priority', ARGV[7], 'max_attempts', ARGV[8], 'attempts', 0, 'deliveries', 0, 'created_at', t,
  'run_at', t + delay, 'ready_at', t + delay, 'member', member, 'state', state)
redis.call('ZADD', qkey(q, 'all'), t, id)
redis.call('ZADD', qkey(q, 's:' .. state), t, id)
if delay > 0 then
  redis.call('ZADD', qkey(q, 'delayed'), t + delay, id)
else
  redis.call('ZADD', qkey(q, 'wait'), ARGV[7], member)
end
wake(q)
return {1, state, t}
