"""The per-visitor :class:`Session`: a lazy, change-tracking mapping of JSON values."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Final, Literal, TypeAlias

from .config import MAX_COOKIE_AGE
from .errors import InvalidExpiryError, StoreUnreachableError
from .events import EventEmitter, EventKind
from .store import (
    Changes,
    JSONValue,
    SessionData,
    SessionRecord,
    SessionStore,
    UserId,
    user_index_name,
)

__all__ = ["DEFAULT_MAX_AGE", "ResponseAction", "Session", "check_json_value"]

DEFAULT_MAX_AGE = 1209600
"""Two weeks, in seconds: the default session lifetime."""

_SCALARS = frozenset({int, bool, type(None)})
_MISSING: Any = object()
_NO_KEYS: frozenset[str] = frozenset()


class _Unloaded:
    """The one entry a :class:`Session`'s own dict storage holds (its data lives elsewhere).

    Code that reads a dict's storage directly, bypassing its methods, must not find a session
    empty: json's C encoder writes ``{}`` for an empty dict without calling ``items()``. With
    this entry it calls ``items()``, which loads the session; a reader that takes the storage as
    it is (orjson) meets a key that is not a str and fails loudly instead of writing ``{}``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<session data: use the Session's methods>"


_UNLOADED: Any = _Unloaded()
# dict.setdefault, looked up once, marks the storage: it runs for every session made, and as a
# fast-call method it costs half of dict.__setitem__ (a slot wrapper).
_mark_storage = dict.setdefault


def _normalize_key(key: object) -> str:
    if isinstance(key, Enum) and isinstance(key.value, str):
        return key.value
    if isinstance(key, str):
        return str.__str__(key)
    raise TypeError(f"session keys must be str, not {type(key).__name__} {key!r}")


def _check_text(text: str, key: str, path: str, name: str = "session") -> None:
    """Refuse a ``str`` that UTF-8 cannot encode: one holding a lone surrogate (``"\\ud800"``,
    which a JSON request body can carry), which every store would fail to write."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise TypeError(
            f"{name}[{key!r}]{path}: the string holds a lone surrogate "
            f"{text[exc.start]!r} at index {exc.start}, which UTF-8 (and so a stored session) "
            f"cannot carry; check or clean the text first"
        ) from None


def check_json_value(value: object, key: str, *, name: str = "session") -> None:
    """Refuse ``value`` unless every store can keep it as the session's ``key``.

    A session holds JSON values: ``str`` (which UTF-8 must encode: no lone surrogate such as
    ``"\\ud800"``), ``int``, finite ``float``, ``bool``, ``None``, and lists and dicts (``str``
    keys) of them, at any depth. The session runs this check at assignment; a framework
    integration with its own session object (Django's) runs it too, so the two refuse the same
    values with the same message.

    Args:
        value: the value to check.
        key: the session key it is stored under, named in the error.
        name: how the error names the session (``"request.session"`` for Django's).

    Raises:
        TypeError: naming ``name[key]``, where inside the value the problem is, and what a
            session can hold.
    """
    _check_json(value, key, "", name)


def _check_json(value: object, key: str, path: str = "", name: str = "session") -> None:
    if isinstance(value, str):  # str enums encode as their value
        if not value.isascii():
            _check_text(value, key, path, name)
        return
    if value is None or isinstance(value, int):  # bool is an int; int enums encode
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(
                f"{name}[{key!r}]{path}: {value!r} is not a JSON number; "
                f"only finite floats can be stored"
            )
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, key, f"{path}[{index}]", name)
        return
    if isinstance(value, dict):
        for inner_key, item in value.items():
            if not isinstance(inner_key, str):
                raise TypeError(
                    f"{name}[{key!r}]{path}: dict key {inner_key!r} is not a str; "
                    f"JSON objects only have string keys"
                )
            if not inner_key.isascii():
                _check_text(inner_key, key, f"{path} (a dict key)", name)
            _check_json(item, key, f"{path}[{inner_key!r}]", name)
        return
    hint = "; use a list" if isinstance(value, tuple) else ""
    raise TypeError(
        f"{name}[{key!r}]{path}: {type(value).__name__} is not a JSON value{hint}; a session "
        f"holds str, int, float, bool, None, and lists and dicts (str keys) of them"
    )


def _checked_seconds(seconds: int, value: object) -> int:
    if seconds < 0:
        raise InvalidExpiryError(value, "a negative lifetime; pass 0 or more seconds")
    if seconds > MAX_COOKIE_AGE:
        raise InvalidExpiryError(
            value,
            f"longer than {MAX_COOKIE_AGE} seconds (400 days), the longest lifetime browsers "
            f"give a cookie; pass at most that",
        )
    return seconds


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class ResponseAction(Enum):
    """What a response does with its session (:meth:`Session.response_action`)."""

    NOTHING = 0
    """The request never touched its session: no store call, no header."""
    VARY = 1
    """Only ``Vary: Cookie``: the session was read, and nothing needs saving."""
    SAVE = 2
    """Save the session, then send its cookie (or remove it, if it is empty)."""
    DROP_FLUSHED = 3
    """A 5xx response after a flush: delete the flushed records, save nothing, remove the
    cookie."""
    DELETE_COOKIE = 4
    """The cookie named no live session: remove it."""


# Bound once: module globals are faster to read than the enum's class attributes.
_NOTHING = ResponseAction.NOTHING
_VARY = ResponseAction.VARY
_SAVE = ResponseAction.SAVE
_DROP_FLUSHED = ResponseAction.DROP_FLUSHED
_DELETE_COOKIE = ResponseAction.DELETE_COOKIE


class _Write(Enum):
    """Which store call a save makes: the tag of a planned call (see _StoreCall)."""

    SAVE = 0
    CYCLE_KEY = 1
    DELETE = 2


_SAVE_CALL: Final = _Write.SAVE
_CYCLE_KEY_CALL: Final = _Write.CYCLE_KEY
_DELETE_CALL: Final = _Write.DELETE

# The store calls a save makes, planned by pure helpers that the sync and async saves share;
# each save makes the calls itself (store.save / store.asave, ...). Tagged tuples rather than
# NamedTuples: one is built on every save, and a NamedTuple costs seven times as much to build;
# the type checker narrows them by their tag all the same.
_Save: TypeAlias = tuple[Literal[_Write.SAVE], str | None, SessionRecord, Changes]
"""``store.save(key, record, changes)``; ``key`` is ``None`` for a new session."""
_CycleKey: TypeAlias = tuple[Literal[_Write.CYCLE_KEY], str, SessionRecord]
"""``store.cycle_key(key, record)``: the session moves to a new key."""
_Delete: TypeAlias = tuple[Literal[_Write.DELETE], str]
"""``store.delete(key)``: the session was emptied."""
_StoreCall: TypeAlias = _Save | _CycleKey | _Delete


class Session(dict[str, JSONValue]):
    """One visitor's session: a mapping of ``str`` keys to JSON values.

    It is a ``dict`` wherever app code can tell (``isinstance``, ``json.dumps``, ``dict(session)``,
    ``{**session}``, ``==``, ``|``, ``|=``, ``popitem`` taking the last key, live ``keys()``,
    ``values()`` and ``items()`` views), as Starlette's session is. ``copy()``, ``copy.copy``,
    ``copy.deepcopy``, pickling and ``session | other`` give a plain ``dict`` of its data.

    Building a session does no I/O: the first read or write loads it from its store. Values are
    checked at assignment; anything JSON cannot hold raises :class:`TypeError` naming the key.

    Changes are tracked key by key so that a save writes only what this request changed, and
    concurrent requests of one session that change different keys both keep their change.
    A list or dict read from the session and changed in place is noticed when the session is
    saved; :meth:`mark_modified` says so explicitly.

    Args:
        store: where the session lives.
        key: the key from the visitor's cookie, or ``None`` for a new visitor.
        max_age: the default lifetime in seconds (``cookie_max_age``).
        key_source: instead of ``key``, a callable that returns it; called on first load only, so
            a request that never touches its session does not even parse its cookie.
    """

    __slots__ = (
        "__dict__",
        "_accessed",
        "_data",
        "_deleted",
        "_incoming",
        "_key",
        "_key_source",
        "_lifetime_written",
        "_loaded",
        "_max_age",
        "_modified",
        "_store",
        "_updated",
    )

    # State most requests never change lives in class-level defaults; an instance stores its own
    # value (in a __dict__ made only then) when a request changes it. Building a session, which
    # every request does, then sets only the attributes above.
    _snapshots: dict[str, str] | None = None
    _expiry: JSONValue = None
    _expiry_changed = False
    _version: object = None
    _doomed: tuple[str, ...] = ()
    _rekey = False
    _vanished = False
    _events: EventEmitter | None = None
    _doomed_user: str | int | None = None
    # Sessions per user (see the user_id property): rare state, set at login only.
    _user: UserId | None = None
    _client: dict[str, str] | None = None

    def __init__(
        self,
        store: SessionStore,
        key: str | None = None,
        *,
        max_age: int = DEFAULT_MAX_AGE,
        key_source: Callable[[], str | None] | None = None,
    ) -> None:
        _mark_storage(self, _UNLOADED)  # type: ignore[misc]  # see _Unloaded
        self._store = store
        self._key_source = key_source
        self._incoming = key
        self._max_age = max_age
        self._key: str | None = None
        self._loaded = False
        self._lifetime_written = False
        self._accessed = False
        self._modified = False
        self._data: SessionData = {}
        # Most requests change nothing: the change sets are made on the first change.
        self._updated: set[str] | frozenset[str] = _NO_KEYS
        self._deleted: set[str] | frozenset[str] = _NO_KEYS

    # ------------------------------------------------------------------ loading

    @property
    def store(self) -> SessionStore:
        """The store this session lives in."""
        return self._store

    def incoming_key(self) -> str | None:
        """The key the visitor's cookie carried (``None`` if none), whether or not it was valid."""
        if self._key_source is not None:
            self._incoming = self._key_source()
            self._key_source = None
        return self._incoming

    def load(self) -> None:
        """Load the session from its store now, if it is not loaded yet.

        Only needed to force the load early; every read does it. In async code with a server-side
        store call :meth:`aload` instead, so the event loop is not blocked.
        """
        if not self._loaded:
            key = self.incoming_key()
            self._apply_loaded(key, self._store.load(key) if key else None)

    async def aload(self) -> None:
        """Async twin of :meth:`load`, through the store's ``aload``."""
        if not self._loaded:
            key = self.incoming_key()
            self._apply_loaded(key, await self._store.aload(key) if key else None)

    def _apply_loaded(self, key: str | None, record: SessionRecord | None) -> None:
        self._loaded = True
        if record is None:
            # A key the store does not know is never adopted (no session fixation): a new key is
            # made when this session is first saved.
            return
        self._key = key
        if record.version is not None:
            self._version = record.version
        if record.expiry is not None and not self._expiry_changed:
            self._expiry = record.expiry
        if record.user_id is not None:
            self._user = record.user_id
        if self._data:  # keys written before the load (partial writes) win over stored ones
            record.data.update(self._data)
        self._data = record.data

    def _read(self) -> SessionData:
        self._accessed = True
        if not self._loaded:
            self.load()
        return self._data

    # ------------------------------------------------------------------ mapping protocol

    def __getitem__(self, key: str) -> JSONValue:
        key = key if type(key) is str else _normalize_key(key)
        self._accessed = True
        if not self._loaded:
            self.load()
        value = self._data[key]
        if type(value) is list or type(value) is dict:
            self._watch(key, value)
        return value

    def __setitem__(self, key: str, value: JSONValue) -> None:
        key = key if type(key) is str else _normalize_key(key)
        # A plain str is the usual value: an ASCII one needs no further check.
        if type(value) is str:
            if not value.isascii():
                _check_text(value, key, "")
        elif type(value) not in _SCALARS:
            _check_json(value, key)
        if not key.isascii():
            _check_text(key, key, " (the key)")
        self._accessed = True
        if not self._loaded and not self._store.partial_writes:
            self.load()
        self._data[key] = value
        updated = self._updated
        if updated is _NO_KEYS:  # the first change: _updated_keys, without the call
            self._updated = {key}
        else:
            updated.add(key)  # type: ignore[union-attr]  # a set once not _NO_KEYS
        if self._deleted:
            self._deleted_keys().discard(key)
        self._modified = True

    def __delitem__(self, key: str) -> None:
        key = key if type(key) is str else _normalize_key(key)
        del self._read()[key]  # a missing key raises KeyError and changes nothing
        if self._updated:
            self._updated_keys().discard(key)
        self._deleted_keys().add(key)
        self._modified = True

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __contains__(self, key: object) -> bool:
        if type(key) is not str:
            try:
                key = _normalize_key(key)
            except TypeError:
                return False
        return key in self._read()

    def get(self, key: str, default: Any = None) -> Any:
        """``session[key]`` if present, else ``default``."""
        key = key if type(key) is str else _normalize_key(key)
        self._accessed = True
        if not self._loaded:
            self.load()
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            return default
        if type(value) is list or type(value) is dict:
            self._watch(key, value)
        return value

    def clear(self) -> None:
        """Remove every key. An emptied session's record and cookie are deleted on save."""
        data = self._read()
        if data:
            self._deleted_keys().update(data)
            self._updated = _NO_KEYS
            data.clear()
            self._modified = True

    def __repr__(self) -> str:
        state = "loaded" if self._loaded else "not loaded"
        keys = list(self._data) if self._loaded else "?"
        return f"<Session store={self._store.name!r} {state} keys={keys}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Session):
            return self is other
        if isinstance(other, dict):
            return self._read() == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None

    # ------------------------------------------------------------------ the rest of dict
    #
    # dict's own methods read the dict's storage, which holds no data (see _Unloaded), so each
    # is written here against the loaded data. Writes go through __setitem__ and __delitem__
    # (which subclasses such as Flask's session override), so every change is checked and
    # tracked; containers handed out in bulk are watched so in-place changes are noticed.

    def _watched(self) -> SessionData:
        data = self._read()
        for key, value in data.items():
            if type(value) is list or type(value) is dict:
                self._watch(key, value)
        return data

    def keys(self) -> KeysView[str]:  # type: ignore[override]
        """A live view of the keys, as ``dict.keys()``."""
        return self._read().keys()

    def values(self) -> ValuesView[JSONValue]:  # type: ignore[override]
        """A live view of the values, as ``dict.values()``."""
        return self._watched().values()

    def items(self) -> ItemsView[str, JSONValue]:  # type: ignore[override]
        """A live view of the ``(key, value)`` pairs, as ``dict.items()``."""
        return self._watched().items()

    def __reversed__(self) -> Iterator[str]:
        return reversed(self._read())

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value; ``default`` (or :class:`KeyError`) if it is
        missing, which changes nothing."""
        key = key if type(key) is str else _normalize_key(key)
        data = self._read()
        if key not in data:
            if default is _MISSING:
                raise KeyError(key)
            return default
        value = data[key]
        del self[key]
        return value

    def popitem(self) -> tuple[str, JSONValue]:
        """Remove and return the last inserted ``(key, value)`` pair, as ``dict.popitem()``."""
        data = self._read()
        if not data:
            raise KeyError("popitem(): the session is empty")
        key = next(reversed(data))
        value = data[key]
        del self[key]
        return key, value

    def setdefault(self, key: str, default: Any = None) -> Any:
        """``session[key]``, first setting it to ``default`` if it is missing."""
        key = key if type(key) is str else _normalize_key(key)
        if key not in self._read():
            self[key] = default
        return self[key]

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set every key of ``other`` (a mapping or ``(key, value)`` pairs), then ``kwargs``."""
        if isinstance(other, Mapping):
            for key in other:
                self[key] = other[key]
        elif hasattr(other, "keys"):
            for key in other.keys():  # noqa: SIM118 - not a Mapping: keys() is all it has
                self[key] = other[key]
        else:
            for key, value in other:
                self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def copy(self) -> dict[str, JSONValue]:
        """A shallow copy of the data, as a plain ``dict`` (so is ``dict.copy()``'s)."""
        return dict(self._watched())

    def __or__(self, other: Any) -> dict[str, JSONValue]:  # type: ignore[override]
        if not isinstance(other, dict):
            return NotImplemented
        merged = dict(self._watched())
        merged.update(other)
        return merged

    def __ror__(self, other: Any) -> dict[str, JSONValue]:  # type: ignore[override]
        if not isinstance(other, dict):
            return NotImplemented
        merged = dict(other)
        merged.update(self._watched())
        return merged

    def __ior__(self, other: Any) -> Session:  # type: ignore[override]
        self.update(other)
        return self

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        # Copied, deep-copied or pickled, a session is its data: a plain dict. (A session is
        # bound to its store and its request, neither of which a copy could share.)
        return (dict, (dict(self._watched()),))

    @classmethod
    def fromkeys(cls, iterable: Iterable[str], value: Any = None) -> dict[str, Any]:  # type: ignore[override]
        """A plain ``dict`` with these keys (a session is made by its middleware only)."""
        return dict.fromkeys(iterable, value)

    # ------------------------------------------------------------------ change tracking

    def _updated_keys(self) -> set[str]:
        updated = self._updated
        if isinstance(updated, frozenset):
            updated = self._updated = set()
        return updated

    def _deleted_keys(self) -> set[str]:
        deleted = self._deleted
        if isinstance(deleted, frozenset):
            deleted = self._deleted = set()
        return deleted

    def _watch(self, key: str, value: JSONValue) -> None:
        # Remember how a container looked when first read so an in-place change is noticed.
        snapshots = self._snapshots
        if snapshots is None:
            snapshots = self._snapshots = {}
        if key not in snapshots and key not in self._updated:
            snapshots[key] = _dumps(value)

    def _nested_changes(self) -> set[str]:
        changed: set[str] = set()
        if self._snapshots:
            for key, before in self._snapshots.items():
                if key in self._data and key not in self._updated:
                    after = self._data[key]
                    _check_json(after, key)
                    if _dumps(after) != before:
                        changed.add(key)
        return changed

    @property
    def accessed(self) -> bool:
        """Whether anything read or wrote the session in this request (the response then varies
        by cookie)."""
        return self._accessed

    @property
    def modified(self) -> bool:
        """Whether the session has changes to save: a key set or deleted, its expiry changed,
        its key cycled, a list or dict changed in place, or :meth:`mark_modified` called."""
        return (
            self._modified
            or self._expiry_changed
            or self._rekey
            or bool(self._snapshots and self._nested_changes())
        )

    def mark_modified(self, key: str | None = None) -> None:
        """Flag a change the session cannot see, so it is saved.

        With ``key``, that key is rewritten; without, every key is.
        """
        data = self._read()
        keys = [key if type(key) is str else _normalize_key(key)] if key is not None else data
        for name in keys:
            if name in data:
                _check_json(data[name], name)
                self._updated_keys().add(name)
        self._modified = True

    @property
    def key(self) -> str | None:
        """The key the session is saved under; ``None`` until it is first saved."""
        return self._key

    @property
    def is_empty(self) -> bool:
        """Whether the session holds no data (loads it)."""
        return not self._read()

    def cycle_key(self) -> None:
        """Give the session a new key, keeping its data, and delete the old record when saved.

        Call it when the visitor's privileges change (at login) against session fixation: a key
        an attacker planted or saw before is useless afterwards.
        """
        self._read()
        if self._key is not None:
            self._rekey = True
        self._modified = True
        self._updated_keys().update(self._data)

    def flush(self) -> None:
        """Remove all data, the stored record and the cookie: call it at logout.

        The record is deleted when the session is next saved (by the middleware, at the end of
        the request). Writing to the session afterwards starts a new one under a new key.
        """
        self._read()
        if self._key is not None:
            self._doomed = (*self._doomed, self._key)
            # The sign-out's event (sent later, at the save) names who signed out.
            self._doomed_user = self._user_id()
        self._key = None
        self._version = None
        self._rekey = False
        self._data = {}
        self._updated = self._deleted = _NO_KEYS
        self._snapshots = None
        self._expiry = None
        self._expiry_changed = False
        if self._user is not None or self._client is not None:
            self._user = self._client = None
        self._modified = True

    @property
    def flushed(self) -> bool:
        """Whether :meth:`flush` was called and its record is yet to be deleted."""
        return bool(self._doomed)

    def take_flushed_keys(self) -> list[str]:
        """The keys whose records :meth:`flush` doomed, handed over once for deletion; used when
        a response must not save (5xx) but a sign-out must still take effect."""
        keys, self._doomed = list(self._doomed), ()
        return keys

    @property
    def vanished(self) -> bool:
        """Whether the last save found the session deleted by another request (it was not
        brought back, and the visitor now has an empty session)."""
        return self._vanished

    # ------------------------------------------------------------------ sessions per user

    @property
    def user_id(self) -> UserId | None:
        """The user this session belongs to (a ``str`` or ``int``), or ``None`` (loads it).

        Set it at login: the store then indexes the session under the user, so that
        ``store.sessions_of(user_id)`` lists it and ``store.revoke_user(user_id)`` signs it out
        (on a store with ``indexes_users``; others may forget it between requests). Setting a
        different user also cycles the key (:meth:`cycle_key`), as any change of privileges
        must; :meth:`flush` (logout) clears it. A session bound to a user is kept even with no
        data in it.

        Raises:
            TypeError: on assignment of anything but a ``str``, an ``int`` or ``None``.
        """
        self._read()
        return self._user

    @user_id.setter
    def user_id(self, value: UserId | None) -> None:
        if value is not None:
            user_index_name(value)  # refuses what no store could index
        current = self.user_id
        if value != current:
            self._user = value
            self.cycle_key()

    def record_client(self, *, user_agent: str | None = None, ip: str | None = None) -> None:
        """Keep details of the visitor's device with the session, for a "where you're signed in"
        page (:class:`~session_core.SessionInfo`'s ``client``).

        Nothing is recorded unless the app calls this: a user agent and an IP address are
        personal data, so record them only with a reason the app's privacy notice gives (and
        perhaps only a truncated IP). Call it at login, beside setting :attr:`user_id`; a later
        call replaces the details. Stores without ``indexes_users`` may ignore them.
        """
        details = {"user_agent": user_agent, "ip": ip}
        self._client = {name: value for name, value in details.items() if value is not None}
        self._accessed = True
        self._modified = True

    # ------------------------------------------------------------------ expiry

    def set_expiry(self, value: int | timedelta | datetime | None) -> None:
        """Choose when this session expires; the choice is saved with the session.

        - a positive ``int`` or a ``timedelta``: that many seconds after each save;
        - an aware ``datetime``: at that moment, however often it is saved;
        - ``0``: when the browser closes (the cookie has no Max-Age; the server keeps the record
          for the default lifetime, ``cookie_max_age``);
        - ``None``: back to the default lifetime.

        The cookie's Max-Age is at most :data:`~session_core.config.MAX_COOKIE_AGE` (400 days),
        as browsers cap it.

        Raises:
            TypeError: ``value`` is none of these types.
            InvalidExpiryError: negative seconds, more than 400 days of seconds, or a naive
                datetime (also a :class:`ValueError`).
        """
        policy: JSONValue
        if value is None:
            policy = None
        elif isinstance(value, bool):
            raise TypeError("set_expiry() takes seconds, a timedelta, a datetime, 0 or None")
        elif isinstance(value, int):
            policy = _checked_seconds(value, value)
        elif isinstance(value, timedelta):
            policy = _checked_seconds(math.ceil(value.total_seconds()), value)
        elif isinstance(value, datetime):
            if value.tzinfo is None:
                raise InvalidExpiryError(
                    value, "a naive datetime; pass an aware one, such as datetime.now(UTC) + ..."
                )
            # Any datetime will do (the record expires then): the cookie's Max-Age is capped at
            # MAX_COOKIE_AGE, as browsers cap it, and each cookie sent is good for that long.
            policy = {"at": value.timestamp()}
        else:
            raise TypeError(
                f"set_expiry() takes seconds, a timedelta, a datetime, 0 or None, "
                f"not {type(value).__name__}"
            )
        self._accessed = True
        if not self._loaded and not self._store.partial_writes:
            self.load()
        self._expiry = policy
        self._expiry_changed = True

    def _known_expiry(self) -> JSONValue:
        if not self._loaded and not self._expiry_changed and not self._lifetime_written:
            self.load()
        return self._expiry

    @property
    def expire_at_browser_close(self) -> bool:
        """Whether the cookie ends with the browser session (``set_expiry(0)``)."""
        return self._known_expiry() == 0

    @property
    def lifetime_written(self) -> bool:
        """Whether the last save wrote the session's expiry (a write-only save to a store with
        partial writes leaves the stored expiry alone, so the cookie need not be re-sent)."""
        return self._lifetime_written

    @property
    def expiry_age(self) -> int:
        """Seconds from now until the session expires if it is saved now."""
        policy = self._known_expiry()
        if isinstance(policy, dict):
            return max(0, math.ceil(float(policy["at"]) - time.time()))  # type: ignore[arg-type]
        if isinstance(policy, int) and policy > 0:
            return policy
        return self._max_age

    @property
    def expires_at(self) -> datetime:
        """When the session expires if it is saved now (an aware UTC datetime)."""
        return datetime.fromtimestamp(
            self._expires_at_timestamp(time.time(), self._known_expiry()), UTC
        )

    def _expires_at_timestamp(self, now: float, policy: JSONValue) -> float:
        if isinstance(policy, dict):
            return float(policy["at"])  # type: ignore[arg-type]
        if isinstance(policy, int) and policy > 0:
            return now + policy
        return now + self._max_age

    @property
    def cookie_max_age(self) -> int | None:
        """The cookie's Max-Age: ``None`` for a browser-session cookie."""
        policy = self._expiry if self._loaded else self._known_expiry()
        if policy is None:
            return self._max_age
        return None if policy == 0 else self.expiry_age

    # ------------------------------------------------------------------ saving

    def response_action(self, save_every_request: bool, status: int) -> ResponseAction:
        """What the response of a request with ``status`` does with this session: the
        middleware's decision, asked of the session so that it alone reads its state.

        Args:
            save_every_request: the ``save_every_request`` setting.
            status: the response's HTTP status; on a 5xx nothing is saved (but a sign-out's
                deletion still happens).
        """
        if not self._accessed and (not save_every_request or self.incoming_key() is None):
            return _NOTHING
        if status >= 500:
            return _DROP_FLUSHED if self._doomed else _VARY
        if self.modified or self._doomed or save_every_request:
            return _SAVE
        if self._loaded and self._key is None and self.incoming_key() is not None:
            # The cookie named no live session (tampered, expired, foreign): remove it. (Not
            # when the load never happened, or failed and the app carried on: the cookie may
            # well be good.)
            return _DELETE_COOKIE
        return _VARY

    def observe(self, events: EventEmitter) -> None:
        """Report this session's store calls to ``events`` from now on.

        The middleware does so before it saves, when a plugin observes session events (see
        :meth:`~session_core.registry.StoreRegistry.event_emitter`); a session saved by app
        code before that, or built by hand, reports nothing unless told so here.
        """
        self._events = events

    def drop_flushed(self) -> None:
        """Delete the records :meth:`flush` doomed now, without saving anything else (what a
        response that must not save, a 5xx, still does: a sign-out takes effect)."""
        store = self._store
        events = self._events
        for doomed in self._doomed:
            started = 0.0 if events is None else time.perf_counter()
            try:
                store.delete(doomed)
            except StoreUnreachableError:
                if events is not None:
                    events.emit(EventKind.STORE_ERROR, doomed, self._doomed_user, started)
                raise
            if events is not None:
                events.emit(EventKind.FLUSHED, doomed, self._doomed_user, started)
        self._doomed = ()

    async def adrop_flushed(self) -> None:
        """Async twin of :meth:`drop_flushed`, through the store's ``adelete``."""
        store = self._store
        events = self._events
        for doomed in self._doomed:
            started = 0.0 if events is None else time.perf_counter()
            try:
                await store.adelete(doomed)
            except StoreUnreachableError:
                if events is not None:
                    events.emit(EventKind.STORE_ERROR, doomed, self._doomed_user, started)
                raise
            if events is not None:
                events.emit(EventKind.FLUSHED, doomed, self._doomed_user, started)
        self._doomed = ()

    def save(self) -> str | None:
        """Write the session's changes to its store now and return its key.

        Returns ``None`` when there is nothing stored: the session is empty (its record is then
        deleted) or it was deleted by another request meanwhile (it is not brought back). The
        middleware calls this at the end of each request; call it yourself outside one.
        """
        if self._doomed:
            self.drop_flushed()
        if not self._loaded and self._needs_load_to_save():
            self.load()
        store = self._store
        events = self._events
        call = self._write_call()
        while call is not None:
            started = 0.0 if events is None else time.perf_counter()
            try:
                if call[0] is _SAVE_CALL:
                    result = store.save(call[1], call[2], call[3])
                elif call[0] is _CYCLE_KEY_CALL:
                    result = store.cycle_key(call[1], call[2])
                else:
                    store.delete(call[1])
                    result = None
            except StoreUnreachableError:
                if events is not None:
                    events.emit(EventKind.STORE_ERROR, call[1], self._user_id(), started)
                raise
            if events is not None:
                self._report(events, call, result, started)
            call = self._written(call, result)
        return self._key

    async def asave(self) -> str | None:
        """Async twin of :meth:`save`, through the store's async methods."""
        if self._doomed:
            await self.adrop_flushed()
        if not self._loaded and self._needs_load_to_save():
            await self.aload()
        store = self._store
        events = self._events
        call = self._write_call()
        while call is not None:
            started = 0.0 if events is None else time.perf_counter()
            try:
                if call[0] is _SAVE_CALL:
                    result = await store.asave(call[1], call[2], call[3])
                elif call[0] is _CYCLE_KEY_CALL:
                    result = await store.acycle_key(call[1], call[2])
                else:
                    await store.adelete(call[1])
                    result = None
            except StoreUnreachableError:
                if events is not None:
                    events.emit(EventKind.STORE_ERROR, call[1], self._user_id(), started)
                raise
            if events is not None:
                self._report(events, call, result, started)
            call = self._written(call, result)
        return self._key

    # A save is one store call, or two when a write-only save finds its key unknown; sync and
    # async saves share the decisions below and differ only in how they make the calls.

    def _needs_load_to_save(self) -> bool:
        return not self._store.partial_writes or not self._data

    def _user_id(self) -> str | int | None:
        # What the session knows of its user, without loading it (a write-only save stays
        # free of reads when an extension observes events).
        return self._user

    def _report(
        self, events: EventEmitter, call: _StoreCall, result: str | None, started: float
    ) -> None:
        """Send the event of the store ``call`` that returned ``result``."""
        if call[0] is _SAVE_CALL:
            if call[1] is None:
                events.emit(EventKind.CREATED, result, self._user_id(), started)
            elif result is not None:
                events.emit(EventKind.SAVED, result, self._user_id(), started)
            # else: the session was deleted meanwhile and nothing was saved
        elif call[0] is _CYCLE_KEY_CALL:
            events.emit(EventKind.CYCLED, result, self._user_id(), started)
        else:
            events.emit(EventKind.FLUSHED, call[1], self._user_id(), started)

    def _write_call(self) -> _StoreCall | None:
        """The store call that writes the session (after a flush's deletes and any load)."""
        nested = self._nested_changes() if self._snapshots else None
        data = self._data
        if self._loaded and not data and self._user is None:
            if self._key is not None:
                return (_DELETE_CALL, self._key)
            self._after_save(None)
            return None
        expiry = self._expiry
        expires_at = (
            time.time() + self._max_age  # the usual policy, spelled out: one call less
            if expiry is None
            else self._expires_at_timestamp(time.time(), expiry)
        )
        record = SessionRecord(data, expires_at, expiry, self._version)
        if self._user is not None or self._client is not None:  # sessions per user
            record.user_id, record.client = self._user, self._client
        key = self._key
        if key is None and not self._loaded:
            key = self.incoming_key()  # write-only request: let the store merge into it
        self._lifetime_written = True
        if key is None:
            return (_SAVE_CALL, None, record, Changes.everything(record))
        if self._rekey:
            return (_CYCLE_KEY_CALL, key, record)
        updated = self._updated
        changes = Changes(
            frozenset(updated | nested if nested else updated),
            frozenset(self._deleted),
            self._loaded,  # complete
            self._loaded or self._expiry_changed,  # expiry
        )
        self._lifetime_written = changes.expiry
        return (_SAVE_CALL, key, record, changes)

    def _written(self, call: _StoreCall, result: str | None) -> _StoreCall | None:
        """Take the ``result`` of the store ``call``; the next call to make, if any."""
        if call[0] is _DELETE_CALL:  # the session was emptied
            self._after_save(None)
            return None
        if call[0] is _SAVE_CALL and call[1] is not None and result is None:
            if self._loaded:
                # Deleted by another request (a sign-out): do not bring it back.
                self._data = {}
                self._vanished = True
                self._after_save(None)
                return None
            # Only written, never read, and the key was unknown: start a new session with what
            # was written; the unknown key is not adopted.
            self._loaded = True
            self._lifetime_written = True
            return (_SAVE_CALL, None, call[2], Changes.everything(call[2]))
        version = call[2].version
        if version is not self._version:
            self._version = version
        self._after_save(result)
        return None

    def _after_save(self, key: str | None) -> None:
        self._key = key
        self._modified = False
        self._updated = self._deleted = _NO_KEYS
        # Rare state is reset only where it was set, so that a save does not give the session
        # an instance __dict__ (see the class-level defaults).
        if self._expiry_changed:
            self._expiry_changed = False
        if self._rekey:
            self._rekey = False
        if self._snapshots is not None:
            self._snapshots = None
