--[[
  leave.lua — removes one connection from a topic's presence; reports whether its user left.

  KEYS[1]  sb:{p:<topic>}:conns   hash connectionId -> "<instance>\n<user JSON>"
  KEYS[2]  sb:{p:<topic>}:users   hash userId -> number of the user's connections in the topic

  ARGV[1]  connection id
  ARGV[2]  user id

  Returns 1 when it was the user's last connection in the topic (a leave), 0 otherwise
  (including a connection that was not there: nothing to report twice).
]]
if redis.call("HDEL", KEYS[1], ARGV[1]) == 0 then
  return 0
end
if redis.call("HINCRBY", KEYS[2], ARGV[2], -1) <= 0 then
  redis.call("HDEL", KEYS[2], ARGV[2])
  return 1
end
return 0
