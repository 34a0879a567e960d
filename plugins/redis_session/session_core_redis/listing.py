"""Listing and writing records by key hash (the store contract's ``lists_records``): what
``session-core migrate`` copies with, and what fills a ``tiered`` store's front.

A page is one ``SCAN`` over the store's key prefix, then one ``HGETALL`` per key found; the
cursor is Redis's own, so a copy resumes where it stopped and records that live through the
whole scan are listed at least once (Redis's ``SCAN`` guarantee). An insert is one script that
writes only if the key is absent, with the same layout and TTL as a save.

Not on Redis Cluster (a store there says ``lists_records = False``, and listing or inserting
raises :class:`~session_core.store.ListingUnsupportedError`): ``SCAN`` there covers one node
only, and a record inserted under its own key hash lies in another hash slot than its user's
index, so it could not be indexed and a revocation of the user would miss it. The ``migrate``
store then moves sessions under fresh keys (a save, which creates a session in its user's
slot), and the ``tiered`` store refuses a Cluster front.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import TYPE_CHECKING, Any

import redis.exceptions

from session_core import SessionRecord
from session_core.store import ListingUnsupportedError, RecordPage, is_key_hash

from .scripts import INDEX_USER, MODE_CREATE

if TYPE_CHECKING:
    from .store import RedisStore

__all__ = [
    "INSERT_SCRIPT",
    "adelete_record",
    "ainsert_record",
    "delete_record",
    "insert_record",
    "scan_records",
]

# The arguments are the save script's for a creation (see scripts.py): ARGV[2] the TTL in
# milliseconds, ARGV[3] "0" (no deletions), then field/value pairs ending with the metadata.
INSERT_SCRIPT = (
    INDEX_USER
    + """
local key = KEYS[1]
local ttl = tonumber(ARGV[2])
if ttl <= 0 or redis.call('EXISTS', key) == 1 then
  return 0
end
for i = 4, #ARGV, 1000 do
  redis.call('HSET', key, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('PEXPIRE', key, ttl)
index_user(key, ttl)
return 1
"""
)
"""Write a session's hash only if its key is absent: 1 if written, 0 if not. A record bound to
a user is scored in the user's index, as a save does, so a copied session is listed and revoked
with the user's others."""

_INSERT_SCRIPT = INSERT_SCRIPT.encode()
_INSERT_SHA = hashlib.sha1(_INSERT_SCRIPT).hexdigest().encode()  # noqa: S324 - Redis's name for it
_GLOB_SPECIAL = re.compile(rb"([*?\[\]\\])")


def _hash_key_bytes(store: RedisStore, key_hash: str) -> bytes | None:
    """The Redis key of the record kept under ``key_hash`` (``None`` for no such hash)."""
    if not is_key_hash(key_hash):
        return None
    hashed = key_hash.encode()
    return store._key_head + hashed[:2] + b"}" + hashed


def _refuse_cluster(store: RedisStore) -> None:
    if store._cluster:
        raise ListingUnsupportedError(f"{store.name} (on Redis Cluster)")


def scan_records(store: RedisStore, cursor: str | None, count: int) -> RecordPage:
    """See :meth:`session_core.SessionStore.scan_records`."""
    from .store import _decode

    _refuse_cluster(store)
    pattern = _GLOB_SPECIAL.sub(rb"\\\1", store._key_head) + b"*"
    args = [(cursor or "0").encode(), b"MATCH", pattern, b"COUNT", b"%d" % count]
    next_cursor, names = store._command("list records", b"SCAN", args)
    page: list[tuple[str, SessionRecord]] = []
    head = len(store._key_head) + 3  # the prefix, "{", the two-digit tag and "}"
    for name in names:
        if not is_key_hash(name[head:].decode(errors="replace")):
            continue  # a user's index (<prefix>{<tag>}user:<hash>), not a session
        reply = store._command("list records", b"HGETALL", [name])
        record = _decode(reply, time.time()) if reply else None
        if record is not None:
            page.append((name[head:].decode(), record))
    following = next_cursor.decode() if isinstance(next_cursor, bytes) else str(next_cursor)
    return page, (None if following == "0" else following)


def load_record(store: RedisStore, key_hash: str) -> SessionRecord | None:
    """See :meth:`session_core.SessionStore.load_record`."""
    from .store import _decode

    name = _hash_key_bytes(store, key_hash)
    if name is None:
        return None
    reply = store._command("load a record", b"HGETALL", [name])
    return _decode(reply, time.time()) if reply else None


def _insert_args(store: RedisStore, key_hash: str, record: SessionRecord) -> list[bytes] | None:
    """The insert script's arguments (``None`` for a name that is no key hash)."""
    from .store import _save_args

    _refuse_cluster(store)
    name = _hash_key_bytes(store, key_hash)
    if name is None:
        return None
    return [b"1", name, *_save_args(MODE_CREATE, record, time.time(), record.data)]


def insert_record(store: RedisStore, key_hash: str, record: SessionRecord) -> bool:
    """See :meth:`session_core.SessionStore.insert_record`."""
    args = _insert_args(store, key_hash, record)
    if args is None:
        return False
    try:
        reply: Any = store._command("insert a record", b"EVALSHA", [_INSERT_SHA, *args])
    except redis.exceptions.NoScriptError:
        reply = store._command("insert a record", b"EVAL", [_INSERT_SCRIPT, *args])
    return bool(reply)


async def ainsert_record(store: RedisStore, key_hash: str, record: SessionRecord) -> bool:
    """Async twin of :func:`insert_record`."""
    args = _insert_args(store, key_hash, record)
    if args is None:
        return False
    try:
        reply: Any = await store._acommand("insert a record", b"EVALSHA", [_INSERT_SHA, *args])
    except redis.exceptions.NoScriptError:
        reply = await store._acommand("insert a record", b"EVAL", [_INSERT_SCRIPT, *args])
    return bool(reply)


def delete_record(store: RedisStore, key_hash: str) -> None:
    """See :meth:`session_core.SessionStore.delete_record`."""
    name = _hash_key_bytes(store, key_hash)
    if name is not None:
        store._command("delete a record", b"UNLINK", [name])


async def adelete_record(store: RedisStore, key_hash: str) -> None:
    """Async twin of :func:`delete_record`."""
    name = _hash_key_bytes(store, key_hash)
    if name is not None:
        await store._acommand("delete a record", b"UNLINK", [name])
