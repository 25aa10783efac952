-- ARGV: prefix, id → {'cancelled'} | {'active'} (the worker is told) | {'final', state} | {'missing'}
local id = ARGV[2]
local key = jkey(id)
local h = redis.call('HMGET', key, 'state', 'queue', 'member')
if not h[1] then return {'missing'} end
local t = now_ms()
if h[1] == 'waiting' or h[1] == 'delayed' then
  redis.call('ZREM', qkey(h[2], 'wait'), h[3])
  redis.call('ZREM', qkey(h[2], 'delayed'), id)
  redis.call('HSET', key, 'finished_at', t, 'cancel_requested', 1)
  set_state(id, h[2], h[1], 'cancelled', t)
  return {'cancelled'}
end
if h[1] == 'active' then
  redis.call('HSET', key, 'cancel_requested', 1)
  redis.call('PUBLISH', P .. ':cancel', id)
  return {'active'}
end
return {'final', h[1]}
