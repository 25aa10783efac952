-- ARGV: prefix, id, worker, progress_json → 1 if recorded (the job is still this worker's), else 0.
local h = redis.call('HMGET', jkey(ARGV[2]), 'state', 'worker')
if h[1] ~= 'active' or h[2] ~= ARGV[3] then return 0 end
redis.call('HSET', jkey(ARGV[2]), 'progress', ARGV[4])
return 1
