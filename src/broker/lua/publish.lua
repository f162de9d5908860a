--[[
  publish.lua — the one ordering point of a topic: assign the next seq, append the message
  frame to the topic's history, honour the idempotency key and publish, in one atomic step.

  Every key of a topic carries the hash tag {<topic>}, and so does its channel: on Redis Cluster
  the script and its SPUBLISH stay on the topic's shard.

  KEYS[1]  sb:{<topic>}:meta       hash {seq = last seq, epoch = the topic's epoch, w = writer}
  KEYS[2]  sb:{<topic>}:log        stream of message frames, entry id "<seq>-0", field "f"
  KEYS[3]  sb:{<topic>}:key:<key>  idempotency key holding "<seq>:<epoch>"; absent when ARGV[1] is ""
           (a declared key that does not exist makes a migrating slot answer TRYAGAIN)

  ARGV[1]  "1" when KEYS[3] is a real idempotency key, "" otherwise
  ARGV[2]  a fresh random epoch, used when the topic gets a new one (see below): seq restarts at 1
  ARGV[3]  history size: entries kept in the stream (0 keeps no history). Trimming is exact: the
           approximate form (MAXLEN ~) measured no clearly lower cost here and may keep ~100
           more frames per topic (bench/README.md)
  ARGV[4]  history TTL in seconds: every key of the topic expires this long after its last publication
  ARGV[5]  frame head, pre-serialized: {"type":"message","topic":"<topic>","seq":
  ARGV[6]  frame tail, pre-serialized: ,"from":"<from>","data":<data>,"ts":<ts>}
  ARGV[7]  the topic's channel
  ARGV[8]  "PUBLISH" (one Redis) or "SPUBLISH" (Redis Cluster)

  A new epoch starts when the topic has no meta (new, expired, Redis restarted empty) and when the
  meta was written by another primary than this one (`w` is the replication id of the primary that
  wrote it, `master_replid`, from `primaryId()`: see redis-scripts.ts for how it is cached): after a failover the promoted replica may lack acknowledged writes, and
  reusing their seqs would make subscribers drop the new publications as duplicates. A failover that
  lost nothing costs the same resync; that is the price of never guessing.

  The frame is ARGV[5] .. seq .. ',"epoch":"' .. epoch .. '"' .. ARGV[6] (epochs are hex, so they
  need no escaping). The channel payload is "p<seq>:<epoch>:<frame>": a receiver reads the
  position without parsing the frame.

  Returns "<seq>:<epoch>:<duplicate>", duplicate "1" when the key had been seen (nothing published).
  One string rather than an array: ioredis decodes an array element by element, and from Redis's
  reply to the broker's result took ~3 µs longer per publish that way (issue 17, round six).
]]

if ARGV[1] == "1" then
  local previous = redis.call("GET", KEYS[3])
  if previous then
    return previous .. ":1"
  end
end

-- The size and the TTL go to Redis as the strings they came as: a Lua number given to redis.call
-- is formatted back to text with a floating-point printf, ~2 µs of the call's ~20 for these three
-- (issue 17, round eleven).
local ttl = ARGV[4]
local size = ARGV[3]
local writer = primaryId()
local meta = redis.call("HMGET", KEYS[1], "epoch", "w")
local epoch = meta[1]
local seq
if epoch and not meta[2] then
  -- Written by a version of Switchboard before `w` existed: adopt it (a rolling deploy must not
  -- resync every topic).
  redis.call("HSET", KEYS[1], "w", writer)
  meta[2] = writer
end
if not epoch or meta[2] ~= writer then
  -- A new epoch, and no stale stream entries whose ids would be above the restarted seq.
  epoch = ARGV[2]
  seq = 1
  redis.call("DEL", KEYS[2])
  redis.call("HSET", KEYS[1], "epoch", epoch, "seq", 1, "w", writer)
else
  seq = redis.call("HINCRBY", KEYS[1], "seq", 1)
end
local seqText = string.format("%d", seq)
local frame = ARGV[5] .. seqText .. ',"epoch":"' .. epoch .. '"' .. ARGV[6]

redis.call("EXPIRE", KEYS[1], ttl)
if tonumber(size) > 0 then
  redis.call("XADD", KEYS[2], "MAXLEN", size, seqText .. "-0", "f", frame)
  redis.call("EXPIRE", KEYS[2], ttl)
end
if ARGV[1] == "1" then
  redis.call("SET", KEYS[3], seqText .. ":" .. epoch, "EX", ttl)
end

redis.call(ARGV[8], ARGV[7], "p" .. seqText .. ":" .. epoch .. ":" .. frame)
return seqText .. ":" .. epoch .. ":0"
