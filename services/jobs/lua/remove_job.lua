-- KEYS: base, job, its errors, the call's token. ARGV: id
-- Removes a job that is not running, with its errors, logs, timeline and index entries.
-- → {'removed', state} | {'final', 'active'} (cancel it first) | {'missing'}; a re-sent call answers the same.
local remembered_reply = remembered(KEYS[4])
if remembered_reply then return remembered_reply end
local jk, id = KEYS[2], ARGV[1]
local h = redis.call('HMGET', jk, 'state', 'member')
if not h[1] then return {'missing'} end
if h[1] == 'active' then return remember(KEYS[4], {'final', h[1]}) end
if h[2] then redis.call('ZREM', key('wait'), h[2]) end
redis.call('ZREM', key('delayed'), id)
redis.call('ZREM', key('s:' .. h[1]), id)
forget(id)
return remember(KEYS[4], {'removed', h[1]})
