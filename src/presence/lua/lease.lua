--[[
  lease.lua — renews an instance's presence lease, measured on Redis' clock (one clock for
  every machine).

  KEYS[1]  sb:{presence}:instances   sorted set instance -> lease deadline (ms, Redis time)

  ARGV[1]  instance id
  ARGV[2]  lease length in milliseconds

  Returns 1 when the instance was not registered (first heartbeat, or it was swept as dead,
  or Redis lost its data): the caller re-asserts its entries. 0 otherwise.
]]
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call("ZADD", KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
