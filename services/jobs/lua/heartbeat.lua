-- ARGV: prefix, worker, lease_ms, then (queue, id) pairs of the jobs `worker` runs.
-- Extends their leases; → flat list of (id, 'cancel' | 'lost') for jobs to stop.
local t = now_ms()
local out = {}
for i = 4, #ARGV, 2 do
  local q, id = ARGV[i], ARGV[i + 1]
  local h = redis.call('HMGET', jkey(id), 'state', 'worker', 'cancel_requested')
  if h[1] ~= 'active' or h[2] ~= ARGV[2] then
    table.insert(out, id)
    table.insert(out, 'lost')
  else
    redis.call('ZADD', qkey(q, 'active'), 'XX', t + tonumber(ARGV[3]), id)
    if h[3] == '1' then
      table.insert(out, id)
      table.insert(out, 'cancel')
    end
  end
end
return out
