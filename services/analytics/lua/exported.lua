-- Records that a batch's events were exported and releases them (deleted once no job needs them).
-- KEYS[1] the analytics key base. ARGV: batch id, the marker's TTL (s). Replies 1 now, 0 before.
local base = KEYS[1]
local marker = base .. 'exported:' .. ARGV[1]
if redis.call('EXISTS', marker) == 1 then
  return 0
end
redis.call('SET', marker, '1', 'EX', tonumber(ARGV[2]))
local batch_key = base .. 'batch:' .. ARGV[1]
if redis.call('EXISTS', batch_key) == 1 and redis.call('HINCRBY', batch_key, 'pending', -1) <= 0 then
  redis.call('DEL', batch_key)
end
return 1
