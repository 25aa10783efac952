-- Applies one batch's aggregates and records that it did, atomically: a batch is counted exactly once,
-- however often its job is delivered. KEYS[1] the analytics key base. ARGV: batch id, the applied
-- marker's TTL (s), the delta (JSON from services/analytics/aggregation.py):
--   c: {key suffix, increment, expire at (epoch s)}; u: {key suffix, expire at, {user ids}};
--   n: {event name, total increment, last seen (epoch ms)}.
-- Then the batch's events are released (deleted once no job needs them). Replies 1 when applied now,
-- 0 when it had been before.
local base = KEYS[1]
local batch_id = ARGV[1]
local marker = base .. 'applied:' .. batch_id
if redis.call('EXISTS', marker) == 1 then
  return 0
end
local delta = cjson.decode(ARGV[3])
for _, c in ipairs(delta.c) do
  local key = base .. c[1]
  redis.call('INCRBY', key, c[2])
  redis.call('EXPIREAT', key, c[3])
end
for _, u in ipairs(delta.u) do
  local key = base .. u[1]
  local users = u[3]
  for i = 1, #users, 500 do
    redis.call('PFADD', key, unpack(users, i, math.min(i + 499, #users)))
  end
  redis.call('EXPIREAT', key, u[2])
end
local totals = base .. 'names:total'
local seen = base .. 'names:seen'
for _, n in ipairs(delta.n) do
  redis.call('HINCRBY', totals, n[1], n[2])
  local last = tonumber(redis.call('HGET', seen, n[1]) or '0')
  if n[3] > last then
    redis.call('HSET', seen, n[1], string.format('%d', n[3]))
  end
end
local batch_key = base .. 'batch:' .. batch_id
local count = redis.call('HGET', batch_key, 'count') or '0'
redis.call('SET', marker, count, 'EX', tonumber(ARGV[2]))
if redis.call('EXISTS', batch_key) == 1 and redis.call('HINCRBY', batch_key, 'pending', -1) <= 0 then
  redis.call('DEL', batch_key)
end
return 1
