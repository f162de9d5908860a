--[[
  revocation-reads.lua — the revocation reads of the handshakes of one event-loop turn, in one
  command (stores/revocation-reads.ts). Read-only. One Redis only: on a cluster the keys of one
  script must share a hash slot, and these do not.

  The batch travels compactly: ioredis encodes every argument and decodes every reply element on
  its own, and per element that was most of the batch's cost in the server (bench/README.md).
  The reads are one character each and read by position: parsing a richer encoding (key indices,
  to send each key once) cost Redis more than it saved the server.

  KEYS[i]  the key of read i
  ARGV[1]  one character per read: "z" is ZSCORE KEYS[i] <the next member>, "e" is EXISTS KEYS[i]
  ARGV[2…] the members of the ZSCORE reads, in order

  Returns one string: the reads' replies in order, joined by "\n" — a score, "1" for a key that
  exists, "" for none (no member, no key). A score is never empty and never holds "\n".
]]
local ops, out, m = ARGV[1], {}, 1
for i = 1, #ops do
  if string.byte(ops, i) == 101 then -- "e"
    out[i] = redis.call("EXISTS", KEYS[i]) == 1 and "1" or ""
  else
    m = m + 1
    out[i] = redis.call("ZSCORE", KEYS[i], ARGV[m]) or ""
  end
end
return table.concat(out, "\n")
