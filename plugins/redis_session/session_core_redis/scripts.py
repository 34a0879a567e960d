"""The one Lua script every write runs, and the reserved hash fields it maintains.

A session is one Redis hash. Each session key is a field holding its value as JSON; two more
fields hold the record's metadata. Their names start with the byte ``0xFF``, which never occurs in
UTF-8, so no session key (a Python ``str``, sent as UTF-8) can ever collide with them.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "EXPIRES_FIELD",
    "EXPIRY_FIELD",
    "MODE_CREATE",
    "MODE_KEEP_LIFETIME",
    "MODE_MERGE",
    "SAVE_SCRIPT",
    "SAVE_SHA",
]

EXPIRY_FIELD = b"\xffexpiry"
"""Hash field holding the session's own expiry setting (opaque JSON, kept unchanged)."""

EXPIRES_FIELD = b"\xffexpires"
"""Hash field holding when the record expires, in Unix milliseconds."""

MODE_CREATE = b"c"
"""Write a new record without looking (a fresh key, or the new key of ``cycle_key``)."""

MODE_MERGE = b"u"
"""Apply changes to an existing record and set its expiry; write nothing when it is gone."""

MODE_KEEP_LIFETIME = b"k"
"""Like :data:`MODE_MERGE`, but leave the stored expiry setting, expiry time and TTL alone: a
request that wrote without reading and chose no expiry does not know them."""

# KEYS[1]  the session's hash; KEYS[2] (optional, create only) an old hash to remove atomically
# ARGV[1]  mode: c (create), u (merge into an existing record), k (merge, keep the lifetime)
# ARGV[2]  time to live in milliseconds, from the caller's clock
# ARGV[3]  n, the number of fields to delete, then those n fields, then field/value pairs to set:
#          with modes c and u the pairs end with the two metadata fields (expiry setting, expiry
#          time), so that one HSET writes the data and the metadata
#
# Returns 1 when the record was written, 0 when it did not exist (merge) or is already expired.
#
# A merge (u, k) writes only into a record this store wrote: one with the expiry-time field. The
# check comes before any write, so a missing key is never brought back, a hash someone else put
# there is never adopted, and a value that is not a hash fails the check (WRONGTYPE) untouched.
# Data and metadata go in one HSET, and the TTL is set last (an HDEL that emptied the hash would
# have dropped it). A typical update is three calls (HEXISTS, HSET, PEXPIRE), a creation two, a
# write-only save two (HEXISTS, HSET).
SAVE_SCRIPT = """
local key = KEYS[1]
local mode = ARGV[1]
local ttl = tonumber(ARGV[2])
if mode == 'c' then
  if KEYS[2] then
    redis.call('UNLINK', KEYS[2])
  end
  if ttl <= 0 then
    redis.call('UNLINK', key)
    return 0
  end
else
  if redis.call('HEXISTS', key, '\\255expires') == 0 then
    return 0
  end
  if mode == 'u' and ttl <= 0 then
    redis.call('UNLINK', key)
    return 0
  end
end
local first = 4 + tonumber(ARGV[3])
for i = 4, first - 1, 1000 do
  redis.call('HDEL', key, unpack(ARGV, i, math.min(i + 999, first - 1)))
end
for i = first, #ARGV, 1000 do
  redis.call('HSET', key, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if mode ~= 'k' then
  redis.call('PEXPIRE', key, ttl)
end
return 1
"""
"""The save script: existence check, deletes, sets, metadata and TTL in one atomic call."""

SAVE_SHA = hashlib.sha1(SAVE_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
"""The SHA-1 Redis knows :data:`SAVE_SCRIPT` by (for ``EVALSHA``)."""
