-- ARGV: prefix, id → {'waiting'} | {'final', state} (not retryable from there) | {'missing'}
local id = ARGV[2]
local key = jkey(id)
local h = redis.call('HMGET', key, 'state', 'queue')
if not h[1] then return {'missing'} end
if h[1] ~= 'failed' and h[1] ~= 'cancelled' and h[1] ~= 'dead_lettered' then return {'final', h[1]} end
local t = now_ms()
local seq = redis.call('INCR', P .. ':seq')
redis.call('HSET', key, 'attempts', 0, 'deliveries', 0, 'cancel_requested', 0, 'run_at', t,
  'member', string.format('%016x', seq) .. ':' .. id)
redis.call('HDEL', key, 'finished_at', 'result', 'progress', 'started_at')
set_state(id, h[2], h[1], 'waiting', t)
requeue(id, h[2], t)
return {'waiting'}
