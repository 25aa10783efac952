-- ARGV: prefix, queue, state, max_age_ms (-1: any age), keep_count (-1: any count), limit
-- Removes finished jobs of `state`: older than max_age_ms, and the oldest beyond keep_count.
local q, state = ARGV[2], ARGV[3]
local index = qkey(q, 's:' .. state)
local limit = tonumber(ARGV[6])
local victims = {}
local max_age, keep = tonumber(ARGV[4]), tonumber(ARGV[5])
if keep >= 0 then
  local excess = redis.call('ZCARD', index) - keep
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', index, 0, math.min(excess, limit) - 1)) do victims[id] = true end
  end
end
if max_age >= 0 then
  local cutoff = now_ms() - max_age
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', cutoff, 'LIMIT', 0, limit)) do
    victims[id] = true
  end
end
local removed = 0
for id, _ in pairs(victims) do
  redis.call('DEL', jkey(id), jkey(id) .. ':errors')
  redis.call('ZREM', index, id)
  redis.call('ZREM', qkey(q, 'all'), id)
  removed = removed + 1
end
return removed
