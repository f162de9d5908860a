--[[
  lease.lua — takes, renews or gives up the lease on one webhook outbox shard. The holder of a
  shard's lease is the only process that sends that shard's events.

  KEYS[1]  sb:{wh:<shard>}:lease   string: the holder's consumer name, with a TTL

  ARGV[1]  "acquire", "renew" or "release"
  ARGV[2]  the caller's consumer name (one per process incarnation)
  ARGV[3]  lease length in milliseconds (acquire, renew)

  acquire: 1 when the caller holds the lease now (taken, or already its own: renewed), else 0.
  renew:   1 when the caller still held it (renewed), 0 when it was lost (expired, taken).
  release: 1 when the caller held it (deleted), else 0.
]]
local holder = redis.call("GET", KEYS[1])
if ARGV[1] == "acquire" then
  if holder == false then
    redis.call("SET", KEYS[1], ARGV[2], "PX", tonumber(ARGV[3]))
    return 1
  end
end
if holder ~= ARGV[2] then
  return 0
end
if ARGV[1] == "release" then
  redis.call("DEL", KEYS[1])
else
  redis.call("PEXPIRE", KEYS[1], tonumber(ARGV[3]))
end
return 1
