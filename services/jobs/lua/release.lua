-- ARGV: prefix, worker, id...
-- A stopping worker hands its unfinished jobs back: WAITING at their old place, the delivery not counted.
local t = now_ms()
local released = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local h = redis.call('HMGET', jkey(id), 'state', 'worker', 'queue')
  if h[1] == 'active' and h[2] == ARGV[2] then
    redis.call('ZREM', qkey(h[3], 'active'), id)
    redis.call('HINCRBY', jkey(id), 'deliveries', -1)
    set_state(id, h[3], 'active', 'waiting', t)
    requeue(id, h[3], t)
    released = released + 1
  end
end
return released
