--[[
  expired.lua — lists instances whose presence lease ran out, or forgets one of them.

  KEYS[1]  sb:{presence}:instances        sorted set instance -> lease deadline (ms, Redis time)
  KEYS[2]  sb:{presence}:inst:<id>:topics (only with ARGV[1] = "forget") set of the instance's topics

  ARGV[1]  "list" or "forget"
  ARGV[2]  with "list": how many to return at most; with "forget": the instance id

  "list" returns up to ARGV[2] expired instance ids. "forget" removes the instance and its topic
  set only if its lease is still expired (it may have come back meanwhile); returns 1 if removed.
]]
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == "list" then
  return redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now, "LIMIT", 0, tonumber(ARGV[2]))
end
local deadline = redis.call("ZSCORE", KEYS[1], ARGV[2])
if deadline and tonumber(deadline) <= now then
  redis.call("ZREM", KEYS[1], ARGV[2])
  redis.call("DEL", KEYS[2])
  return 1
end
return 0
