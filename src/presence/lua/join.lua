--[[
  join.lua — adds one connection to a topic's presence; reports whether its user just joined.

  KEYS[1]  sb:{p:<topic>}:conns   hash connectionId -> "<instance>\n<user JSON>"
  KEYS[2]  sb:{p:<topic>}:users   hash userId -> number of the user's connections in the topic

  ARGV[1]  connection id
  ARGV[2]  user id
  ARGV[3]  "<instance>\n<user JSON>" (the instance whose lease keeps the entry alive)

  Returns 1 when this is the user's first connection in the topic (a join, on any machine),
  0 otherwise (another connection of the user is there, or this connection already was).
]]
if redis.call("HSETNX", KEYS[1], ARGV[1], ARGV[3]) == 0 then
  return 0
end
if redis.call("HINCRBY", KEYS[2], ARGV[2], 1) == 1 then
  return 1
end
return 0
