-- The limiter's algorithms, shared by the rate-limit service's check and the jobs queue's throttle.
-- Times are Redis server time in microseconds. Each returns
-- {allowed (0|1), remaining, reset_after_us, retry_after_us}.

local function server_time_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- GCRA: one request every period/limit, up to `capacity` at once. The key holds the theoretical arrival
-- time (TAT) of the next request; `peek` reads without consuming.
local function gcra(key, now, period_us, limit, capacity, cost, peek)
  local interval = period_us / limit
  local tolerance = interval * capacity
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - tolerance
  if peek or now < allow_at then
    local remaining = math.floor((tolerance - (tat - now)) / interval)
    if remaining < 0 then remaining = 0 end
    if peek then
      -- When the next single request would be allowed.
      local next_at = tat + interval - tolerance
      local wait = next_at - now
      if wait < 0 then wait = 0 end
      return {1, remaining, tat - now, wait}
    end
    return {0, remaining, tat - now, allow_at - now}
  end
  local ttl_ms = math.ceil((new_tat - now) / 1000)
  if ttl_ms < 1 then ttl_ms = 1 end
  redis.call('SET', key, string.format('%.0f', new_tat), 'PX', ttl_ms)
  local remaining = math.floor((tolerance - (new_tat - now)) / interval)
  if remaining < 0 then remaining = 0 end
  return {1, remaining, new_tat - now, 0}
end

-- Fixed window (envoyproxy/ratelimit's semantics): at most `limit` per aligned window of `period_us`.
local function fixed_window(key, now, period_us, limit, cost, peek)
  local window_start = math.floor(now / period_us) * period_us
  local window_key = key .. ':' .. string.format('%.0f', window_start)
  local reset_after = window_start + period_us - now
  local count
  if peek then
    count = tonumber(redis.call('GET', window_key) or 0)
  else
    count = redis.call('INCRBY', window_key, cost)
    if count == cost then redis.call('PEXPIRE', window_key, math.ceil(period_us / 1000) + 1000) end
  end
  local remaining = limit - count
  if remaining < 0 then remaining = 0 end
  if peek or count <= limit then return {1, remaining, reset_after, 0} end
  return {0, 0, reset_after, reset_after}
end

-- algorithm: 'gcra' | 'fixed_window'
local function limit_decide(algorithm, key, now, period_us, limit, capacity, cost, peek)
  if algorithm == 'fixed_window' then
    return fixed_window(key, now, period_us, limit, cost, peek)
  end
  return gcra(key, now, period_us, limit, capacity, cost, peek)
end
