--[[
  senders.lua — the live webhook senders of the deployment, for sharing the shards between them.
  Deadlines are measured on Redis' clock (one clock for every machine).

  KEYS[1]  sb:{wh}:senders   sorted set consumer name -> deadline (ms, Redis time)

  ARGV[1]  "beat" or "leave"
  ARGV[2]  the caller's consumer name
  ARGV[3]  with "beat": how long the caller counts as live without another beat (ms)

  beat:  forgets senders past their deadline, renews the caller; returns how many are live.
  leave: removes the caller; returns 0.
]]
if ARGV[1] == "leave" then
  redis.call("ZREM", KEYS[1], ARGV[2])
  return 0
end
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now)
redis.call("ZADD", KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
return redis.call("ZCARD", KEYS[1])
