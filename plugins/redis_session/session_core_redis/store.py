"""The ``redis`` session store.

Layout: one Redis hash per session, at ``<key_prefix>{<tag>}<sha256 of the session key>`` where
``<tag>`` is the hash's first two hex digits. Each session key is a hash field holding its value as
JSON; the reserved fields ``\\xffexpiry`` and ``\\xffexpires`` hold the expiry setting and the
expiry time. The record's lifetime is the key's own Redis TTL, so nothing needs cleaning up.

Sessions per user: a session bound to a user (:attr:`~session_core.SessionRecord.user_id`) is
created under a key whose hash tag is the user's (the first two hex digits of the SHA-256 of the
user's id), so it shares a hash slot with the user's index, a sorted set of its sessions' hashes
scored by expiry time at ``<key_prefix>{<tag>}user:<sha256 of the user id>``. The save script
keeps that index scored, trimmed and expiring with the sessions (see :mod:`.scripts`); listing
and revoking are one script each over that one slot, atomic on Cluster too.

Hot path: a load is one ``HGETALL``; every save is one ``EVALSHA`` of :data:`~.scripts.SAVE_SCRIPT`,
which checks that the session still exists, applies only the changed fields, and sets the TTL,
atomically. A request that only writes needs no read at all. Commands are packed here, as bytes,
and sent through a :class:`~.wire.Lane`, which on a standalone or Sentinel client skips
redis-py's per-command machinery (see :mod:`.wire`); replies are taken raw.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import math
import secrets
import threading
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import Any, ClassVar

import redis.exceptions

from session_core import (
    Changes,
    ConfigurationError,
    SessionInfo,
    SessionRecord,
    SessionStore,
    StoreUnreachableError,
    UserId,
    hash_key,
    is_plausible_key,
)
from session_core.store import (
    KEY_BYTES,
    Progress,
    RecordPage,
    decode_json,
    encode_json,
    user_index_name,
    with_flags,
)

from . import listing
from .clients import aclose_client, build_async_client, build_client, close_client, pool_limit
from .errors import AsyncClientOnlyError, SessionTooLargeError
from .health import CheckNote, server_report
from .options import RedisOptions, redact_url
from .scripts import (
    CLIENT_FIELD,
    CREATED_FIELD,
    EXPIRES_FIELD,
    EXPIRY_FIELD,
    LIST_SCRIPT,
    LIST_SHA,
    MODE_CREATE,
    MODE_KEEP_LIFETIME,
    MODE_MERGE,
    REVOKE_SCRIPT,
    REVOKE_SHA,
    SAVE_SCRIPT,
    SAVE_SHA,
    SEEN_FIELD,
    USER_FIELD,
    USER_ID_FIELD,
)
from .wire import CLUSTER_TYPES, AsyncLane, Lane

__all__ = ["UNREACHABLE_ERRORS", "RedisStore", "redis_key"]

UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # also authentication, loading, too many connections
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterError,  # CLUSTERDOWN, MASTERDOWN
    redis.exceptions.RedisClusterException,  # no reachable node, slot not covered
    redis.exceptions.ReadOnlyError,  # a master demoted by a failover
    redis.exceptions.TryAgainError,  # a slot being migrated
    redis.exceptions.OutOfMemoryError,  # a write refused by maxmemory
    OSError,
)
"""The redis-py errors the store reports as :class:`~session_core.StoreUnreachableError`."""

_TAG_LENGTH = 2  # hex digits: one byte of the hash
_KEYS_PER_DRAW = 64
_LoopEntry = tuple[AsyncLane, AsyncGenerator[None, None], "asyncio.Task[Any] | None"]
_SAVE_SHA = SAVE_SHA.encode()
_SAVE_SCRIPT = SAVE_SCRIPT.encode()
_LIST = (LIST_SHA.encode(), LIST_SCRIPT.encode())
_REVOKE = (REVOKE_SHA.encode(), REVOKE_SCRIPT.encode())
_ONE_KEY = b"1"
_TWO_KEYS = b"2"
_USER_META = (CREATED_FIELD, SEEN_FIELD, USER_FIELD, CLIENT_FIELD)


def redis_key(prefix: str, key: str) -> str:
    """The Redis key a session is kept under: the prefix, a hash tag, and ``hash_key(key)``.

    The hash tag (the first two hex digits of the hash) decides the Cluster hash slot. It lets
    :meth:`RedisStore.cycle_key` pick a new key in the same slot as the old one, so the move is
    one atomic script on Cluster too; sessions still spread over 256 tags.
    """
    return _key_bytes(prefix.encode() + b"{", key).decode()


def _key_bytes(head: bytes, key: str) -> bytes:
    """:func:`redis_key` as bytes, after ``head`` (the prefix and the opening brace)."""
    hashed = hash_key(key).encode()
    return head + hashed[:_TAG_LENGTH] + b"}" + hashed


def _encode_field(name: str) -> bytes:
    return name.encode("utf-8", "surrogatepass")


def _save_args(
    mode: bytes,
    record: SessionRecord,
    now: float,
    fields: Iterable[str],
    deleted: Iterable[str] = (),
) -> list[bytes]:
    """The script's arguments (after its keys): see :data:`~.scripts.SAVE_SCRIPT`."""
    removed = [_encode_field(name) for name in deleted]
    expires_ms = math.ceil(record.expires_at * 1000)
    now_ms = int(now * 1000)
    args = [mode, b"%d" % (expires_ms - now_ms), b"%d" % len(removed), *removed]
    data = record.data
    for name in fields:
        if name in data:
            args.append(_encode_field(name))
            args.append(encode_json(data[name]).encode())
    args += (SEEN_FIELD, b"%d" % now_ms)
    if record.client is not None:
        args += (CLIENT_FIELD, encode_json(record.client).encode())  # type: ignore[arg-type]
    if mode == MODE_CREATE and record.user_id is not None:  # bound to a user at creation only
        args += (USER_FIELD, _user_hash(record.user_id).encode())
        args += (USER_ID_FIELD, encode_json(record.user_id).encode())
        args += (CREATED_FIELD, b"%d" % now_ms)
    if mode != MODE_KEEP_LIFETIME:  # the metadata, written by the same HSET as the data
        args += (EXPIRY_FIELD, encode_json(record.expiry).encode())
        args += (EXPIRES_FIELD, b"%d" % expires_ms)
    return args


def _user_hash(user_id: UserId) -> str:
    """The SHA-256 (hex) of the user's index name: names its index, and gives its hash tag."""
    return hash_key(user_index_name(user_id))


def _infos(user_id: UserId, reply: list[bytes]) -> list[SessionInfo]:
    """The sessions a :data:`~.scripts.LIST_SCRIPT` reply describes, most recently seen first."""
    infos = []
    for at in range(0, len(reply), 6):
        key_hash, uid, created, seen, expires, client = reply[at : at + 6]
        times = (int(created or seen) / 1000, int(seen) / 1000, int(expires) / 1000)
        owner = decode_json(uid.decode()) if uid else user_id
        details = decode_json(client.decode()) if client else None
        infos.append(SessionInfo.from_times(key_hash.decode(), owner, times, details))
    return sorted(infos, key=lambda info: info.last_seen_at, reverse=True)


def _decode(reply: list[bytes] | dict[bytes, bytes], now: float) -> SessionRecord | None:
    """The record a raw ``HGETALL`` reply holds, or ``None`` (missing, expired, or not ours).

    The reply is a flat list of names and values (RESP2), or a dict with RESP3.
    """
    if isinstance(reply, dict):
        fields = reply
    else:
        pairs = iter(reply)
        fields = dict(zip(pairs, pairs, strict=True))
    expires = fields.pop(EXPIRES_FIELD, None)
    if expires is None:
        return None
    expires_at = int(expires) / 1000
    if expires_at <= now:
        return None
    expiry = fields.pop(EXPIRY_FIELD, None)
    user_id = fields.pop(USER_ID_FIELD, None)
    for name in _USER_META:  # shown by sessions_of, not part of the record
        fields.pop(name, None)
    return SessionRecord(
        data={
            name.decode("utf-8", "surrogatepass"): decode_json(raw.decode())
            for name, raw in fields.items()
        },
        expires_at=expires_at,
        expiry=None if expiry is None else decode_json(expiry.decode()),
        user_id=None if user_id is None else decode_json(user_id.decode()),
    )


def _describe(client: Any) -> str:
    """Where a handed-over client connects, with no password in it."""
    if isinstance(client, CLUSTER_TYPES):
        nodes = client.get_nodes() if hasattr(client, "get_nodes") else []
        return "cluster " + ",".join(f"{n.host}:{n.port}" for n in nodes)
    pool = getattr(client, "connection_pool", None)
    service = getattr(pool, "service_name", None)
    if service is not None:
        return f"sentinel master {service!r}"
    kwargs: Mapping[str, Any] = getattr(pool, "connection_kwargs", {})
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    scheme = "rediss" if "ssl_keyfile" in kwargs or "ssl_cert_reqs" in kwargs else "redis"
    host, port, db = kwargs.get("host", "localhost"), kwargs.get("port", 6379), kwargs.get("db", 0)
    return redact_url(f"{scheme}://{host}:{port}/{db}")


def _check_bytes_client(client: Any, argument: str) -> None:
    encoder = client.get_encoder() if hasattr(client, "get_encoder") else None
    if encoder is not None and encoder.decode_responses:
        raise ConfigurationError(
            None,
            f"the redis store needs a client made with decode_responses=False; "
            f"the {argument} handed to it decodes responses",
        )


_WITH_A_CLIENT = ("key_prefix", "max_value_size", "direct_commands")
"""The options that still mean something when a client is handed over: the others are the
client's own settings, which it would silently override."""


def _check_options_beside_client(options: RedisOptions) -> None:
    ignored = [name for name in options.given() if name not in _WITH_A_CLIENT]
    if ignored:
        raise ConfigurationError(
            "store_options",
            f"redis store option {ignored[0]!r}: give either a client or connection options, "
            f"not both (a handed-over client brings its own; beside it only "
            f"{', '.join(_WITH_A_CLIENT)} apply)",
        )


async def _hold(client: Any, helpers: list[Any]) -> AsyncGenerator[None, None]:
    # Parked on its event loop until the loop shuts down (asyncio.run finalises the async
    # generators it started), which then closes the loop's client while the loop still runs.
    try:
        yield
    finally:
        with contextlib.suppress(*UNREACHABLE_ERRORS):
            await aclose_client(client, helpers)


def _names_cluster(options: RedisOptions | Mapping[str, Any] | None) -> bool:
    """Whether ``options`` (validated or not) name a Redis Cluster."""
    if options is None:
        return False
    if isinstance(options, RedisOptions):
        return options.cluster is not None
    return options.get("cluster") is not None


class RedisStore(SessionStore):
    """Sessions in Redis (standalone, Sentinel or Cluster), through redis-py.

    One connection pool per store object (plus one per event loop for the async twins), shared
    by every request and thread. A read is one round trip, a save is one round trip, and a
    request that only writes keys does not read first. Concurrent requests of one session that
    change different keys both keep their change; a session deleted by one request is never
    brought back by another's late save.

    Args:
        options: the store's settings: a :class:`~.options.RedisOptions`, or a mapping of them
            (``store_options``), validated here. ``None`` for the defaults (a local server).
        client: a ready ``redis.Redis`` or ``redis.cluster.RedisCluster`` (made with
            ``decode_responses=False``) to use instead of building one. The store does not close
            it; ``options`` then may only hold ``key_prefix``, ``max_value_size`` and
            ``direct_commands``.
        async_client: the same for the async twins (a :mod:`redis.asyncio` client). With only
            ``client`` handed over, the async twins run the sync methods in worker threads.

    Raises:
        ConfigurationError: for a bad option, or a client that decodes responses.
    """

    name: ClassVar[str] = "redis"
    partial_writes: ClassVar[bool] = True
    needs_cleanup: ClassVar[bool] = False
    indexes_users: ClassVar[bool] = True
    lists_records: ClassVar[bool] = True
    """True, except for a store on Redis Cluster (its object is of a subclass saying False):
    ``SCAN`` covers one node there, and a record written under its own key hash would not share
    a hash slot with its user's index (see :mod:`.listing`)."""

    def __new__(
        cls,
        options: RedisOptions | Mapping[str, Any] | None = None,
        *,
        client: Any = None,
        async_client: Any = None,
    ) -> RedisStore:
        handed = client if client is not None else async_client
        if isinstance(handed, CLUSTER_TYPES) or _names_cluster(options):
            return super().__new__(with_flags(cls, lists_records=False))
        return super().__new__(cls)

    def __init__(
        self,
        options: RedisOptions | Mapping[str, Any] | None = None,
        *,
        client: Any = None,
        async_client: Any = None,
    ) -> None:
        if options is None:
            options = RedisOptions()
        elif not isinstance(options, RedisOptions):
            options = RedisOptions.from_mapping(options)
        handed = client if client is not None else async_client
        if handed is not None:
            _check_options_beside_client(options)
        for argument, given in (("client", client), ("async_client", async_client)):
            if given is not None:
                _check_bytes_client(given, argument)
        self.options = options
        """The validated settings."""
        self.prefix = options.key_prefix
        """The namespace of every Redis key the store writes."""
        self.target = _describe(handed) if handed is not None else options.target
        """Where the store connects, with no password: named in every error."""
        self._owns = handed is None
        direct = options.direct_commands
        self._lane = Lane(client, direct=direct) if client is not None else None
        self._helpers: list[Any] = []
        self._async_lane = AsyncLane(async_client, direct=direct) if async_client else None
        self._cluster = not type(self).lists_records  # __new__ picked the class for Cluster
        self._lock = threading.Lock()
        self._loop_clients: dict[asyncio.AbstractEventLoop, _LoopEntry] = {}
        self._last_loop: tuple[asyncio.AbstractEventLoop | None, AsyncLane | None] = (None, None)
        self._key_head = self.prefix.encode() + b"{"  # how every Redis key starts

    # ------------------------------------------------------------------ plumbing

    def _sync_lane(self, operation: str) -> Lane:
        lane = self._lane
        if lane is None:
            if not self._owns:
                raise AsyncClientOnlyError(operation)
            with self._lock:
                if self._lane is None:
                    client, self._helpers = build_client(self.options)
                    limit = pool_limit(self.options)
                    timeout, direct = self.options.socket_timeout, self.options.direct_commands
                    self._lane = Lane(client, limit, timeout, direct=direct)
                lane = self._lane
        return lane

    async def _loop_lane(self, operation: str) -> AsyncLane:
        if self._async_lane is not None:
            return self._async_lane
        loop = asyncio.get_running_loop()
        last_loop, lane = self._last_loop
        if last_loop is loop and lane is not None:
            return lane
        with self._lock:
            for stale in [other for other in self._loop_clients if other.is_closed()]:
                del self._loop_clients[stale]
            entry = self._loop_clients.get(loop)
        if entry is None:
            client, helpers = build_async_client(self.options)
            holder = _hold(client, helpers)
            await anext(holder)  # runs to its yield at once: no other task can interleave
            # A fresh async cluster client must learn the topology before concurrent use
            # (redis-py fails commands sent while several tasks initialise it at once).
            ready = loop.create_task(client.initialize()) if self._cluster else None
            limit = pool_limit(self.options)
            timeout, direct = self.options.socket_timeout, self.options.direct_commands
            entry = (AsyncLane(client, limit, timeout, direct=direct), holder, ready)
            with self._lock:
                self._loop_clients[loop] = entry
        lane, holder, ready = entry
        if ready is not None:
            try:
                await ready
            except UNREACHABLE_ERRORS as exc:
                with self._lock:
                    if self._loop_clients.get(loop) is entry:
                        del self._loop_clients[loop]
                await holder.aclose()
                raise self._unreachable(operation, exc) from exc
        self._last_loop = (loop, lane)
        return lane

    def _redis_key(self, key: str) -> bytes:
        """:func:`redis_key` as bytes."""
        return _key_bytes(self._key_head, key)

    def _unreachable(self, operation: str, exc: BaseException) -> StoreUnreachableError:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return StoreUnreachableError(self.name, self.target, operation, reason)

    def _sized(self, args: list[bytes]) -> list[bytes]:
        """``args``, once no value in them is over ``max_value_size``.

        Redis refuses a larger one by closing the connection mid-command, which redis-py reports
        as a broken connection (and may send the whole command again): refused here instead,
        before anything is sent.
        """
        largest = max(map(len, args), default=0)
        if largest > self.options.max_value_size:
            raise SessionTooLargeError(largest, self.options.max_value_size, self.target)
        return args

    def _index_key(self, user_id: UserId) -> bytes:
        """The Redis key of the user's index; it shares the hash tag of the user's sessions."""
        hashed = _user_hash(user_id).encode()
        return self._key_head + hashed[:_TAG_LENGTH] + b"}user:" + hashed

    def _new_key_for(self, record: SessionRecord, like: str | None = None) -> str:
        """A fresh key for ``record``: in its user's hash tag when it has a user (so that it
        shares a slot with the user's index), else in ``like``'s on Cluster, else any."""
        if record.user_id is not None:
            return self._key_in_tag(_user_hash(record.user_id)[:_TAG_LENGTH])
        if like is not None and self._cluster:
            return self._key_in_tag(hash_key(like)[:_TAG_LENGTH])
        return self.generate_key()

    def _key_in_tag(self, tag: str) -> str:
        """A fresh session key whose Redis key has hash tag ``tag``: 256 tries on average (at
        login only), so each try is :func:`generate_key`'s work and no more, its random bytes
        drawn in bulk and its hash compared by the first byte."""
        wanted = int(tag, 16)
        while True:
            pool = secrets.token_bytes(KEY_BYTES * _KEYS_PER_DRAW)
            for start in range(0, len(pool), KEY_BYTES):
                candidate = base64.urlsafe_b64encode(pool[start : start + KEY_BYTES]).rstrip(b"=")
                if hashlib.sha256(candidate).digest()[0] == wanted:
                    return candidate.decode()

    def _save_plan(
        self, key: str | None, record: SessionRecord, changes: Changes
    ) -> tuple[str | None, list[bytes], list[bytes]]:
        """What a save does: (the key to return, the script's keys, its arguments).

        No keys means no I/O: a malformed key (nothing to update) or an already expired new
        record (nothing to keep).
        """
        now = time.time()
        if key is None:
            new_key = self._new_key_for(record)
            if record.expires_at <= now:
                return new_key, [], []
            args = self._sized(_save_args(MODE_CREATE, record, now, record.data))
            return new_key, [self._redis_key(new_key)], args
        if not is_plausible_key(key):
            return None, [], []
        # Changes.expiry is False when a request wrote without reading and chose no expiry.
        mode = MODE_MERGE if changes.expiry else MODE_KEEP_LIFETIME
        args = self._sized(_save_args(mode, record, now, changes.updated, changes.deleted))
        return key, [self._redis_key(key)], args

    def _cycle_plan(
        self, key: str, record: SessionRecord
    ) -> tuple[str, list[bytes], list[bytes], list[bytes]]:
        """What :meth:`cycle_key` does: (the new key, the script's keys, its arguments, and the
        old Redis key to ``UNLINK`` afterwards when the script cannot).

        The script removes the old record atomically when both keys share a slot: always on a
        single server, and on Cluster unless the session moves into its user's hash tag at
        login, which then costs one more round trip.
        """
        now = time.time()
        args = self._sized(_save_args(MODE_CREATE, record, now, record.data))
        if not is_plausible_key(key):
            new_key = self._new_key_for(record)
            return new_key, [self._redis_key(new_key)], args, []
        new_key = self._new_key_for(record, like=key)
        new, old = self._redis_key(new_key), self._redis_key(key)
        if self._cluster and new[: len(self._key_head) + 3] != old[: len(self._key_head) + 3]:
            return new_key, [new], args, [old]
        return new_key, [new, old], args, []

    def _command(self, operation: str, name: bytes, args: list[bytes]) -> Any:
        """Run one command, raw reply; an outage becomes :class:`StoreUnreachableError`."""
        lane = self._sync_lane(operation)
        try:
            return lane.call(name, args)
        except UNREACHABLE_ERRORS as exc:
            raise self._unreachable(operation, exc) from exc

    async def _acommand(self, operation: str, name: bytes, args: list[bytes]) -> Any:
        """Async twin of :meth:`_command`, on the running event loop's client."""
        lane = await self._loop_lane(operation)
        try:
            return await lane.call(name, args)
        except UNREACHABLE_ERRORS as exc:
            raise self._unreachable(operation, exc) from exc

    def _run_script(
        self,
        operation: str,
        keys: list[bytes],
        args: list[bytes],
        script: tuple[bytes, bytes] = (_SAVE_SHA, _SAVE_SCRIPT),
    ) -> Any:
        numkeys = _ONE_KEY if len(keys) == 1 else _TWO_KEYS
        try:
            return self._command(operation, b"EVALSHA", [script[0], numkeys, *keys, *args])
        except redis.exceptions.NoScriptError:  # a restarted or new server: EVAL loads it
            return self._command(operation, b"EVAL", [script[1], numkeys, *keys, *args])

    async def _arun_script(
        self,
        operation: str,
        keys: list[bytes],
        args: list[bytes],
        script: tuple[bytes, bytes] = (_SAVE_SHA, _SAVE_SCRIPT),
    ) -> Any:
        numkeys = _ONE_KEY if len(keys) == 1 else _TWO_KEYS
        try:
            return await self._acommand(operation, b"EVALSHA", [script[0], numkeys, *keys, *args])
        except redis.exceptions.NoScriptError:
            return await self._acommand(operation, b"EVAL", [script[1], numkeys, *keys, *args])

    def _revoke_args(self, keep: str | None) -> list[bytes]:
        kept = hash_key(keep).encode() if keep is not None and is_plausible_key(keep) else b""
        return [b"%d" % int(time.time() * 1000), kept]

    # ------------------------------------------------------------------ the store API

    def load(self, key: str) -> SessionRecord | None:
        """The session saved under ``key``, in one ``HGETALL``; ``None`` if there is none."""
        if not is_plausible_key(key):
            return None
        reply = self._command("load", b"HGETALL", [self._redis_key(key)])
        return _decode(reply, time.time()) if reply else None

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Create (``key=None``) or merge ``changes`` into a live session, in one round trip.

        A session that no longer exists is not written and ``None`` is returned.
        """
        result_key, keys, args = self._save_plan(key, record, changes)
        if keys and not self._run_script("save", keys, args) and key is not None:
            return None  # gone: deleted, expired or never there
        return result_key

    def delete(self, key: str) -> None:
        """Remove the session saved under ``key`` (``UNLINK``); a missing key is not an error."""
        if not is_plausible_key(key):
            return
        self._command("delete", b"UNLINK", [self._redis_key(key)])

    def cycle_key(self, key: str, record: SessionRecord) -> str:
        """Move the session to a fresh key and remove the old record, in one atomic script.

        On Cluster the new key is chosen in the old key's hash slot, so the move stays atomic.
        """
        new_key, keys, args, leftover = self._cycle_plan(key, record)
        self._run_script("cycle the key of a session", keys, args)
        if leftover:
            self._command("cycle the key of a session", b"UNLINK", leftover)
        return new_key

    def sessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """The user's live sessions, in one script call; see :meth:`SessionStore.sessions_of`.
        Entries of expired or deleted sessions are dropped from the index on the way."""
        now = [b"%d" % int(time.time() * 1000)]
        operation = "list the sessions of a user"
        reply = self._run_script(operation, [self._index_key(user_id)], now, _LIST)
        return _infos(user_id, reply)

    def revoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """Delete the user's sessions but ``keep``, in one atomic script call; see
        :meth:`SessionStore.revoke_user`."""
        args = self._revoke_args(keep)
        operation = "revoke the sessions of a user"
        return int(self._run_script(operation, [self._index_key(user_id)], args, _REVOKE))

    def clear_expired(self, progress: Progress | None = None) -> int | None:
        """Nothing to do: Redis expires each session by its TTL. Returns ``None``."""
        return None

    def close(self) -> None:
        """Close the store's own connection pool (a handed-over client is left open).

        Async clients close with their event loop, or with :meth:`aclose` from that loop.
        """
        with self._lock:
            lane, helpers = self._lane, self._helpers
            if self._owns:
                self._lane, self._helpers = None, []
            for stale in [other for other in self._loop_clients if other.is_closed()]:
                del self._loop_clients[stale]
        if self._owns and lane is not None:
            close_client(lane.client, helpers)

    def check_report(self) -> list[CheckNote]:
        """What ``session-core check`` prints about the servers: whether a crash of each would
        lose sessions (its persistence mode), and a warning when its ``proto-max-bulk-len`` is
        below ``max_value_size``. Not an async method: it serves the command line only.

        Raises:
            StoreUnreachableError: when a server does not answer.
        """
        operation = "check the server's persistence"
        lane = self._sync_lane(operation)
        try:
            return server_report(lane.client, self.target, self.options.max_value_size)
        except UNREACHABLE_ERRORS as exc:
            raise self._unreachable(operation, exc) from exc

    # ------------------------------------------------------------------ async twins

    async def aload(self, key: str) -> SessionRecord | None:
        """Async twin of :meth:`load`, through :mod:`redis.asyncio`."""
        if self._async_in_threads():
            return await super().aload(key)
        if not is_plausible_key(key):
            return None
        reply = await self._acommand("load", b"HGETALL", [self._redis_key(key)])
        return _decode(reply, time.time()) if reply else None

    async def asave(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Async twin of :meth:`save`."""
        if self._async_in_threads():
            return await super().asave(key, record, changes)
        result_key, keys, args = self._save_plan(key, record, changes)
        if keys and not await self._arun_script("save", keys, args) and key is not None:
            return None
        return result_key

    async def adelete(self, key: str) -> None:
        """Async twin of :meth:`delete`."""
        if self._async_in_threads():
            return await super().adelete(key)
        if not is_plausible_key(key):
            return None
        await self._acommand("delete", b"UNLINK", [self._redis_key(key)])
        return None

    async def acycle_key(self, key: str, record: SessionRecord) -> str:
        """Async twin of :meth:`cycle_key`."""
        if self._async_in_threads():
            return await super().acycle_key(key, record)
        new_key, keys, args, leftover = self._cycle_plan(key, record)
        await self._arun_script("cycle the key of a session", keys, args)
        if leftover:
            await self._acommand("cycle the key of a session", b"UNLINK", leftover)
        return new_key

    async def asessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """Async twin of :meth:`sessions_of`."""
        if self._async_in_threads():
            return await super().asessions_of(user_id)
        now = [b"%d" % int(time.time() * 1000)]
        operation = "list the sessions of a user"
        reply = await self._arun_script(operation, [self._index_key(user_id)], now, _LIST)
        return _infos(user_id, reply)

    async def arevoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """Async twin of :meth:`revoke_user`."""
        if self._async_in_threads():
            return await super().arevoke_user(user_id, keep)
        args = self._revoke_args(keep)
        operation = "revoke the sessions of a user"
        return int(await self._arun_script(operation, [self._index_key(user_id)], args, _REVOKE))

    async def aclear_expired(self, progress: Progress | None = None) -> int | None:
        """Async twin of :meth:`clear_expired`: nothing to do, returns ``None``."""
        return None

    async def aclose(self) -> None:
        """Close the running event loop's async client, and the sync pool (see :meth:`close`)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._loop_clients.pop(loop, None)
            self._last_loop = (None, None)
        if entry is not None:
            await entry[1].aclose()
        self.close()

    def _async_in_threads(self) -> bool:
        """Whether the async twins fall back to worker threads (only a sync client was given)."""
        return self._async_lane is None and not self._owns

    # ------------------------------------------------------------------ records by hash

    def scan_records(self, cursor: str | None = None, count: int = 500) -> RecordPage:
        """One page of live records: ``SCAN`` over the key prefix (see :mod:`.listing`)."""
        return listing.scan_records(self, cursor, count)

    def load_record(self, key_hash: str) -> SessionRecord | None:
        """The live record kept under ``key_hash`` (``HGETALL``), or ``None``."""
        return listing.load_record(self, key_hash)

    def insert_record(self, key_hash: str, record: SessionRecord) -> bool:
        """Write ``record`` under ``key_hash`` if absent, in one script."""
        return listing.insert_record(self, key_hash, record)

    def delete_record(self, key_hash: str) -> None:
        """Remove the record kept under ``key_hash`` (``UNLINK``)."""
        listing.delete_record(self, key_hash)

    async def ainsert_record(self, key_hash: str, record: SessionRecord) -> bool:
        """Async twin of :meth:`insert_record`."""
        if self._async_in_threads():
            return await super().ainsert_record(key_hash, record)
        return await listing.ainsert_record(self, key_hash, record)

    async def adelete_record(self, key_hash: str) -> None:
        """Async twin of :meth:`delete_record`."""
        if self._async_in_threads():
            await super().adelete_record(key_hash)
        else:
            await listing.adelete_record(self, key_hash)

    def __repr__(self) -> str:
        return f"<RedisStore {self.target} prefix={self.prefix!r}>"
