-- Keeps an accepted batch's events for its jobs, after reserving its event names within the bound.
-- KEYS[1] the analytics key base. ARGV: batch id, events (JSON), event count, TTL (s), max distinct
-- names, consumers (jobs that read the batch), then the batch's distinct names.
-- Replies {outcome, n}: {'stored', count}; {'exists', count} (the batch id was sent before, kept as
-- first sent); {'applied', count} (it was counted already); {'too_many_names', known}.
local base = KEYS[1]
local batch_id = ARGV[1]
local batch_key = base .. 'batch:' .. batch_id
local existing = redis.call('HGET', batch_key, 'count')
if existing then
  return {'exists', tonumber(existing)}
end
local applied = redis.call('GET', base .. 'applied:' .. batch_id)
if applied then
  return {'applied', tonumber(applied)}
end
local known = base .. 'names:known'
local new = {}
for i = 7, #ARGV do
  if redis.call('SISMEMBER', known, ARGV[i]) == 0 then
    new[#new + 1] = ARGV[i]
  end
end
if #new > 0 then
  local have = redis.call('SCARD', known)
  if have + #new > tonumber(ARGV[5]) then
    return {'too_many_names', have}
  end
  redis.call('SADD', known, unpack(new))
end
redis.call('HSET', batch_key, 'events', ARGV[2], 'count', ARGV[3], 'pending', ARGV[6])
redis.call('EXPIRE', batch_key, tonumber(ARGV[4]))
return {'stored', tonumber(ARGV[3])}
