-- KEYS: base, then the job of each (id, lease token) pair in ARGV after the worker: ARGV: worker, id, token...
-- A stopping worker hands its unfinished jobs back: WAITING at their old place, the delivery not counted.
-- It also hands back a job it cannot run (a task it lacks), so that another worker takes it.
local t = now_ms()
local released = 0
for i = 2, #ARGV, 2 do
  local id, token, jk = ARGV[i], ARGV[i + 1], KEYS[i / 2 + 1]
  local h = redis.call('HMGET', jk, 'state', 'lease')
  if h[1] == 'active' and h[2] == token then
    redis.call('ZREM', key('active'), id)
    redis.call('HINCRBY', jk, 'deliveries', -1)
    set_state(jk, id, 'active', 'waiting', t)
    requeue(jk, t)
    released = released + 1
  end
end
return released
