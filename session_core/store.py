"""The store contract: what a session backend implements.

A store is one long-lived object per app, shared by every request, thread and task. It loads,
saves and deletes whole sessions by key. Every method has an async twin whose default runs the
sync method in a worker thread; a store with a native async client overrides the twins.

The conformance suite in :mod:`session_core.testing` checks every promise made here.
"""

from __future__ import annotations

import copyreg
import hashlib
import json
import re
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeAlias, TypeVar, cast

from ._compat import compact_json_encoder
from .errors import ListingUnsupportedError, StoreContractError, UserIndexUnsupportedError

__all__ = [
    "KEY_BYTES",
    "STORE_API_VERSION",
    "SUPPORTED_STORE_API",
    "Changes",
    "JSONValue",
    "ListingUnsupportedError",
    "Progress",
    "RecordPage",
    "SessionData",
    "SessionInfo",
    "SessionRecord",
    "SessionStore",
    "UserId",
    "decode_json",
    "encode_json",
    "generate_key",
    "hash_key",
    "is_key_hash",
    "is_plausible_key",
    "user_index_name",
    "with_flags",
]

JSONValue: TypeAlias = str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None
"""A value a session can hold: anything JSON can represent, with ``str`` keys in objects."""

SessionData: TypeAlias = dict[str, JSONValue]
"""A session's contents."""

UserId: TypeAlias = str | int
"""Who a session belongs to (:attr:`Session.user_id <session_core.Session.user_id>`): the app's
own id for the user. Compared as text (see :func:`user_index_name`): ``7`` and ``"7"`` are the
same user, so that ``session-core sign-out --user 7`` finds sessions an app bound with an int."""

Progress: TypeAlias = Callable[[int], None]
"""Called by :meth:`SessionStore.clear_expired` with the number of records removed so far."""

RecordPage: TypeAlias = "tuple[list[tuple[str, SessionRecord]], str | None]"
"""What :meth:`SessionStore.scan_records` returns: ``(key_hash, record)`` pairs and the cursor
of the next page (``None`` after the last)."""

STORE_API_VERSION = 1
"""The store API this session-core defines. A plugin returns it from its
``session_core_store_api_version`` hook, as it was when the plugin was written."""

SUPPORTED_STORE_API = range(1, 2)
"""The store API versions this session-core can load."""

KEY_BYTES = 32
"""Random bytes in a session key (256 bits)."""

# 43 characters (len(secrets.token_urlsafe(KEY_BYTES))) of URL-safe base64; a compiled pattern
# checks that in about half the time of a set lookup per character.
_KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


_encode = compact_json_encoder()
_raw_decode = json.JSONDecoder().raw_decode


def encode_json(value: JSONValue) -> str:
    """``value`` as compact JSON (no spaces, UTF-8 characters kept): how stores serialise
    session data. Much cheaper per call than ``json.dumps`` with options."""
    return _encode(value)


def decode_json(text: str) -> Any:
    """The value of JSON ``text`` written by :func:`encode_json`; raises :class:`ValueError` for
    anything else, including extra data or whitespace around the value."""
    value, end = _raw_decode(text)
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return value


def generate_key() -> str:
    """Return a new session key: 256 random bits from :mod:`secrets`, URL-safe base64."""
    return secrets.token_urlsafe(KEY_BYTES)


def is_plausible_key(key: str) -> bool:
    """Whether ``key`` has the shape of a key made by :func:`generate_key`.

    Server stores call it before any I/O so that garbage from a cookie costs no round trip.
    """
    return _KEY_SHAPE.fullmatch(key) is not None


def user_index_name(user_id: UserId) -> str:
    """The text a store indexes ``user_id`` under: ``str(user_id)``.

    Raises:
        TypeError: ``user_id`` is not a ``str`` or an ``int`` (a ``bool`` is refused too).
    """
    if isinstance(user_id, bool) or not isinstance(user_id, str | int):
        raise TypeError(f"a user id is a str or an int, not {type(user_id).__name__}")
    return str(user_id)


_KEY_HASH_SHAPE = re.compile(r"[0-9a-f]{64}")


def is_key_hash(text: str) -> bool:
    """Whether ``text`` has the shape of a :func:`hash_key` value (64 lowercase hex digits):
    stores write records by hash only under such names."""
    return _KEY_HASH_SHAPE.fullmatch(text) is not None


def hash_key(key: str) -> str:
    """The SHA-256 of a session key, hex encoded: what server stores keep instead of the key.

    A leaked table or dump then holds no live session ids. The key already has 256 bits of
    entropy, so a fast unsalted hash is enough to make it irreversible.
    """
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(slots=True)
class SessionRecord:
    """One session as a store keeps it.

    Attributes:
        data: the session's contents. In a save whose :attr:`Changes.complete` is false it holds
            only the keys in :attr:`Changes.updated`.
        expires_at: Unix time after which the store must not return this record. Stores that
            can expire data by themselves (a TTL) should use it; the others filter on it.
        expiry: the session's own expiry setting. Opaque to the store: small JSON to keep with the
            record and return unchanged from :meth:`SessionStore.load`.
        version: store-private; what the store needs for concurrency control (for example a row
            version). Returned by ``load``, handed back unchanged to ``save``; ``save`` may set
            it to the new value.
        user_id: the user the session belongs to (:attr:`Session.user_id
            <session_core.Session.user_id>`), or ``None``. A session is bound to a user when it is
            created: a store reads it in ``save(None, ...)`` and ``cycle_key`` only, keeps it
            through every later save (an update never changes it), and returns it from ``load``.
            A store without :attr:`SessionStore.indexes_users` may ignore it (its sessions then
            forget their user between requests).
        client: details about the visitor's device the app chose to record
            (:meth:`Session.record_client <session_core.Session.record_client>`), or ``None``.
            When not ``None`` a store with :attr:`SessionStore.indexes_users` writes it (in any
            save) and shows it in :class:`SessionInfo`; ``None`` keeps what it holds. Others
            may ignore it.
    """

    data: SessionData
    expires_at: float
    expiry: JSONValue = None
    version: object = None
    user_id: UserId | None = None
    client: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One of a user's sessions, as :meth:`SessionStore.sessions_of` describes it: never its
    key, which would let whoever reads the list take the session over.

    Attributes:
        key_hash: :func:`hash_key` of the session's key. Compare it with
            ``hash_key(session.key)`` (or use :meth:`is_key`) to mark the current session.
        user_id: the user, as the session was bound to it.
        created_at: when the session was bound to the user (the login), aware UTC.
        last_seen_at: when the session was last saved, aware UTC. A request that only reads its
            session saves nothing, so this is the last request that changed it.
        expires_at: when the session expires unless it is saved again, aware UTC.
        client: what the app recorded about the device with
            :meth:`Session.record_client <session_core.Session.record_client>` (``user_agent``,
            ``ip``); empty when it recorded nothing.
    """

    key_hash: str
    user_id: UserId
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    client: dict[str, str] = field(default_factory=dict)

    def is_key(self, key: str | None) -> bool:
        """Whether this describes the session saved under ``key`` (the current one, say)."""
        return key is not None and hash_key(key) == self.key_hash

    @classmethod
    def from_times(
        cls,
        key_hash: str,
        user_id: UserId,
        times: tuple[float, float, float],
        client: dict[str, str] | None = None,
    ) -> SessionInfo:
        """Build one from Unix ``times`` (created, last seen, expires): what stores keep."""
        created, seen, expires = (datetime.fromtimestamp(t, UTC) for t in times)
        return cls(key_hash, user_id, created, seen, expires, dict(client or {}))


@dataclass(slots=True)
class Changes:
    """What a request changed in a session, so a store can merge instead of overwriting.

    Two concurrent requests of one session that change different keys must both keep their
    change: a store applies ``updated`` and ``deleted`` to what it holds now, not the whole
    ``record.data`` it was given (unless it has no newer data than the caller's).

    Attributes:
        updated: keys set by this request; their new values are in ``record.data``.
        deleted: keys removed by this request.
        complete: whether ``record.data`` is the whole session. False only for stores with
            :attr:`SessionStore.partial_writes`, when the request wrote without reading.
        expiry: whether to write ``record.expiry`` and ``record.expires_at``. False only when
            ``complete`` is false and the request did not call ``set_expiry``: the session's
            expiry setting is then unknown, so the store keeps the stored setting and expiry time
            unchanged (a write-only request does not extend the session's life).
    """

    updated: frozenset[str]
    deleted: frozenset[str] = frozenset()
    complete: bool = True
    expiry: bool = True

    @classmethod
    def everything(cls, record: SessionRecord) -> Changes:
        """Changes that rewrite every key of ``record``: used when a session is created."""
        return cls(frozenset(record.data))


class SessionStore(ABC):
    """The base class of every session store.

    Subclasses implement :meth:`load`, :meth:`save` and :meth:`delete`; the rest have defaults.
    An instance is shared by every request of an app, so it must be safe to use from several
    threads and tasks at once. A store that talks to a server raises
    :class:`~session_core.StoreUnreachableError` when it cannot, and never returns someone
    else's data for a key.
    """

    name: ClassVar[str] = ""
    """The store's public name (its entry-point name), used in messages."""

    local: ClassVar[bool] = False
    """True when ``load`` and ``save`` do no I/O (the data travels in the cookie). The ASGI
    middleware then loads lazily on the event loop instead of loading ahead with ``aload``."""

    partial_writes: ClassVar[bool] = False
    """True when ``save`` can apply :class:`Changes` to a session it was not given in full, so a
    request that only writes keys needs no read first. False makes the session load before it
    saves, and ``Changes.complete`` is then always true."""

    needs_cleanup: ClassVar[bool] = False
    """True when expired records stay until :meth:`clear_expired` removes them (SQL tables).
    False for stores whose data expires by itself (cookies, Redis TTLs)."""

    indexes_users: ClassVar[bool] = False
    """True when the store keeps its sessions indexed by :attr:`SessionRecord.user_id` and
    implements :meth:`sessions_of` and :meth:`revoke_user` (and their async twins). The
    conformance suite then tests them. False: both raise
    :class:`~session_core.UserIndexUnsupportedError`."""

    lists_records: ClassVar[bool] = False
    """True when the store can list its live records and read, write and delete them by key
    hash: :meth:`scan_records`, :meth:`load_record`, :meth:`insert_record` and
    :meth:`delete_record`. Copying sessions
    between stores (``session-core migrate``) and the front of a ``tiered`` store need it."""

    @staticmethod
    def generate_key() -> str:
        """A new session key; see :func:`generate_key`."""
        return generate_key()

    @abstractmethod
    def load(self, key: str) -> SessionRecord | None:
        """The record saved under ``key``, or ``None``.

        ``None`` when no such record exists, it has expired (``expires_at`` is past), or ``key``
        is not a key this store could have made. Never raises for a malformed key.
        """

    @abstractmethod
    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Write ``record`` and return the key it is now saved under.

        With ``key=None`` a new session is created under a fresh key and ``changes`` lists every
        key. With a key, the existing session is updated by merging ``changes`` into what the
        store holds now; if that session no longer exists (deleted, expired, or never existed)
        nothing is written and ``None`` is returned, so a session deleted by one request is not
        brought back by another. A store whose key is the data itself (the cookie store) returns
        a new key on every save.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the session saved under ``key``. A missing key is not an error."""

    def cycle_key(self, key: str, record: SessionRecord) -> str:
        """Move the session under ``key`` to a fresh key and delete the old record.

        Called at login against session fixation. ``record`` is the whole session. The default
        saves a new session then deletes the old one; stores that can, do both atomically.
        """
        new_key = self.save(None, record, Changes.everything(record))
        if new_key is None:  # pragma: no cover - a create always returns a key
            raise StoreContractError(
                self.name or type(self).__name__, "save", "save(None, ...) returned no key"
            )
        self.delete(key)
        return new_key

    def clear_expired(self, progress: Progress | None = None) -> int | None:
        """Remove expired records and return how many; ``None`` if the store needs no cleanup.

        Long runs work in bounded batches so that live traffic is not blocked, and call
        ``progress`` with the running total after each batch.
        """
        return None

    def sessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """The live sessions bound to ``user_id``, most recently seen first.

        Expired and deleted sessions are never listed. Stores with :attr:`indexes_users`
        override it; the default raises.

        Raises:
            UserIndexUnsupportedError: the store keeps no index of sessions by user.
        """
        raise UserIndexUnsupportedError(self.name, "list the sessions of a user")

    def revoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """Delete every session bound to ``user_id`` except the one saved under ``keep`` (a
        session key, not its hash), and return how many were deleted.

        A revoked session is gone as if flushed: its next request starts a fresh anonymous
        session, and a save racing the revocation does not bring it back. Stores with
        :attr:`indexes_users` override it; the default raises.

        Raises:
            UserIndexUnsupportedError: the store keeps no index of sessions by user.
        """
        raise UserIndexUnsupportedError(self.name, "revoke the sessions of a user")

    # The listing capability (lists_records). Records are named by hash_key(key): the store
    # never had the raw keys, and two stores that both keep hash_key(key) agree on the name, so
    # a record copied by hash is found by the visitor's unchanged key in the other store.

    def scan_records(self, cursor: str | None = None, count: int = 500) -> RecordPage:
        """One page of live records, about ``count`` of them, after ``cursor`` (``None``: from
        the start); returns the page and the cursor of the next one (``None`` when done).

        Safe while the store serves traffic: a record that lives through the whole scan is
        listed at least once; records created or deleted meanwhile may or may not be. A cursor
        stays valid across processes, so a long copy can resume where it stopped.
        Only for stores with :attr:`lists_records`.
        """
        raise self._cannot_list()

    def load_record(self, key_hash: str) -> SessionRecord | None:
        """The live record kept under ``key_hash``, or ``None``. Only for stores with
        :attr:`lists_records`."""
        raise self._cannot_list()

    def insert_record(self, key_hash: str, record: SessionRecord) -> bool:
        """Write ``record`` under ``key_hash`` unless a live record is already there (it is
        kept); returns whether it wrote. A name that is not a key hash (:func:`is_key_hash`)
        or a record already expired is not written. Only for stores with :attr:`lists_records`."""
        raise self._cannot_list()

    def delete_record(self, key_hash: str) -> None:
        """Remove the record kept under ``key_hash``; a missing one is not an error. Only for
        stores with :attr:`lists_records`."""
        raise self._cannot_list()

    def _cannot_list(self) -> ListingUnsupportedError:
        return ListingUnsupportedError(self.name or type(self).__name__)

    def close(self) -> None:  # noqa: B027 - optional: stores without connections keep it
        """Release connections and pools. The store must not be used afterwards."""

    # The async twins. The defaults run the sync method in a worker thread so that the event loop
    # is never blocked; stores with a native async client override them. asyncio is imported
    # here, not at the top: it is a fifth of session_core's import time, and WSGI apps never
    # need it.

    async def aload(self, key: str) -> SessionRecord | None:
        """Async twin of :meth:`load`."""
        import asyncio

        return await asyncio.to_thread(self.load, key)

    async def asave(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Async twin of :meth:`save`."""
        import asyncio

        return await asyncio.to_thread(self.save, key, record, changes)

    async def adelete(self, key: str) -> None:
        """Async twin of :meth:`delete`."""
        import asyncio

        await asyncio.to_thread(self.delete, key)

    async def acycle_key(self, key: str, record: SessionRecord) -> str:
        """Async twin of :meth:`cycle_key`."""
        import asyncio

        return await asyncio.to_thread(self.cycle_key, key, record)

    async def aclear_expired(self, progress: Progress | None = None) -> int | None:
        """Async twin of :meth:`clear_expired`."""
        import asyncio

        return await asyncio.to_thread(self.clear_expired, progress)

    async def asessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """Async twin of :meth:`sessions_of`."""
        if not self.indexes_users:  # refused by the sync method, with no I/O
            return self.sessions_of(user_id)
        import asyncio

        return await asyncio.to_thread(self.sessions_of, user_id)

    async def arevoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """Async twin of :meth:`revoke_user`."""
        if not self.indexes_users:  # refused by the sync method, with no I/O
            return self.revoke_user(user_id, keep)
        import asyncio

        return await asyncio.to_thread(self.revoke_user, user_id, keep)

    async def ainsert_record(self, key_hash: str, record: SessionRecord) -> bool:
        """Async twin of :meth:`insert_record`."""
        import asyncio

        return await asyncio.to_thread(self.insert_record, key_hash, record)

    async def adelete_record(self, key_hash: str) -> None:
        """Async twin of :meth:`delete_record`."""
        import asyncio

        await asyncio.to_thread(self.delete_record, key_hash)

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        import asyncio

        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


_STORE_FLAGS = ("local", "partial_writes", "needs_cleanup", "indexes_users", "lists_records")

S = TypeVar("S", bound=SessionStore)
_Flags: TypeAlias = tuple[tuple[str, bool], ...]  # (flag, value) pairs, sorted by flag

_variants: dict[tuple[type[SessionStore], _Flags], type[SessionStore]] = {}
_origins: dict[type[SessionStore], tuple[type[SessionStore], _Flags]] = {}
_metas: dict[type, type] = {}
_variants_lock = threading.Lock()


def with_flags(cls: type[S], **flags: bool) -> type[S]:
    """``cls``, with some of its class flags set otherwise: for a store whose abilities depend
    on its configuration.

    The flags are :attr:`~session_core.SessionStore.local`,
    :attr:`~session_core.SessionStore.partial_writes`,
    :attr:`~session_core.SessionStore.needs_cleanup`,
    :attr:`~session_core.SessionStore.indexes_users` and
    :attr:`~session_core.SessionStore.lists_records`. They are class attributes, read as
    ``type(store).lists_records`` (``session-core migrate`` and ``clear-expired``, and the
    conformance suite, read them so), so a store object that cannot do what its class says
    must be of another class: a subclass of ``cls`` saying so. Pick it in the store's
    ``__new__`` (``__init__`` then runs as usual)::

        def __new__(cls, options=None):
            on_cluster = options is not None and "cluster" in options
            return super().__new__(with_flags(cls, lists_records=False) if on_cluster else cls)

    The subclass adds nothing but the flags: ``isinstance(store, cls)`` holds, and it has
    ``cls``'s ``__name__``, ``__qualname__``, ``__module__`` and docstring, so reprs, logs and
    error messages name ``cls``. It is made once per ``(cls, flags)`` and cached, so the same
    flags give the same class (``type(a) is type(b)``), from any thread. A flag given the value
    ``cls`` already has changes nothing: ``with_flags(cls)`` and ``with_flags(cls,
    lists_records=cls.lists_records)`` are ``cls`` itself; ``with_flags`` of a class it made
    starts again from that class's ``cls``, with both sets of flags. The class pickles (by
    ``cls`` and its flags, not by name), and so does an object of it whose ``cls`` pickles.

    Raises:
        TypeError: ``cls`` is not a :class:`~session_core.SessionStore` subclass, a flag
            name is not one of the flags above (the message lists them), or a value is not a
            ``bool``.
    """
    if not (isinstance(cls, type) and issubclass(cls, SessionStore)):
        raise TypeError(f"with_flags() takes a SessionStore subclass, not {cls!r}")
    for flag, value in flags.items():
        if flag not in _STORE_FLAGS:
            raise TypeError(
                f"with_flags() got {flag!r}, which is not a store flag; the flags are "
                f"{', '.join(_STORE_FLAGS)}"
            )
        if not isinstance(value, bool):
            raise TypeError(f"with_flags(): {flag} must be True or False, not {value!r}")
    base: type[SessionStore] = cls
    origin = _origins.get(base)
    if origin is not None:  # a class made here: from its base, with its flags and these
        base, earlier = origin
        flags = {**dict(earlier), **flags}
    changed = tuple(sorted((f, v) for f, v in flags.items() if getattr(base, f) != v))
    if not changed:
        return cast("type[S]", base)
    wanted = (base, changed)
    variant = _variants.get(wanted)
    if variant is None:
        with _variants_lock:  # two threads asking at once get one class
            variant = _variants.get(wanted)
            if variant is None:
                attributes: dict[str, Any] = dict(changed)
                attributes["__module__"] = base.__module__
                attributes["__qualname__"] = base.__qualname__
                attributes["__doc__"] = base.__doc__
                variant = _flagged_meta(type(base))(base.__name__, (base,), attributes)
                _variants[wanted] = variant
                _origins[variant] = wanted
    return cast("type[S]", variant)


def _flagged_meta(meta: type) -> type:
    """A subclass of the metaclass ``meta`` (``ABCMeta`` for most stores) for the classes
    :func:`with_flags` makes, registered with :mod:`copyreg` so that pickling such a class
    saves its base class and flags: by name it would find the base class, not itself. Made
    once per metaclass; called with ``_variants_lock`` held."""
    flagged = _metas.get(meta)
    if flagged is None:
        flagged = _metas[meta] = type(f"Flagged{meta.__name__}", (meta,), {"__module__": __name__})
        copyreg.pickle(flagged, _reduce_flagged)
    return flagged


def _reduce_flagged(cls: type[SessionStore]) -> str | tuple[Any, ...]:
    origin = _origins.get(cls)
    if origin is None:  # a subclass of one, defined in a module: pickled by its name
        return cls.__qualname__
    return _flagged, origin


def _flagged(base: type[SessionStore], flags: _Flags) -> type[SessionStore]:
    """The class ``with_flags(base, **dict(flags))``, for unpickling it."""
    return with_flags(base, **dict(flags))
