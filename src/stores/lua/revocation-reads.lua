--[[
  revocation-reads.lua — the revocation reads of the handshakes of one event-loop turn, in one
  command (stores/revocation-reads.ts). Read-only. One Redis only: on a cluster the keys of one
  script must share a hash slot, and these do not.

  The batch travels compactly: ioredis encodes every argument and decodes every reply element on
  its own, and per element that was most of the batch's cost in the server (bench/README.md).

  KEYS     the batch's keys, each once (one revocation shard serves many reads)
  ARGV[1]  the reads, space-separated: "z<k>" is ZSCORE KEYS[k] <the next member>, "e<k>" is EXISTS KEYS[k]
  ARGV[2…] the members of the ZSCORE reads, in order

  Returns one string: the reads' replies in order, joined by "\n" — a score, "1" for a key that
  exists, "" for none (no member, no key). A score never contains "\n" or is empty.
]]
local out, m = {}, 1
for op, k in string.gmatch(ARGV[1], "(%a)(%d+)") do
  local key = KEYS[tonumber(k)]
  if op == "e" then
    out[#out + 1] = redis.call("EXISTS", key) == 1 and "1" or ""
  else
    m = m + 1
    out[#out + 1] = redis.call("ZSCORE", key, ARGV[m]) or ""
  end
end
return table.concat(out, "\n")
