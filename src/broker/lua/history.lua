--[[
  history.lua — a topic's position, and with `since` every publication after it, read
  atomically with respect to publish.lua.

  KEYS[1]  sb:{<topic>}:meta   hash {seq, epoch, w} (see publish.lua)
  KEYS[2]  sb:{<topic>}:log    stream of message frames, entry id "<seq>-0", field "f"

  ARGV[1]  a fresh random epoch, used when the topic has no meta, or meta written by another
           primary (see publish.lua): the topic then gets that epoch at seq 0 (and ARGV[2]'s TTL),
           so that a reader and the next publisher agree on the epoch
  ARGV[2]  history TTL in seconds
  ARGV[3]  since.seq, or "" without since
  ARGV[4]  since.epoch, or "" without since
  ARGV[5]  history size: at most this many publications are replayed (a stream written with a
           larger size before a restart may hold more)

  Returns {seq, epoch, recovered, frame1, frame2, ...}: recovered is 1 when since is in the
  current epoch and every publication after since.seq is still kept (then the frames of
  since.seq+1 .. seq follow, in order); 0 otherwise, with no frames. XRANGE silently starts
  at the oldest kept entry when since.seq+1 was trimmed, so the first id and the count are
  checked here.
]]

local writer = primaryId()
local meta = redis.call("HMGET", KEYS[1], "seq", "epoch", "w")
local seq = tonumber(meta[1])
local epoch = meta[2]
if epoch and seq and not meta[3] then
  redis.call("HSET", KEYS[1], "w", writer) -- written before `w` existed: adopt it (see publish.lua)
  meta[3] = writer
end
if not epoch or not seq or meta[3] ~= writer then
  epoch = ARGV[1]
  seq = 0
  redis.call("DEL", KEYS[2])
  redis.call("HSET", KEYS[1], "epoch", epoch, "seq", 0, "w", writer)
  redis.call("EXPIRE", KEYS[1], tonumber(ARGV[2]))
end

if ARGV[3] == "" or ARGV[4] ~= epoch then
  return { seq, epoch, 0 }
end

local since = tonumber(ARGV[3])
if since == seq then
  return { seq, epoch, 1 }
end
if since > seq or seq - since > tonumber(ARGV[5]) then
  return { seq, epoch, 0 }
end

local want = seq - since
local first = string.format("%d", since + 1) .. "-0"
local entries = redis.call("XRANGE", KEYS[2], first, "+", "COUNT", want)
if #entries ~= want or entries[1][1] ~= first then
  return { seq, epoch, 0 }
end

local out = { seq, epoch, 1 }
for i = 1, want do
  out[i + 3] = entries[i][2][2]
end
return out
