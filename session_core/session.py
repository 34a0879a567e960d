"""The per-visitor :class:`Session`: a lazy, change-tracking mapping of JSON values."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from .config import MAX_COOKIE_AGE
from .errors import InvalidExpiryError
from .store import Changes, JSONValue, SessionData, SessionRecord, SessionStore

__all__ = ["DEFAULT_MAX_AGE", "Session"]

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


def _check_text(text: str, key: str, path: str) -> None:
    """Refuse a ``str`` that UTF-8 cannot encode: one holding a lone surrogate (``"\\ud800"``,
    which a JSON request body can carry), which every store would fail to write."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise TypeError(
            f"session[{key!r}]{path}: the string holds a lone surrogate "
            f"{text[exc.start]!r} at index {exc.start}, which UTF-8 (and so a stored session) "
            f"cannot carry; check or clean the text first"
        ) from None


def _check_json(value: object, key: str, path: str = "") -> None:
    if isinstance(value, str):  # str enums encode as their value
        if not value.isascii():
            _check_text(value, key, path)
        return
    if value is None or isinstance(value, int):  # bool is an int; int enums encode
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(
                f"session[{key!r}]{path}: {value!r} is not a JSON number; "
                f"only finite floats can be stored"
            )
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, key, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for inner_key, item in value.items():
            if not isinstance(inner_key, str):
                raise TypeError(
                    f"session[{key!r}]{path}: dict key {inner_key!r} is not a str; "
                    f"JSON objects only have string keys"
                )
            if not inner_key.isascii():
                _check_text(inner_key, key, f"{path} (a dict key)")
            _check_json(item, key, f"{path}[{inner_key!r}]")
        return
    hint = "; use a list" if isinstance(value, tuple) else ""
    raise TypeError(
        f"session[{key!r}]{path}: {type(value).__name__} is not a JSON value{hint}; a session "
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


# A store call a save needs done: (method name, arguments). The sync save calls
# ``store.<name>``, the async one awaits ``store.a<name>``, so both share one set of decisions.
_Call = tuple[str, tuple[Any, ...]]


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
        self._updated_keys().add(key)
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
        self._key = None
        self._version = None
        self._rekey = False
        self._data = {}
        self._updated = self._deleted = _NO_KEYS
        self._snapshots = None
        self._expiry = None
        self._expiry_changed = False
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
        policy = self._known_expiry()
        if policy is None:
            return self._max_age
        return None if policy == 0 else self.expiry_age

    # ------------------------------------------------------------------ saving

    def save(self) -> str | None:
        """Write the session's changes to its store now and return its key.

        Returns ``None`` when there is nothing stored: the session is empty (its record is then
        deleted) or it was deleted by another request meanwhile (it is not brought back). The
        middleware calls this at the end of each request; call it yourself outside one.
        """
        store = self._store
        if self._doomed:
            for doomed in self._doomed:
                store.delete(doomed)
            self._doomed = ()
        if not self._loaded and self._needs_load_to_save():
            self.load()
        call = self._write_call()
        while call is not None:
            call = self._written(call, getattr(store, call[0])(*call[1]))
        return self._key

    async def asave(self) -> str | None:
        """Async twin of :meth:`save`, through the store's async methods."""
        store = self._store
        if self._doomed:
            for doomed in self._doomed:
                await store.adelete(doomed)
            self._doomed = ()
        if not self._loaded and self._needs_load_to_save():
            await self.aload()
        call = self._write_call()
        while call is not None:
            call = self._written(call, await getattr(store, "a" + call[0])(*call[1]))
        return self._key

    # A save is one store call, or two when a write-only save finds its key unknown; sync and
    # async saves share the decisions below and differ only in how they make the calls.

    def _needs_load_to_save(self) -> bool:
        return not self._store.partial_writes or not self._data

    def _write_call(self) -> _Call | None:
        """The store call that writes the session (after a flush's deletes and any load)."""
        nested = self._nested_changes() if self._snapshots else None
        data = self._data
        if self._loaded and not data:
            if self._key is not None:
                return ("delete", (self._key,))
            self._after_save(None)
            return None
        expiry = self._expiry
        record = SessionRecord(
            data, self._expires_at_timestamp(time.time(), expiry), expiry, self._version
        )
        key = self._key
        if key is None and not self._loaded:
            key = self.incoming_key()  # write-only request: let the store merge into it
        self._lifetime_written = True
        if key is None:
            return ("save", (None, record, Changes.everything(record)))
        if self._rekey:
            return ("cycle_key", (key, record))
        updated = self._updated
        changes = Changes(
            frozenset(updated | nested if nested else updated),
            frozenset(self._deleted),
            self._loaded,  # complete
            self._loaded or self._expiry_changed,  # expiry
        )
        self._lifetime_written = changes.expiry
        return ("save", (key, record, changes))

    def _written(self, call: _Call, result: Any) -> _Call | None:
        """Take the ``result`` of the store ``call``; the next call to make, if any."""
        name, args = call
        if name == "delete":  # the session was emptied
            self._after_save(None)
            return None
        if name == "save" and args[0] is not None and result is None:
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
            record = args[1]
            return ("save", (None, record, Changes.everything(record)))
        version = args[1].version
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
