--[[
  sweep.lua — removes every connection of one instance from a topic's presence (the instance
  crashed, or is closing). Atomic: when several processes sweep the same instance, each entry is
  removed, and each resulting leave reported, by exactly one of them.

  KEYS[1]  sb:{p:<topic>}:conns   hash connectionId -> "<instance>\n<user JSON>"
  KEYS[2]  sb:{p:<topic>}:users   hash userId -> number of the user's connections in the topic

  ARGV[1]  the instance id

  Returns the user JSON of every user whose last connection this removed (each a leave).
]]
local prefix = ARGV[1] .. "\n"
local entries = redis.call("HGETALL", KEYS[1])
local left = {}
for i = 1, #entries, 2 do
  local value = entries[i + 1]
  if string.sub(value, 1, #prefix) == prefix then
    redis.call("HDEL", KEYS[1], entries[i])
    local userJson = string.sub(value, #prefix + 1)
    local userId = cjson.decode(userJson).id
    if redis.call("HINCRBY", KEYS[2], userId, -1) <= 0 then
      redis.call("HDEL", KEYS[2], userId)
      left[#left + 1] = userJson
    end
  end
end
return left
