--[[
  revocation-reads.lua — the revocation reads of the handshakes of one event-loop turn, in one
  command (stores/revocation-reads.ts). Read-only. One Redis only: on a cluster the keys of one
  script must share a hash slot, and these do not.

  KEYS[i]  the key of read i: a revocation sorted set, or a legacy `sb:revoked:<sid>` string
  ARGV[i]  "z" .. member: ZSCORE KEYS[i] member; "e": EXISTS KEYS[i]

  Returns one reply per read, in order: the score as a string or nil (ZSCORE), 0 or 1 (EXISTS).
]]
local out = {}
for i = 1, #KEYS do
  local op = ARGV[i]
  if op == "e" then
    out[i] = redis.call("EXISTS", KEYS[i])
  else
    out[i] = redis.call("ZSCORE", KEYS[i], string.sub(op, 2))
  end
end
return out
