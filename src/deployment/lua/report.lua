--[[
  report.lua — one heartbeat of one process into the deployment registry (src/deployment/redis.ts),
  in one call: its status and the index entry, its topics hash, and optionally every live status
  read back. What it writes is what the MULTI of earlier versions wrote (same keys, same values),
  so processes of both versions read each other's reports during a rolling deploy. Every key
  shares the hash tag `{deploy}` (one slot on a Redis Cluster, the other processes' status keys
  included).

  KEYS[1]  sb:{deploy}:ids            set of the ids ever seen
  KEYS[2]  sb:{deploy}:inst:<id>      this process's status (JSON), PX lease
  KEYS[3]  sb:{deploy}:topics:<id>    hash topic -> local sockets, PX lease

  ARGV[1]  the status JSON
  ARGV[2]  lease, ms
  ARGV[3]  the id (KEYS[2] ends with it: the other statuses' keys are KEYS[2]'s prefix + their id)
  ARGV[4]  "whole": the hash is replaced by the pairs below (none: deleted);
           "changes": the pairs are set and the fields after them deleted, when the hash is still
           there (the last report landed and Redis kept it)
  ARGV[5]  "1": read back every live status (ids whose status expired are dropped from the index)
  ARGV[6]  n, the number of topic/count pairs that follow
  ARGV[7 .. 6+2n]      topic, count, topic, count, …
  ARGV[7+2n .. #ARGV]  ("changes") topics to delete

  Returns {1, status, status, …}: written (the statuses only with ARGV[5] "1", in no order), or
  {0}: "changes" found the hash gone and wrote nothing of it — the caller sends "whole".
]]
local lease = tonumber(ARGV[2])
local n = tonumber(ARGV[6])
local last = 6 + 2 * n
-- unpack() is bounded by Lua's C stack (~8000 values): a hash of 10,000 topics goes in chunks.
local CHUNK = 1000

local function hset(from, to)
  for i = from, to, CHUNK do
    redis.call("HSET", KEYS[3], unpack(ARGV, i, math.min(i + CHUNK - 1, to)))
  end
end

if ARGV[4] == "changes" then
  if redis.call("PEXPIRE", KEYS[3], lease) == 0 then return {0} end
  hset(7, last)
  for i = last + 1, #ARGV, CHUNK do
    redis.call("HDEL", KEYS[3], unpack(ARGV, i, math.min(i + CHUNK - 1, #ARGV)))
  end
else
  redis.call("DEL", KEYS[3])
  if n > 0 then
    hset(7, last)
    redis.call("PEXPIRE", KEYS[3], lease)
  end
end
redis.call("SET", KEYS[2], ARGV[1], "PX", lease)
redis.call("SADD", KEYS[1], ARGV[3])

local reply = {1}
if ARGV[5] == "1" then
  local prefix = string.sub(KEYS[2], 1, #KEYS[2] - #ARGV[3])
  for _, id in ipairs(redis.call("SMEMBERS", KEYS[1])) do
    local status = redis.call("GET", prefix .. id)
    if status then reply[#reply + 1] = status else redis.call("SREM", KEYS[1], id) end
  end
end
return reply
