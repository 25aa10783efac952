-- KEYS: base, job, its errors, the call's token. ARGV: id
-- → {'waiting', job} | {'final', state} (not retryable from there) | {'missing'}
local remembered_reply = remembered(KEYS[4])
if remembered_reply then return remembered_reply end
local jk, id = KEYS[2], ARGV[1]
local state = redis.call('HGET', jk, 'state')
if not state then return {'missing'} end
if state ~= 'failed' and state ~= 'cancelled' and state ~= 'dead_lettered' then
  return remember(KEYS[4], {'final', state})
end
local t = now_ms()
local seq = redis.call('INCR', key('seq'))
redis.call('HSET', jk, 'attempts', 0, 'deliveries', 0, 'cancel_requested', 0, 'run_at', t,
  'member', string.format('%016x', seq) .. ':' .. id)
redis.call('HDEL', jk, 'finished_at', 'result', 'progress', 'started_at')
set_state(jk, id, state, 'waiting', t)
requeue(jk, t)
return remember(KEYS[4], {'waiting', snapshot(jk, KEYS[3])})
