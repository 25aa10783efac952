-- KEYS: base, job, its errors, the call's token. ARGV: id
-- A delayed job becomes waiting now, at its place in the wait set (priority, then submit order).
-- → {'waiting', job} | {'final', state} (not delayed) | {'missing'}; a re-sent call answers the same.
local remembered_reply = remembered(KEYS[4])
if remembered_reply then return remembered_reply end
local jk, id = KEYS[2], ARGV[1]
local state = redis.call('HGET', jk, 'state')
if not state then return {'missing'} end
if state ~= 'delayed' then return remember(KEYS[4], {'final', state}) end
local t = now_ms()
redis.call('ZREM', key('delayed'), id)
redis.call('HSET', jk, 'run_at', t)
set_state(jk, id, 'delayed', 'waiting', t)
requeue(jk, t)
return remember(KEYS[4], {'waiting', snapshot(jk, KEYS[3])})
