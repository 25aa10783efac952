-- KEYS: base, job. ARGV: lease token, progress_json → 1 if recorded (the job is still this lease's), else 0.
local h = redis.call('HMGET', KEYS[2], 'state', 'lease')
if h[1] ~= 'active' or h[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'progress', ARGV[2])
return 1
