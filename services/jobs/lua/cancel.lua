-- KEYS: base, job, its errors, the call's token. ARGV: id, cancel channel
-- → {'cancelled', job} | {'active', job} (the worker is told) | {'final', state} | {'missing'}
local remembered_reply = remembered(KEYS[4])
if remembered_reply then return remembered_reply end
local jk, id = KEYS[2], ARGV[1]
local h = redis.call('HMGET', jk, 'state', 'member')
if not h[1] then return {'missing'} end
local t = now_ms()
if h[1] == 'waiting' or h[1] == 'delayed' then
  redis.call('ZREM', key('wait'), h[2])
  redis.call('ZREM', key('delayed'), id)
  redis.call('HSET', jk, 'finished_at', t, 'cancel_requested', 1)
  set_state(jk, id, h[1], 'cancelled', t)
  return remember(KEYS[4], {'cancelled', snapshot(jk, KEYS[3])})
end
if h[1] == 'active' then
  redis.call('HSET', jk, 'cancel_requested', 1)
  redis.call('HINCRBY', jk, 'version', 1)
  redis.call('PUBLISH', ARGV[2], id)
  return remember(KEYS[4], {'active', snapshot(jk, KEYS[3])})
end
return remember(KEYS[4], {'final', h[1]})
