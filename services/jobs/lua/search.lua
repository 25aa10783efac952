-- KEYS: base, then the index sets a job must be in (each scored by creation time: `all`, a state's
--   `ix:state:`, a task's, a word's).
-- ARGV: low, high (creation-time bounds: a number or '-inf' for low; '(' .. number or '+inf' for high,
--   exclusive), cursor score ('' for the first page), cursor id, limit, budget
-- The jobs in every set, newest created first, after the cursor:
-- → {total, total_exact (1|0), {id, created_at, ...} up to `limit`, resume score or '', resume id}
-- Read only and bounded whatever the sizes: the smallest set is walked newest first, each id checked
-- against the others (ZSCORE), examining at most `budget` ids for the page and as many for the count.
-- A page cut short by the budget says where to resume (everything above it has been examined). The count
-- is exact for one set (ZCOUNT) or when the walk reached the end, else a lower bound.
local limit, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local low, high = ARGV[1], ARGV[2]
local has_cursor = ARGV[3] ~= ''
local cursor_score, cursor_id = tonumber(ARGV[3]), ARGV[4]
local sets = {}
for i = 2, #KEYS do table.insert(sets, KEYS[i]) end
local driver, driver_size = nil, 0
for _, name in ipairs(sets) do
  local size = redis.call('ZCARD', name)
  if driver == nil or size < driver_size then driver, driver_size = name, size end
end
local function matches(id)
  for _, name in ipairs(sets) do
    if name ~= driver and not redis.call('ZSCORE', name, id) then return false end
  end
  return true
end
-- Walks the driver newest first from `top`; `visit(id, score)` → true to stop.
-- → 'end' (walked it all), 'stopped', or 'budget'.
local CHUNK = 500
local function walk(top, visit)
  local examined, offset = 0, 0
  while examined < budget do
    local entries = redis.call('ZREVRANGEBYSCORE', driver, top, low, 'WITHSCORES', 'LIMIT', offset,
      math.min(CHUNK, budget - examined))
    if #entries == 0 then return 'end' end
    offset = offset + #entries / 2
    for i = 1, #entries, 2 do
      examined = examined + 1
      if visit(entries[i], tonumber(entries[i + 1])) then return 'stopped' end
    end
  end
  return 'budget'
end
local out, last = {}, nil
local top = high
if has_cursor then top = ARGV[3] end
local how = walk(top, function(id, score)
  last = {score, id}
  -- Equal scores come newest-id first; what the last page returned (id >= its last) is skipped.
  if has_cursor and score == cursor_score and id >= cursor_id then return false end
  if matches(id) then
    table.insert(out, id)
    table.insert(out, tostring(score))
    if #out >= 2 * limit then return true end
  end
  return false
end)
local resume_score, resume_id = '', ''
if how == 'budget' and last then resume_score, resume_id = tostring(last[1]), last[2] end
local total, exact = 0, 1
if #sets == 1 then
  total = redis.call('ZCOUNT', driver, low, high)
else
  if walk(high, function(id)
    if matches(id) then total = total + 1 end
    return false
  end) ~= 'end' then exact = 0 end
end
return {total, exact, out, resume_score, resume_id}
