-- Shared by every job script. KEYS[1] is the queue's key base, `<prefix>:{<queue>}:` (the layout is in
-- services/jobs/keys.py): every key a script touches starts with it, so all share the queue's hash tag.
-- Keys the caller names come in KEYS; keys of jobs a script finds in an index are the base .. 'job:' .. id.
-- Times are Redis server time in milliseconds.
local B = KEYS[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function key(name) return B .. name end
local function jkey(id) return B .. 'job:' .. id end
local function ekey(id) return B .. 'errors:' .. id end
local function wake() redis.call('ZADD', key('marker'), 0, 'm') end
local KEEP_TRANSITIONS = 100
-- One entry of the job's timeline (its `timeline` field, `;`-separated, the last KEEP_TRANSITIONS): the
-- state it entered, when, and the worker that took or ran it. A field, not a list of its own: a key per
-- job costs more memory than the entries.
local function note_transition(jk, to, t, worker)
  local entry = to .. ' ' .. t .. ' ' .. (worker or '')
  local line = redis.call('HGET', jk, 'timeline')
  if line and line ~= '' then
    line = line .. ';' .. entry
    local _, separators = string.gsub(line, ';', ';')
    while separators >= KEEP_TRANSITIONS do
      line = string.sub(line, string.find(line, ';', 1, true) + 1)
      separators = separators - 1
    end
  else
    line = entry
  end
  redis.call('HSET', jk, 'timeline', line)
end
-- Moves a job between the per-state indexes (score: when it entered the state); counts the transition.
local function set_state(jk, id, from, to, t)
  redis.call('ZREM', key('s:' .. from), id)
  redis.call('ZADD', key('s:' .. to), t, id)
  redis.call('HSET', jk, 'state', to)
  redis.call('HINCRBY', jk, 'version', 1)
  -- The search index's copy of the state index, by creation time (see below).
  redis.call('ZREM', B .. 'ix:state:' .. from, id)
  redis.call('ZADD', B .. 'ix:state:' .. to, redis.call('HGET', jk, 'created_at'), id)
  local worker = ''
  if from == 'active' or to == 'active' then worker = redis.call('HGET', jk, 'last_worker') or '' end
  note_transition(jk, to, t, worker)
end
-- The search index (docs/key-layout.md): zsets of job ids scored by creation time, one per state, one per
-- task and one per word of the payload or of the last error. The words a job is filed under are kept on it
-- (`ix_payload`, `ix_error`: space-separated) so that removing it, or a new error, takes them out again.
local function words(text)
  local out = {}
  for word in string.gmatch(text or '', '%S+') do table.insert(out, word) end
  return out
end
-- The words of an ASCII text as services/jobs/search_index.py makes them (for errors written here).
local function ascii_words(text)
  local seen, out = {}, {}
  for word in string.gmatch(string.lower(text), '[%w_]+') do
    word = string.sub(word, 1, 32)
    if #word >= 2 and not seen[word] then
      seen[word] = true
      table.insert(out, word)
    end
  end
  return table.concat(out, ' ')
end
local function index_words(kind, id, created_at, text)
  for _, word in ipairs(words(text)) do redis.call('ZADD', B .. 'ix:' .. kind .. ':' .. word, created_at, id) end
end
local function unindex_words(kind, id, text)
  for _, word in ipairs(words(text)) do redis.call('ZREM', B .. 'ix:' .. kind .. ':' .. word, id) end
end
-- A job's last error is what its error words describe: the new error's words replace the old ones.
local function reindex_error(jk, id, text)
  local h = redis.call('HMGET', jk, 'ix_error', 'created_at')
  unindex_words('error', id, h[1])
  index_words('error', id, tonumber(h[2]), text)
  redis.call('HSET', jk, 'ix_error', text)
end
-- Deletes a job and everything filed under it, except its place in the state/wait/delayed indexes that
-- the caller knows. Run twice, the second finds no hash and does nothing.
local function forget(id)
  local jk = jkey(id)
  local h = redis.call('HMGET', jk, 'task', 'ix_payload', 'ix_error', 'state')
  if h[1] then redis.call('ZREM', B .. 'ix:task:' .. h[1], id) end
  if h[4] then redis.call('ZREM', B .. 'ix:state:' .. h[4], id) end
  unindex_words('payload', id, h[2])
  unindex_words('error', id, h[3])
  redis.call('ZREM', key('all'), id)
  redis.call('DEL', jk, ekey(id), B .. 'logs:' .. id)
end
-- The per-minute metrics history (services/jobs/queue_history.py reads it; the bounds are the same):
-- a hash per queue and minute of counters and latency histograms, kept a bit over 24 hours.
local HISTORY_TTL_MS = 26 * 3600 * 1000
local LATENCY_BOUNDS_MS = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, 120000,
  300000, 600000, 1800000, 3600000}
local function latency_bucket(ms)
  for i, bound in ipairs(LATENCY_BOUNDS_MS) do
    if ms <= bound then return i end
  end
  return #LATENCY_BOUNDS_MS + 1
end
-- Counts one event of the minute (`started`, `completed`, `failed`) and files its latency under `histogram`
-- (`w`: ready to start, `r`: run time).
local function record_minute(t, counter, histogram, ms)
  local mk = B .. 'm:' .. (t - t % 60000)
  redis.call('HINCRBY', mk, counter, 1)
  if ms and ms >= 0 then redis.call('HINCRBY', mk, histogram .. latency_bucket(ms), 1) end
  redis.call('PEXPIRE', mk, HISTORY_TTL_MS)
end
-- Back into the wait set at its original place (priority, then submit order).
local function requeue(jk, t)
  local h = redis.call('HMGET', jk, 'priority', 'member')
  redis.call('ZADD', key('wait'), h[1], h[2])
  redis.call('HSET', jk, 'ready_at', t, 'worker', '', 'lease', '')
  wake()
end
local function attempt_error(fields, t, attempts, started_at)
  fields['occurred_at'] = t
  fields['attempt'] = attempts
  fields['started_at'] = tonumber(started_at)
  return cjson.encode(fields)
end
local function record_error(jk, ek, encoded, keep)
  redis.call('RPUSH', ek, encoded)
  redis.call('LTRIM', ek, -keep, -1)
  redis.call('HSET', jk, 'error', encoded)
end
-- An operator's transition answers a re-sent call with the first call's reply (kept briefly under its
-- token), so a call repeated after a lost reply neither applies twice nor is refused as if it had failed.
local function remembered(token_key)
  local reply = redis.call('GET', token_key)
  if reply then return cjson.decode(reply) end
  return nil
end
local function remember(token_key, reply)
  redis.call('SET', token_key, cjson.encode(reply), 'PX', 60000)
  return reply
end
-- The job as the transition left it: its hash (less the message) and its attempt errors.
local function snapshot(jk, ek)
  local fields = redis.call('HGETALL', jk)
  local out = {}
  for i = 1, #fields, 2 do
    if fields[i] ~= 'message' then
      table.insert(out, fields[i])
      table.insert(out, fields[i + 1])
    end
  end
  return {out, redis.call('LRANGE', ek, 0, -1)}
end
