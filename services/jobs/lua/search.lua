-- KEYS: base, then n_must index keys (task, words: each must hold the job; scored by creation time), then
--   n_states state indexes (one must hold it).
-- ARGV: n_must, n_states, low, high (creation-time bounds: a number or '-inf' for low; '(' .. number or
--   '+inf' for high, exclusive), cursor score ('' for the first page), cursor id, limit, small, budget
-- The matching jobs, newest created first, after the cursor:
-- → {total, total_exact (1|0), {id, created_at, ...} up to `limit`, resume score or '', resume id}
-- Read only, no scratch keys, bounded work whatever the sizes:
-- - when one of the sets a job must be in holds at most `small` ids (a must key or the states together),
--   every id of it is checked and sorted here: the page and the total are exact;
-- - else the smallest creation-ordered set (a must key, or every job) is walked newest first, each id
--   checked against the rest, examining at most `budget` ids for the page (a page cut short says where
--   to resume: everything above that has been examined) and `budget` for the count, which is exact when
--   a formula gives it or the count walk reached the end, else a lower bound.
local n_must, n_states = tonumber(ARGV[1]), tonumber(ARGV[2])
local limit, small, budget = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local function bound(text)
  if text == '-inf' then return -math.huge, false end
  if text == '+inf' then return math.huge, false end
  if string.sub(text, 1, 1) == '(' then return tonumber(string.sub(text, 2)), true end
  return tonumber(text), false
end
local lo = bound(ARGV[3])
local hi, hi_open = bound(ARGV[4])
local function in_range(score) return score >= lo and (score < hi or (score == hi and not hi_open)) end
local has_cursor = ARGV[5] ~= ''
local cursor_score, cursor_id = tonumber(ARGV[5]), ARGV[6]
local function after_cursor(score, id)
  return not has_cursor or score < cursor_score or (score == cursor_score and id < cursor_id)
end
local must, wanted, state_keys = {}, {}, {}
for i = 2, 1 + n_must do table.insert(must, KEYS[i]) end
for i = 2 + n_must, 1 + n_must + n_states do
  table.insert(state_keys, KEYS[i])
  wanted[string.sub(KEYS[i], #B + 3)] = true
end
-- The driver: the smallest must key, or every job.
local driver, driver_size = key('all'), redis.call('ZCARD', key('all'))
for position, name in ipairs(must) do
  local size = redis.call('ZCARD', name)
  if position == 1 or size < driver_size then driver, driver_size = name, size end
end
local states_size = 0
for _, name in ipairs(state_keys) do states_size = states_size + redis.call('ZCARD', name) end
local function in_other_musts(id)
  for _, name in ipairs(must) do
    if name ~= driver and not redis.call('ZSCORE', name, id) then return false end
  end
  return true
end
local function state_ok(id)
  return n_states == 0 or wanted[redis.call('HGET', jkey(id), 'state') or ''] == true
end
local function newer(a, b)
  if a[1] ~= b[1] then return a[1] > b[1] end
  return a[2] > b[2]
end
local function page_of(found)
  table.sort(found, newer)
  local out = {}
  for _, entry in ipairs(found) do
    if #out >= 2 * limit then break end
    if after_cursor(entry[1], entry[2]) then
      table.insert(out, entry[2])
      table.insert(out, tostring(entry[1]))
    end
  end
  return out
end
-- Small enough to check every id.
if n_states > 0 and states_size <= small and states_size <= driver_size then
  local found = {}
  for _, name in ipairs(state_keys) do
    for _, id in ipairs(redis.call('ZRANGE', name, 0, -1)) do
      local created = redis.call('ZSCORE', key('all'), id)
      if created then
        created = tonumber(created)
        local in_driver = driver == key('all') or redis.call('ZSCORE', driver, id)
        if in_range(created) and in_driver and in_other_musts(id) then table.insert(found, {created, id}) end
      end
    end
  end
  return {#found, 1, page_of(found), '', ''}
end
if driver_size <= small then
  local found = {}
  local entries = redis.call('ZRANGEBYSCORE', driver, ARGV[3], ARGV[4], 'WITHSCORES')
  for i = 1, #entries, 2 do
    local id = entries[i]
    if in_other_musts(id) and state_ok(id) then table.insert(found, {tonumber(entries[i + 1]), id}) end
  end
  return {#found, 1, page_of(found), '', ''}
end
-- Walk the driver newest first from `top`, examining at most `budget` ids; `visit(id, score)` → true to stop.
local CHUNK = 500
local function walk(top, visit)
  local examined, offset = 0, 0
  while examined < budget do
    local entries = redis.call('ZREVRANGEBYSCORE', driver, top, ARGV[3], 'WITHSCORES', 'LIMIT', offset,
      math.min(CHUNK, budget - examined))
    if #entries == 0 then return true, nil end
    offset = offset + #entries / 2
    for i = 1, #entries, 2 do
      examined = examined + 1
      local id, score = entries[i], tonumber(entries[i + 1])
      if visit(id, score) then return false, {score, id} end
    end
  end
  return false, 'budget'
end
local function matches(id) return in_other_musts(id) and state_ok(id) end
-- The page.
local out = {}
local last = nil
local top = ARGV[4]
if has_cursor then top = ARGV[5] end
local finished, stop = walk(top, function(id, score)
  last = {score, id}
  if after_cursor(score, id) and matches(id) then
    table.insert(out, id)
    table.insert(out, tostring(score))
    if #out >= 2 * limit then return true end
  end
  return false
end)
local resume_score, resume_id = '', ''
if stop == 'budget' and last then resume_score, resume_id = tostring(last[1]), last[2] end
-- The total.
local total, exact = 0, 1
if n_states == 0 and #must <= 1 then
  total = redis.call('ZCOUNT', driver, ARGV[3], ARGV[4])
elseif #must == 0 and ARGV[3] == '-inf' and ARGV[4] == '+inf' then
  total = states_size
else
  local reached_end = walk(ARGV[4], function(id)
    if matches(id) then total = total + 1 end
    return false
  end)
  if not reached_end then exact = 0 end
end
return {total, exact, out, resume_score, resume_id}
