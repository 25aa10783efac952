-- KEYS: base, a scratch key, a second scratch key, then n_must index keys (task, words: all must hold the
--   job), then n_states state indexes (any may hold it).
-- ARGV: n_must, n_states, min created_at, max created_at (Redis score bounds, '(' for exclusive), cursor
--   score ('' for the first page), cursor id, limit
-- The matching jobs, newest created first: → {total matching in the range, {id, created_at, id, ...}} with
-- up to `limit` entries after the cursor. The index keys are scored by creation time and the state indexes
-- by something else, so the intersection keeps the former's scores (weights 0 for states, AGGREGATE MAX).
-- The scratch keys live only inside this script.
local n_must, n_states = tonumber(ARGV[1]), tonumber(ARGV[2])
local sources, weights = {}, {}
for i = 4, 3 + n_must do
  table.insert(sources, KEYS[i])
  table.insert(weights, 1)
end
if #sources == 0 then
  table.insert(sources, key('all'))
  table.insert(weights, 1)
end
if n_states == 1 then
  table.insert(sources, KEYS[4 + n_must])
  table.insert(weights, 0)
elseif n_states > 1 then
  local states = {}
  for i = 4 + n_must, 3 + n_must + n_states do table.insert(states, KEYS[i]) end
  redis.call('ZUNIONSTORE', KEYS[3], #states, unpack(states))
  table.insert(sources, KEYS[3])
  table.insert(weights, 0)
end
local src = sources[1]
if #sources > 1 then
  local args = {'ZINTERSTORE', KEYS[2], #sources}
  for _, name in ipairs(sources) do table.insert(args, name) end
  table.insert(args, 'WEIGHTS')
  for _, weight in ipairs(weights) do table.insert(args, weight) end
  table.insert(args, 'AGGREGATE')
  table.insert(args, 'MAX')
  redis.call(unpack(args))
  src = KEYS[2]
end
local low, high = ARGV[3], ARGV[4]
local total = redis.call('ZCOUNT', src, low, high)
local limit = tonumber(ARGV[7])
local top, skip_from = high, nil
if ARGV[5] ~= '' then
  top = ARGV[5]
  limit = limit + redis.call('ZCOUNT', src, ARGV[5], ARGV[5])
  skip_from = ARGV[6]
end
local raw = redis.call('ZREVRANGEBYSCORE', src, top, low, 'WITHSCORES', 'LIMIT', 0, limit)
local out = {}
local cursor_score = tonumber(ARGV[5])
for i = 1, #raw, 2 do
  local id, score = raw[i], tonumber(raw[i + 1])
  -- Equal scores come newest-id first; what the last page returned (id >= its last) is skipped.
  if skip_from == nil or score < cursor_score or id < skip_from then
    table.insert(out, id)
    table.insert(out, raw[i + 1])
  end
end
redis.call('DEL', KEYS[2], KEYS[3])
return {total, out}
