-- KEYS: base, then the job of each (id, lease token) pair. ARGV: lease_ms, id, token, id, token...
-- Extends the leases of jobs a worker runs; → flat list of (id, 'cancel' | 'lost') for jobs to stop.
local t = now_ms()
local out = {}
for i = 2, #ARGV, 2 do
  local id, token, jk = ARGV[i], ARGV[i + 1], KEYS[i / 2 + 1]
  local h = redis.call('HMGET', jk, 'state', 'lease', 'cancel_requested')
  if h[1] ~= 'active' or h[2] ~= token then
    table.insert(out, id)
    table.insert(out, 'lost')
  else
    redis.call('ZADD', key('active'), 'XX', t + tonumber(ARGV[1]), id)
    if h[3] == '1' then
      table.insert(out, id)
      table.insert(out, 'cancel')
    end
  end
end
return out
