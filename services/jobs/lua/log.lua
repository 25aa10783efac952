-- KEYS: base, job, its log. ARGV: lease token, max_lines, level, message
-- Appends a line the running task wrote, while the job is still this lease's; past max_lines the line is
-- only counted (`log_dropped`). → 1 kept, 2 counted as dropped, 0 not this lease's job any more.
local h = redis.call('HMGET', KEYS[2], 'state', 'lease', 'attempts')
if h[1] ~= 'active' or h[2] ~= ARGV[1] then return 0 end
if redis.call('LLEN', KEYS[3]) >= tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[2], 'log_dropped', 1)
  return 2
end
local line = cjson.encode({t = now_ms(), l = ARGV[3], m = ARGV[4], a = tonumber(h[3]) + 1})
redis.call('RPUSH', KEYS[3], line)
return 1
