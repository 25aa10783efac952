-- KEYS: base, the state's index. ARGV: max_age_ms (-1: any age), keep_count (-1: any count), limit
-- Removes finished jobs of the index's state: older than max_age_ms, and the oldest beyond keep_count, at
-- most `limit` at once. → how many were removed (the caller repeats while that is `limit`).
local index = KEYS[2]
local limit = tonumber(ARGV[3])
local victims = {}
local count = 0
local max_age, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
if keep >= 0 then
  local excess = redis.call('ZCARD', index) - keep
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', index, 0, math.min(excess, limit) - 1)) do
      victims[id] = true
      count = count + 1
    end
  end
end
if max_age >= 0 and count < limit then
  local cutoff = now_ms() - max_age
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', cutoff, 'LIMIT', 0, limit - count)) do
    victims[id] = true
  end
end
local removed = 0
for id, _ in pairs(victims) do
  forget(id)
  redis.call('ZREM', index, id)
  removed = removed + 1
end
return removed
