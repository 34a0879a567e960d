"""The one Lua script every write runs, and the reserved hash fields it maintains.

A session is one Redis hash. Each session key is a field holding its value as JSON; two more
fields hold the record's metadata. Their names start with the byte ``0xFF``, which never occurs in
UTF-8, so no session key (a Python ``str``, sent as UTF-8) can ever collide with them.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "CLIENT_FIELD",
    "CREATED_FIELD",
    "EXPIRES_FIELD",
    "EXPIRY_FIELD",
    "INDEX_USER",
    "LIST_SCRIPT",
    "LIST_SHA",
    "MODE_CREATE",
    "MODE_KEEP_LIFETIME",
    "MODE_MERGE",
    "REVOKE_SCRIPT",
    "REVOKE_SHA",
    "SAVE_SCRIPT",
    "SAVE_SHA",
    "SEEN_FIELD",
    "USER_FIELD",
    "USER_ID_FIELD",
]

EXPIRY_FIELD = b"\xffexpiry"
"""Hash field holding the session's own expiry setting (opaque JSON, kept unchanged)."""

EXPIRES_FIELD = b"\xffexpires"
"""Hash field holding when the record expires, in Unix milliseconds."""

USER_FIELD = b"\xffuser"
"""Hash field of a session bound to a user: the SHA-256 (hex) of the user's index name, which
names the user's index (see :data:`LIST_SCRIPT`). Written when the session is created only."""

USER_ID_FIELD = b"\xffuid"
"""Hash field holding the user id itself, as JSON (so ``load`` returns a str or an int as set)."""

CREATED_FIELD = b"\xffcreated"
"""Hash field: when the session was bound to its user (the login), in Unix milliseconds."""

SEEN_FIELD = b"\xffseen"
"""Hash field: when the session was last saved, in Unix milliseconds (every save writes it)."""

CLIENT_FIELD = b"\xffclient"
"""Hash field: the client details the app recorded, as a JSON object."""

MODE_CREATE = b"c"
"""Write a new record without looking (a fresh key, or the new key of ``cycle_key``)."""

MODE_MERGE = b"u"
"""Apply changes to an existing record and set its expiry; write nothing when it is gone."""

MODE_KEEP_LIFETIME = b"k"
"""Like :data:`MODE_MERGE`, but leave the stored expiry setting, expiry time and TTL alone: a
request that wrote without reading and chose no expiry does not know them."""

# Scores the session ``key`` (just given its TTL ``ttl``, in milliseconds) in its user's index,
# if it is bound to one (see SAVE_SCRIPT); shared by the save and insert scripts.
INDEX_USER = """
local function index_user(key, ttl)
  local user = redis.call('HGET', key, '\\255user')
  if user then
    local index = string.sub(key, 1, #key - 68) .. '{' .. string.sub(user, 1, 2) .. '}user:'
      .. user
    local expires = tonumber(redis.call('HGET', key, '\\255expires'))
    redis.call('ZADD', index, expires, string.sub(key, -64))
    redis.call('ZREMRANGEBYSCORE', index, '-inf', expires - ttl)
    local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', index, last[2])
  end
end
"""
"""Lua: the function both write scripts call to keep a user's index (a sorted set of its
sessions' hashes scored by expiry time) in step with a session's lifetime."""

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
# have dropped it). A typical update is four calls (HEXISTS, HSET, PEXPIRE, HGET), a creation
# three, a write-only save two (HEXISTS, HSET).
#
# Sessions per user: a session bound to a user holds the user's hash in its \xffuser field, and
# its key shares the user's hash tag. Whenever its lifetime is written (modes c and u) the script
# also scores it in the user's index, a sorted set at <prefix>{<tag>}user:<user hash> scored by
# expiry time, trims entries whose time has passed, and sets the index to expire with its
# longest-lived session: so the index follows each session's TTL and never outlives them. The
# index key is derived here, not passed in, because a write-only save does not know the user;
# it is in the session's own hash slot by construction, so this holds on Cluster (a session
# copied in by hash keeps its own tag: on Cluster it is not indexed, see listing.py).
SAVE_SCRIPT = (
    INDEX_USER
    + """
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
  index_user(key, ttl)
end
return 1
"""
)
"""The save script: existence check, deletes, sets, metadata and TTL in one atomic call."""

SAVE_SHA = hashlib.sha1(SAVE_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
"""The SHA-1 Redis knows :data:`SAVE_SCRIPT` by (for ``EVALSHA``)."""


# KEYS[1]  a user's index (see SAVE_SCRIPT); its sessions are at the same prefix and hash tag
# ARGV[1]  now, in Unix milliseconds, from the caller's clock
#
# Returns, for each live session, its hash and its \xffuid, \xffcreated, \xffseen, \xffexpires
# and \xffclient fields (six entries per session). A session's Redis key is found from its hash
# (the hash tag is the hash's first two digits): a session made by this store shares its user's
# tag, and one copied in by hash (insert_record, see listing.py) keeps its own. An entry whose
# time has passed, or whose session is gone (deleted, flushed, or moved to a new key), is
# removed on the way: entries are verified here, so a delete elsewhere never needs to know about
# the index.
_SESSIONS_OF = """
local index = KEYS[1]
local prefix = string.sub(index, 1, #index - 73)
local function session(hash)
  return prefix .. '{' .. string.sub(hash, 1, 2) .. '}' .. hash
end
redis.call('ZREMRANGEBYSCORE', index, '-inf', ARGV[1])
local found = {}
for _, hash in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local fields = redis.call('HMGET', session(hash),
    '\\255uid', '\\255created', '\\255seen', '\\255expires', '\\255client')
  if fields[4] and tonumber(fields[4]) > tonumber(ARGV[1]) then
    table.insert(found, hash)
    for i = 1, 5 do
      table.insert(found, fields[i] or '')
    end
  else
    redis.call('ZREM', index, hash)
  end
end
"""

LIST_SCRIPT = _SESSIONS_OF + "return found\n"
"""List a user's live sessions, in one atomic call."""

# KEYS[1]  a user's index; ARGV[1] now (Unix ms); ARGV[2] the hash of the session to keep, or ''
#
# Deletes every live session of the index but the kept one, and returns how many it deleted.
REVOKE_SCRIPT = (
    _SESSIONS_OF
    + """
local revoked = 0
for i = 1, #found, 6 do
  if found[i] ~= ARGV[2] then
    redis.call('UNLINK', session(found[i]))
    redis.call('ZREM', index, found[i])
    revoked = revoked + 1
  end
end
if redis.call('ZCARD', index) == 0 then
  redis.call('UNLINK', index)
end
return revoked
"""
)
"""Delete a user's sessions but one, in one atomic call: a save racing it either lands before
(and is deleted with its session) or finds its session gone (and writes nothing)."""

LIST_SHA = hashlib.sha1(LIST_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
"""The SHA-1 of :data:`LIST_SCRIPT`."""

REVOKE_SHA = hashlib.sha1(REVOKE_SCRIPT.encode()).hexdigest()  # noqa: S324
"""The SHA-1 of :data:`REVOKE_SCRIPT`."""
