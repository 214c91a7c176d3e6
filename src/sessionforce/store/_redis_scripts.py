"""The Redis store's Lua scripts: every step that must be atomic is one script, run in one round trip.

A lease is the value ``"<owner>|<fence>"`` of ``P lease:<id>``; every fenced write compares that whole
value (owner and fence), never the fence alone. Fences come from the server's clock and a counter
(``max(counter + 1, TIME in microseconds)``), so Redis restarted empty, or a replica promoted after it missed
the last writes, still hands out fences above every fence handed out before.

redis-py resends a command after a dropped connection (and a frozen Redis runs every copy it queued), so
each script is harmless when it runs twice: a write carries a write id that it leaves in ``P wid:<id>`` for
a minute, and a second run of the same write finds it there and reports success without writing again;
an acquire finds its own owner's lease and takes it again with a new fence; renew, release and delete
do nothing new the second time.

Every script touches the keys of one conversation (and its bucket's indexes) only: one hash slot in a
cluster (:mod:`._redis_keys`). A release is published with the command the caller names: ``PUBLISH`` on a
single primary, ``SPUBLISH`` (sharded pub/sub, Redis 7) in a cluster, where a classic ``PUBLISH`` would be
broadcast to every node.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "APPEND", "DELETE", "PRUNE", "RELEASE", "RENEW", "SAVE", "WRITE_ID_TTL_MS"]

WRITE_ID_TTL_MS = 60_000
"""How long a write's id stays to recognise its resends (they run within seconds of the first)."""

# KEYS: lease, fence. ARGV: owner, ttl_ms, retention_ms.
# -> {1, fence} taken | {0, held "owner|fence", pttl_ms}
ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held and string.match(held, '^(.*)|%d+$') ~= ARGV[1] then
  return {0, held, redis.call('PTTL', KEYS[1])}
end
local now = redis.call('TIME')
local fence = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, tonumber(now[1]) * 1000000 + tonumber(now[2]))
fence = string.format('%.0f', fence)
redis.call('SET', KEYS[2], fence, 'PX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. fence, 'PX', ARGV[2])
return {1, fence}
"""

# KEYS: rec, lease, tx, wid, idx of the new status, idx of every other status.
# ARGV: expected version, json, lease "owner|fence" ('' = unfenced), retention_ms, id, score,
#       release ('1' = give the lease up), write id, channel, publish command, transcript entries...
# -> {1} | {-1} lease lost | {-2, stored version} | {-3} stored record unreadable
SAVE = f"""
if redis.call('GET', KEYS[4]) == ARGV[8] then return {{1}} end
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then return {{-1}} end
local current = redis.call('GET', KEYS[1])
local stored = 0
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if not ok or type(decoded) ~= 'table' or type(decoded['version']) ~= 'number' then return {{-3}} end
  stored = decoded['version']
end
if stored ~= tonumber(ARGV[1]) then return {{-2, stored}} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
for i = 11, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
redis.call('PEXPIRE', KEYS[3], ARGV[4])
for i = 6, #KEYS do redis.call('ZREM', KEYS[i], ARGV[5]) end
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[5])
if ARGV[7] == '1' then
  redis.call('DEL', KEYS[2])
  redis.call(ARGV[10], ARGV[9], '')
end
redis.call('SET', KEYS[4], ARGV[8], 'PX', {WRITE_ID_TTL_MS})
return {{1}}
"""

# KEYS: lease, tx, wid. ARGV: lease "owner|fence" ('' = unfenced), entry json, retention_ms, write id.
# -> 1 | 0 lease lost
APPEND = f"""
if redis.call('GET', KEYS[3]) == ARGV[4] then return 1 end
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4], 'PX', {WRITE_ID_TTL_MS})
return 1
"""

# KEYS: lease. ARGV: exact "owner|fence", ttl_ms. -> 1 | 0
RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"

# KEYS: lease. ARGV: exact "owner|fence", channel, publish command. -> 1 | 0
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call(ARGV[3], ARGV[2], '')
return 1
"""

# KEYS: rec, tx, lease, wid, every status index of the bucket. ARGV: id, channel, publish command.
# The fence counter stays: fences handed out stay dead.
DELETE = """
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
for i = 5, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call(ARGV[3], ARGV[2], '')
"""

# KEYS: rec keys..., idx. ARGV: ids (same order). Unlists ids whose record is (still) gone.
PRUNE = """
for i, id in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('ZREM', KEYS[#KEYS], id) end
end
"""
