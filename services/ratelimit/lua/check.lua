-- KEYS[1]: the counter key. ARGV: algorithm, period_us, limit, capacity, cost, peek (0|1), shadow (0|1)
-- → {allowed, remaining, reset_after_us, retry_after_us}; in shadow mode a denial is counted, not enforced.
local decision = limit_decide(ARGV[1], KEYS[1], server_time_us(), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1')
if ARGV[7] == '1' and decision[1] == 0 then
  decision[1] = 1
  decision[4] = 0
end
return decision
