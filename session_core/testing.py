"""A conformance suite any store runs against itself, so "works like the built-in stores" is a
fact a test proves.

Subclass :class:`StoreConformance` in a pytest test module and say how to build your store::

    from session_core.testing import StoreConformance

    class TestMyStore(StoreConformance):
        def make_store(self):
            return MyStore(url="...")

        def dump_storage(self, store):  # server-side stores: everything the store holds, as text
            return "\\n".join(repr(row) for row in my_backend_rows())

Within one test, every store :meth:`StoreConformance.make_store` builds must share one backend
(the race between two app servers builds two): on a shared server, make the key prefix or table
name once per test, in an autouse fixture. Every promise of :class:`~session_core.SessionStore`
has a test here. Needs pytest (``pip install 'session-core[testing]'``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import pytest

from .errors import StoreUnreachableError
from .session import Session
from .store import (
    Changes,
    Progress,
    RecordPage,
    SessionData,
    SessionInfo,
    SessionRecord,
    SessionStore,
    UserId,
    generate_key,
    hash_key,
    is_key_hash,
    is_plausible_key,
    user_index_name,
)

__all__ = [
    "HOSTILE_KEYS",
    "MemoryStore",
    "OutageStore",
    "StoreConformance",
    "make_record",
    "run_in_threads",
]

T = TypeVar("T")

HOSTILE_KEYS: tuple[str, ...] = (
    "",
    "x",
    "' OR '1'='1' --",
    "'; DROP TABLE sessions; --",
    "*1\r\n$8\r\nFLUSHALL\r\n",
    "FLUSHALL",
    "session:*",
    "{slot}key",
    "../../etc/passwd",
    "\x00\x01\x02",
    "é" * 43,
    "A" * 43 + "\n",
    "a" * 5000,
    "a.b.c",
)
"""Keys no store may choke on or match: every one must load as ``None``."""


def run_in_threads(
    work: Callable[[int], T], count: int, *, together: bool = False
) -> list[T | None]:
    """Run ``work(0)`` to ``work(count - 1)`` in ``count`` threads and return their results in
    order; fails (listing every error) if any raised. With ``together``, all wait at a barrier
    and start at once, for the most contention."""
    results: list[T | None] = [None] * count
    errors: list[BaseException] = []
    barrier = threading.Barrier(count) if together else None

    def run(n: int) -> None:
        try:
            if barrier is not None:
                barrier.wait()
            results[n] = work(n)
        except BaseException as exc:  # reported below, in the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def make_record(data: SessionData, ttl: float = 3600.0, expiry: Any = None) -> SessionRecord:
    """A record holding ``data`` that expires ``ttl`` seconds from now."""
    return SessionRecord(data=data, expires_at=time.time() + ttl, expiry=expiry)


class _PausingData(dict[str, Any]):
    """Session data that pauses the save reading it, on its first read, until the test says go.

    The races below put it in ``record.data``: every store reads the values it writes while it
    saves, so the pause lands inside the save, after whatever the store did first (a lock, a read
    of the stored session) and before its write. Then the competing call runs, and the test sees
    whether the store made it wait, noticed it, or let it be overwritten.
    """

    def __init__(
        self, data: SessionData, paused: threading.Event, go: threading.Event, limit: float
    ) -> None:
        super().__init__(data)
        self._paused = paused
        self._go = go
        self._limit = limit

    def _pause(self) -> None:
        if not self._paused.is_set():
            self._paused.set()
            # A store that makes the competing call wait for this save never sets go: the
            # limit only bounds the test's run time, the outcome is checked afterwards.
            self._go.wait(self._limit)

    def __getitem__(self, name: str) -> Any:
        self._pause()
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:
        self._pause()
        return super().get(name, default)

    def __iter__(self) -> Iterator[str]:
        self._pause()
        return super().__iter__()

    def items(self) -> Any:
        self._pause()
        return super().items()

    def values(self) -> Any:
        self._pause()
        return super().values()

    def keys(self) -> Any:
        self._pause()
        return super().keys()


def _save_racing(
    save: Callable[[SessionRecord], str | None],
    record: SessionRecord,
    other: Callable[[], object],
    limit: float,
) -> str | None:
    """Run ``save(record)`` here and ``other()`` in a second thread while the save is paused
    inside the store (see :class:`_PausingData`); returns what the save returned, once both are
    done, and fails if ``other`` raised."""
    paused, go = threading.Event(), threading.Event()
    record.data = _PausingData(record.data, paused, go, limit)
    errors: list[BaseException] = []

    def compete() -> None:
        paused.wait()
        try:
            other()
        except BaseException as exc:  # reported below, in the calling thread
            errors.append(exc)
        finally:
            go.set()

    thread = threading.Thread(target=compete)
    thread.start()
    try:
        return save(record)
    finally:
        paused.set()  # a save that never read its data still lets the other call run
        thread.join()
        assert not errors, errors


@dataclass(slots=True)
class _Owner:
    """Who a :class:`MemoryStore` session belongs to, and what its listing shows."""

    user_id: UserId
    name: str  # user_index_name(user_id)
    created: float
    seen: float
    client: dict[str, str]


def _memory_record(row: tuple[str, float, str, int]) -> SessionRecord:
    return SessionRecord(json.loads(row[0]), row[1], json.loads(row[2]), row[3])


class MemoryStore(SessionStore):
    """A complete server-side store that keeps sessions in this process's memory.

    For tests of apps and of session-core itself: it keeps every promise of the store contract
    (hashed keys, merging, no resurrection, expiry, batched cleanup, partial writes), but its data
    is lost with the process and not shared between processes. Pass an instance as the ``store``
    setting: ``SessionMiddleware(app, secret_key=..., store=MemoryStore())``.

    Attributes:
        calls: how many times each method was called (``{"load": 3, ...}``), so tests can assert
            that a request cost no store call.
    """

    name = "memory"
    partial_writes = True
    needs_cleanup = True
    indexes_users = True

    lists_records = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[str, float, str, int]] = {}  # hash: data, exp, expiry, ver
        # Sessions per user: the user of each bound session, and each user's session hashes.
        self._owners: dict[str, _Owner] = {}
        self._by_user: dict[str, set[str]] = {}
        self.calls: dict[str, int] = {}

    def _count(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1

    def load(self, key: str) -> SessionRecord | None:
        """See :meth:`SessionStore.load`."""
        with self._lock:
            self._count("load")
            row = self._rows.get(hash_key(key)) if is_plausible_key(key) else None
            owner = self._owners.get(hash_key(key)) if row is not None else None
        if row is None or row[1] <= time.time():
            return None
        record = _memory_record(row)
        record.user_id = owner.user_id if owner is not None else None
        return record

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """See :meth:`SessionStore.save`."""
        expiry = json.dumps(record.expiry)
        with self._lock:
            self._count("save")
            if key is None:
                key = self.generate_key()
                data = copy.deepcopy(record.data)
                version = 1
                if record.user_id is not None:
                    self._bind(hash_key(key), record.user_id, record.client)
            else:
                row = self._rows.get(hash_key(key)) if is_plausible_key(key) else None
                if row is None or row[1] <= time.time():
                    return None
                data = json.loads(row[0])
                for name in changes.updated:
                    data[name] = copy.deepcopy(record.data[name])
                for name in changes.deleted:
                    data.pop(name, None)
                version = row[3] + 1
                self._seen(hash_key(key), record.client)
                if not changes.expiry:
                    self._rows[hash_key(key)] = (json.dumps(data), row[1], row[2], version)
                    record.version = version
                    return key
            self._rows[hash_key(key)] = (json.dumps(data), record.expires_at, expiry, version)
            record.version = version
            return key

    def delete(self, key: str) -> None:
        """See :meth:`SessionStore.delete`."""
        with self._lock:
            self._count("delete")
            self._drop(hash_key(key))

    # Sessions per user. The helpers below run with the lock held.

    def _bind(self, hashed: str, user_id: UserId, client: dict[str, str] | None) -> None:
        now = time.time()
        name = user_index_name(user_id)
        self._owners[hashed] = _Owner(user_id, name, now, now, dict(client or {}))
        self._by_user.setdefault(name, set()).add(hashed)

    def _seen(self, hashed: str, client: dict[str, str] | None) -> None:
        owner = self._owners.get(hashed)
        if owner is not None:
            owner.seen = time.time()
            if client is not None:
                owner.client = dict(client)

    def _drop(self, hashed: str) -> bool:
        """Forget the session ``hashed``; whether it was live."""
        row = self._rows.pop(hashed, None)
        owner = self._owners.pop(hashed, None)
        if owner is not None:
            hashes = self._by_user.get(owner.name)
            if hashes is not None:
                hashes.discard(hashed)
                if not hashes:
                    del self._by_user[owner.name]
        return row is not None and row[1] > time.time()

    def sessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """See :meth:`SessionStore.sessions_of`. Drops expired sessions from the index."""
        name = user_index_name(user_id)
        with self._lock:
            self._count("sessions_of")
            now = time.time()
            infos = []
            for hashed in list(self._by_user.get(name, ())):
                row = self._rows.get(hashed)
                if row is None or row[1] <= now:
                    self._drop(hashed)
                    continue
                owner = self._owners[hashed]
                times = (owner.created, owner.seen, row[1])
                infos.append(SessionInfo.from_times(hashed, owner.user_id, times, owner.client))
        return sorted(infos, key=lambda info: info.last_seen_at, reverse=True)

    def revoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """See :meth:`SessionStore.revoke_user`."""
        name = user_index_name(user_id)
        kept = hash_key(keep) if keep is not None else None
        with self._lock:
            self._count("revoke_user")
            doomed = [h for h in self._by_user.get(name, ()) if h != kept]
            return sum(self._drop(hashed) for hashed in doomed)

    def users_indexed(self) -> int:
        """How many users the index holds entries for (tests check it does not grow)."""
        with self._lock:
            return len(self._by_user)

    def clear_expired(self, progress: Progress | None = None, batch: int = 1000) -> int:
        """See :meth:`SessionStore.clear_expired`; removes ``batch`` rows per lock hold."""
        removed = 0
        while True:
            with self._lock:
                now = time.time()
                doomed = [h for h, row in self._rows.items() if row[1] <= now][:batch]
                for hashed in doomed:
                    self._drop(hashed)
            removed += len(doomed)
            if progress is not None:
                progress(removed)
            if len(doomed) < batch:
                return removed

    def scan_records(self, cursor: str | None = None, count: int = 500) -> RecordPage:
        """See :meth:`SessionStore.scan_records`: pages in key-hash order, the cursor being the
        last hash listed."""
        with self._lock:
            self._count("scan_records")
            now = time.time()
            hashes = sorted(h for h in self._rows if cursor is None or h > cursor)[:count]
            rows = [(h, self._rows[h]) for h in hashes]
        page = [(h, _memory_record(row)) for h, row in rows if row[1] > now]
        return page, (hashes[-1] if len(hashes) == count else None)

    def load_record(self, key_hash: str) -> SessionRecord | None:
        """See :meth:`SessionStore.load_record`."""
        with self._lock:
            self._count("load_record")
            row = self._rows.get(key_hash)
            owner = self._owners.get(key_hash)
        if row is None or row[1] <= time.time():
            return None
        record = _memory_record(row)
        record.user_id = owner.user_id if owner is not None else None
        return record

    def insert_record(self, key_hash: str, record: SessionRecord) -> bool:
        """See :meth:`SessionStore.insert_record`."""
        row = (json.dumps(record.data), record.expires_at, json.dumps(record.expiry), 1)
        if not is_key_hash(key_hash) or record.expires_at <= time.time():
            return False
        with self._lock:
            self._count("insert_record")
            held = self._rows.get(key_hash)
            if held is not None and held[1] > time.time():
                return False
            self._rows[key_hash] = row
            if record.user_id is not None:  # a copied session keeps its user
                self._bind(key_hash, record.user_id, record.client)
            return True

    def delete_record(self, key_hash: str) -> None:
        """See :meth:`SessionStore.delete_record`."""
        with self._lock:
            self._count("delete_record")
            self._drop(key_hash)

    def dump(self) -> str:
        """Everything held, as text (for tests that look at what is stored at rest)."""
        with self._lock:
            return repr((self._rows, self._owners, self._by_user))

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)


class OutageStore(MemoryStore):
    """A :class:`MemoryStore` whose server can go down, for testing what an app (or a framework
    integration) does while its session store is unreachable.

    The operations named in :attr:`down` raise :class:`~session_core.StoreUnreachableError`, as
    a real store's do when its server stops answering; the others work. Their async twins fail
    the same way (they run the sync methods)::

        store = OutageStore()
        app = SessionMiddleware(my_app, secret_key=SECRET, store=store)
        ...                              # a visitor gets a session
        store.fail()                     # every operation fails from now on
        store.fail("save")               # or: loads work, saves fail
        store.recover()                  # the server is back

    Attributes:
        down: the names of the operations that fail now (a subset of :attr:`OPERATIONS`); a
            plain set, safe to change from another thread between requests.
        reason: the text of the errors raised, after the operation's name.
    """

    OPERATIONS: ClassVar[frozenset[str]] = frozenset(
        {"load", "save", "delete", "clear_expired", "sessions_of", "revoke_user"}
    )
    """The operations :meth:`fail` can take down."""

    target = "127.0.0.1:1"
    """What the errors say the store tried to reach (a port nothing listens on)."""

    def __init__(self, reason: str = "connection refused") -> None:
        super().__init__()
        self.down: set[str] = set()
        self.reason = reason

    def fail(self, *operations: str) -> None:
        """Make ``operations`` (every one of :attr:`OPERATIONS` when none is named) fail.

        Raises:
            ValueError: for a name that is not in :attr:`OPERATIONS`.
        """
        unknown = sorted(set(operations) - self.OPERATIONS)
        if unknown:
            raise ValueError(
                f"OutageStore cannot fail {', '.join(map(repr, unknown))}: "
                f"the operations are {', '.join(sorted(self.OPERATIONS))}"
            )
        self.down |= set(operations or self.OPERATIONS)

    def recover(self, *operations: str) -> None:
        """Make ``operations`` (every one, when none is named) work again."""
        self.down -= set(operations or self.OPERATIONS)

    def _check(self, operation: str) -> None:
        if operation in self.down:
            raise StoreUnreachableError(self.name, self.target, operation, self.reason)

    def load(self, key: str) -> SessionRecord | None:
        """See :meth:`SessionStore.load`; fails while ``"load"`` is down."""
        self._check("load")
        return super().load(key)

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """See :meth:`SessionStore.save`; fails while ``"save"`` is down."""
        self._check("save")
        return super().save(key, record, changes)

    def delete(self, key: str) -> None:
        """See :meth:`SessionStore.delete`; fails while ``"delete"`` is down."""
        self._check("delete")
        super().delete(key)

    def clear_expired(self, progress: Progress | None = None, batch: int = 1000) -> int:
        """See :meth:`SessionStore.clear_expired`; fails while ``"clear_expired"`` is down."""
        self._check("clear_expired")
        return super().clear_expired(progress, batch)

    def sessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """See :meth:`SessionStore.sessions_of`; fails while ``"sessions_of"`` is down."""
        self._check("sessions_of")
        return super().sessions_of(user_id)

    def revoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """See :meth:`SessionStore.revoke_user`; fails while ``"revoke_user"`` is down."""
        self._check("revoke_user")
        return super().revoke_user(user_id, keep)


class StoreConformance:
    """The store contract as tests. Subclass it as ``class TestXxx(StoreConformance)``.

    Override :meth:`make_store`; server-side stores also override :meth:`dump_storage`.
    Set :attr:`server_side` to false for a store whose key is the data itself (like the cookie
    store), which cannot delete or merge.
    """

    server_side: ClassVar[bool] = True
    """Whether the store keeps data on a server (False: the key carries the data)."""

    expiry_wait: ClassVar[float] = 1.2
    """Seconds the short-expiry test waits for a record to expire."""

    shared_backend: ClassVar[bool] = True
    """Whether two stores built by :meth:`make_store` in one test see the same sessions, as two
    app servers on one database or Redis do (so give both the same key prefix or table). False
    for a store that keeps its data in its own process, such as :class:`MemoryStore`."""

    race_wait: ClassVar[float] = 1.0
    """Seconds a save paused mid-way waits for a competing call that the store makes wait for
    it (the correct behaviour): a bound on the race tests' run time, not a verdict."""

    lists_records: ClassVar[bool] = True
    """Whether to run the listing tests for a store whose class declares
    :attr:`~session_core.SessionStore.lists_records`; False for a configuration of it that
    cannot list (the redis store on Redis Cluster)."""

    def make_store(self) -> SessionStore:
        """Build a store for one test. Called twice in a test, it builds two stores on the same
        backend (see :attr:`shared_backend`)."""
        raise NotImplementedError("override make_store() to build the store under test")

    def dump_storage(self, store: SessionStore) -> str:
        """Everything a server-side store holds, as text (table rows, Redis keys and values).

        Used to prove that no raw session key is kept at rest.
        """
        raise NotImplementedError(
            "override dump_storage() to return the raw contents of the store's backend"
        )

    @pytest.fixture
    def store(self) -> Iterator[SessionStore]:
        """The store under test, closed afterwards."""
        store = self.make_store()
        try:
            yield store
        finally:
            store.close()

    def _create(self, store: SessionStore, data: SessionData, **kwargs: Any) -> str:
        record = make_record(data, **kwargs)
        key = store.save(None, record, Changes.everything(record))
        assert isinstance(key, str), "save(None, ...) must return the new key"
        return key

    # ------------------------------------------------------------------ keys

    def test_generated_keys_are_long_random_and_unique(self, store: SessionStore) -> None:
        """Keys have at least 256 bits and never repeat."""
        keys = {store.generate_key() for _ in range(2000)}
        assert len(keys) == 2000
        assert all(len(k) >= 43 for k in keys)
        if self.server_side:
            key = self._create(store, {"a": 1})
            assert is_plausible_key(key) or len(key) >= 43

    def test_missing_key_loads_none(self, store: SessionStore) -> None:
        """A key never saved loads as None."""
        assert store.load(generate_key()) is None

    @pytest.mark.parametrize("hostile", HOSTILE_KEYS)
    def test_hostile_key_loads_none(self, store: SessionStore, hostile: str) -> None:
        """Malformed and injection-shaped keys load as None, without error."""
        self._create(store, {"victim": "data"})
        assert store.load(hostile) is None

    def test_no_raw_key_at_rest(self, store: SessionStore) -> None:
        """The backend holds no raw session key (a hash of it instead)."""
        if not self.server_side:
            pytest.skip("the key of a client-side store is the data; nothing is kept at rest")
        key = self._create(store, {"user": 42})
        dump = self.dump_storage(store)
        assert "42" in dump, "dump_storage() must show what the store holds"
        assert key not in dump, "the raw session key is stored; keep hash_key(key) instead"
        assert hash_key(key) in dump or key not in dump

    # ------------------------------------------------------------------ round trips

    def test_round_trip(self, store: SessionStore) -> None:
        """Every JSON type, unicode and the expiry setting come back as saved."""
        data: SessionData = {
            "str": 'héllo ☃ "quoted" \\ back',
            "int": 2**53,
            "neg": -7,
            "float": 1.5,
            "bool": True,
            "none": None,
            "list": [1, "two", [3.0], {"four": 4}],
            "dict": {"nested": {"deeper": ["x"]}},
            "": "empty key",
        }
        key = self._create(store, data, expiry=3600)
        record = store.load(key)
        assert record is not None
        assert record.data == data
        assert record.expiry == 3600
        assert abs(record.expires_at - (time.time() + 3600)) < 5

    @pytest.mark.parametrize("expiry", [None, 0, 60, {"at": 1.9e9}])
    def test_expiry_setting_round_trips(self, store: SessionStore, expiry: Any) -> None:
        """The session's own expiry setting is kept unchanged."""
        key = self._create(store, {"a": 1}, expiry=expiry)
        record = store.load(key)
        assert record is not None
        assert record.expiry == expiry

    def test_larger_session_round_trips(self, store: SessionStore) -> None:
        """A session with many keys round-trips whole."""
        data: SessionData = {f"k{i}": "v" * 20 for i in range(60 if not self.server_side else 2000)}
        key = self._create(store, data)
        record = store.load(key)
        assert record is not None
        assert record.data == data

    # ------------------------------------------------------------------ expiry

    def test_expired_record_is_not_returned(self, store: SessionStore) -> None:
        """A record whose expires_at is past is never returned."""
        key = self._create(store, {"a": 1}, ttl=-5)
        assert store.load(key) is None

    def test_record_expires_when_its_time_comes(self, store: SessionStore) -> None:
        """A live record disappears once its expiry time passes."""
        key = self._create(store, {"a": 1}, ttl=self.expiry_wait)
        assert store.load(key) is not None
        time.sleep(self.expiry_wait + 1.0)
        assert store.load(key) is None

    def test_sub_second_expiry_is_honoured(self, store: SessionStore) -> None:
        """A record is gone as soon as its ``expires_at`` passes, even when that is a fraction of
        a second away: a backend whose TTL or timestamps count whole seconds keeps it longer, so
        ``load`` must still compare ``expires_at`` with the time. Two records, started half a
        second apart, catch a store that rounds to whole seconds wherever in the second the test
        happens to run."""
        started = time.time()
        for offset in (0.0, 0.5):
            time.sleep(max(0.0, started + offset - time.time()))
            record = make_record({"a": 1}, ttl=0.3)
            key = store.save(None, record, Changes.everything(record))
            assert key is not None
            time.sleep(max(0.0, record.expires_at - time.time()) + 0.05)
            assert store.load(key) is None, (
                "load returned a record whose expires_at has passed; compare it with "
                "time.time() in load, whatever TTL the backend keeps"
            )
            assert asyncio.run(store.aload(key)) is None, "aload returned an expired record"

    def test_clear_expired(self, store: SessionStore) -> None:
        """clear_expired removes expired records only, reports progress and a count."""
        live = [self._create(store, {"live": i}) for i in range(3)]
        for i in range(5):
            self._create(store, {"dead": i}, ttl=-10)
        seen: list[int] = []
        removed = store.clear_expired(seen.append)
        if not type(store).needs_cleanup:
            assert removed is None, "a store that needs no cleanup returns None"
            return
        assert removed is not None
        assert removed >= 5
        assert seen, "clear_expired must report progress"
        assert seen[-1] == removed
        assert all(store.load(k) is not None for k in live)
        assert store.clear_expired() == 0

    # ------------------------------------------------------------------ updates and deletes

    def test_update_merges_disjoint_changes(self, store: SessionStore) -> None:
        """Two updates of different keys from the same version both survive."""
        if not self.server_side:
            pytest.skip("a client-side store's cookie is replaced whole")
        key = self._create(store, {"a": 1, "b": 1, "c": 1})
        first, second = store.load(key), store.load(key)
        assert first is not None
        assert second is not None
        first.data["a"] = 2
        del first.data["c"]
        assert store.save(key, first, Changes(frozenset({"a"}), frozenset({"c"}))) == key
        second.data["b"] = 2
        assert store.save(key, second, Changes(frozenset({"b"}))) == key
        merged = store.load(key)
        assert merged is not None
        assert merged.data == {"a": 2, "b": 2}

    def test_update_of_deleted_session_is_not_resurrected(self, store: SessionStore) -> None:
        """A save after a delete writes nothing and returns None."""
        if not self.server_side:
            pytest.skip("a client-side store has nothing to delete")
        key = self._create(store, {"user": 1})
        late = store.load(key)
        assert late is not None
        store.delete(key)
        late.data["cart"] = [1]
        assert store.save(key, late, Changes(frozenset({"cart"}))) is None
        assert store.load(key) is None

    def test_save_racing_a_delete_does_not_resurrect(self, store: SessionStore) -> None:
        """A delete that lands while a save of the same session is under way wins: the session
        stays deleted (whichever went first, nothing remains)."""
        if not self.server_side:
            pytest.skip("a client-side store has nothing to delete")
        key = self._create(store, {"user": 1})
        record = store.load(key)
        assert record is not None
        record.data["cart"] = [1]
        changes = Changes(frozenset({"cart"}))
        saved = _save_racing(
            lambda r: store.save(key, r, changes), record, lambda: store.delete(key), self.race_wait
        )
        assert saved in (key, None)
        assert store.load(key) is None, (
            "a save racing a delete brought the deleted session back: make delete wait for a "
            "save under way (the lock or transaction the save holds), or make the save's write "
            "conditional on the session still being there"
        )

    def test_two_app_servers_merge_concurrent_changes(self, store: SessionStore) -> None:
        """Two store objects on one backend (two app servers) saving different keys of one
        session at the same time both keep their change."""
        if not self.server_side:
            pytest.skip("a client-side store's cookie is replaced whole")
        if not self.shared_backend:
            pytest.skip("stores from make_store() share no backend (shared_backend = False)")
        other = self.make_store()
        try:
            key = self._create(store, {"start": 0})
            mine, theirs = store.load(key), other.load(key)
            assert mine is not None
            assert theirs is not None, (
                "a second store from make_store() does not see the first one's session: build "
                "both on the same backend (same server, key prefix, table), or set "
                "shared_backend = False for a store that keeps data in its own process"
            )
            mine.data["a"] = 1
            theirs.data["b"] = 2

            def their_save() -> None:
                assert other.save(key, theirs, Changes(frozenset({"b"}))) == key

            saved = _save_racing(
                lambda r: store.save(key, r, Changes(frozenset({"a"}))),
                mine,
                their_save,
                self.race_wait,
            )
            assert saved == key
            final = store.load(key)
            assert final is not None
            assert final.data == {"start": 0, "a": 1, "b": 2}, (
                "a change saved by another app server was lost: locks in this process do not "
                "protect data shared with other processes; merge on the backend (a transaction, "
                "a version check, a script) instead"
            )
        finally:
            other.close()

    def test_update_of_unknown_key_creates_nothing(self, store: SessionStore) -> None:
        """A save to a key the store never made creates nothing."""
        if not self.server_side:
            pytest.skip("a client-side store has no server records")
        planted = generate_key()
        record = make_record({"a": 1})
        assert store.save(planted, record, Changes(frozenset({"a"}))) is None
        assert store.load(planted) is None

    def test_update_extends_expiry(self, store: SessionStore) -> None:
        """An update writes the new expiry time."""
        key = self._create(store, {"a": 1}, ttl=60)
        record = store.load(key)
        assert record is not None
        record.expires_at = time.time() + 7200
        new_key = store.save(key, record, Changes(frozenset()))
        assert new_key is not None
        reloaded = store.load(new_key)
        assert reloaded is not None
        assert reloaded.expires_at > time.time() + 3600

    def test_partial_write_keeps_stored_expiry(self, store: SessionStore) -> None:
        """A write-only save with unknown expiry keeps the stored lifetime."""
        if not type(store).partial_writes:
            pytest.skip("the store does not take partial writes")
        key = self._create(store, {"a": 1}, ttl=600, expiry=600)
        before = store.load(key)
        assert before is not None
        partial = make_record({"b": 2}, ttl=99999, expiry=None)
        changes = Changes(frozenset({"b"}), complete=False, expiry=False)
        assert store.save(key, partial, changes) == key
        after = store.load(key)
        assert after is not None
        assert after.data == {"a": 1, "b": 2}
        assert after.expiry == 600
        assert abs(after.expires_at - before.expires_at) < 2

    def test_delete(self, store: SessionStore) -> None:
        """A deleted session no longer loads."""
        key = self._create(store, {"a": 1})
        store.delete(key)
        if self.server_side:
            assert store.load(key) is None

    def test_delete_missing_key_is_not_an_error(self, store: SessionStore) -> None:
        """Deleting absent or malformed keys is not an error."""
        store.delete(generate_key())
        for hostile in HOSTILE_KEYS:
            store.delete(hostile)

    def test_cycle_key_moves_data_and_kills_old_key(self, store: SessionStore) -> None:
        """cycle_key moves the data to a new key and kills the old one."""
        key = self._create(store, {"user": 7})
        record = store.load(key)
        assert record is not None
        new_key = store.cycle_key(key, record)
        moved = store.load(new_key)
        assert moved is not None
        assert moved.data == {"user": 7}
        if self.server_side:
            assert new_key != key
            assert store.load(key) is None

    # ------------------------------------------------------------------ through a Session

    def test_session_write_only_then_read(self, store: SessionStore) -> None:
        """A Session that only writes keeps the keys it did not touch."""
        key = self._create(store, {"kept": 1})
        writer = Session(store, key)
        writer["added"] = 2
        saved = writer.save()
        assert saved is not None
        reader = Session(store, saved)
        expected = {"kept": 1, "added": 2} if self.server_side else None
        if expected is not None:
            assert dict(reader) == expected
        else:
            assert reader["added"] == 2

    def test_session_planted_key_is_never_adopted(self, store: SessionStore) -> None:
        """A Session never adopts a key the store did not make."""
        planted = generate_key()
        session = Session(store, planted)
        session["user"] = 1
        key = session.save()
        assert key is not None
        assert key != planted
        if self.server_side:
            assert store.load(planted) is None

    def test_session_flush_deletes_record(self, store: SessionStore) -> None:
        """Session.flush deletes the stored record on save."""
        key = self._create(store, {"user": 1})
        session = Session(store, key)
        assert session["user"] == 1
        session.flush()
        assert session.save() is None
        if self.server_side:
            assert store.load(key) is None

    def test_concurrent_sessions_from_threads(self, store: SessionStore) -> None:
        """Threads sharing the store lose no update, on their own or one shared session."""
        shared = self._create(store, {"start": 0})
        keys: dict[int, str | None] = {}

        def work(worker: int) -> None:
            own = Session(store)
            for step in range(15):
                own[f"step{step}"] = worker
                keys[worker] = own.save()
                assert Session(store, keys[worker])[f"step{step}"] == worker
            if self.server_side:
                session = Session(store, shared)
                session[f"w{worker}"] = worker
                assert session.save() == shared

        run_in_threads(work, 8)
        assert len(set(keys.values())) == 8
        if self.server_side:
            final = store.load(shared)
            assert final is not None
            assert final.data == {"start": 0, **{f"w{n}": n for n in range(8)}}

    # ------------------------------------------------------------------ sessions per user
    #
    # Stores with indexes_users = True list and revoke a user's sessions; the others must refuse
    # clearly. "Devices" below are separate Session objects, as separate browsers would hold.

    def _sign_in(
        self, store: SessionStore, user_id: UserId, client: dict[str, str] | None = None
    ) -> str:
        """A new session on a new device, signed in as ``user_id``; its key."""
        session = Session(store)
        session["cart"] = [user_index_name(user_id)]
        session.user_id = user_id
        if client is not None:
            session.record_client(**client)
        key = session.save()
        assert key is not None
        return key

    def _listed(self, store: SessionStore, user_id: UserId) -> set[str]:
        return {info.key_hash for info in store.sessions_of(user_id)}

    def test_users_not_indexed_refuses(self, store: SessionStore) -> None:
        """A store without indexes_users refuses to list or revoke, naming the stores that can."""
        if store.indexes_users:
            pytest.skip("the store indexes users: the tests below check it does so correctly")
        from .errors import UserIndexUnsupportedError

        for call in (lambda: store.sessions_of("ann"), lambda: store.revoke_user("ann")):
            with pytest.raises(UserIndexUnsupportedError, match="indexes_users = True"):
                call()
        with pytest.raises(UserIndexUnsupportedError):
            asyncio.run(store.arevoke_user("ann"))

    def _needs_user_index(self, store: SessionStore) -> None:
        if not store.indexes_users:
            pytest.skip("the store does not index users (test_users_not_indexed_refuses)")

    def test_user_sessions_are_listed_without_their_keys(self, store: SessionStore) -> None:
        """Each device's session is listed for its user only, described but never by its key."""
        self._needs_user_index(store)
        before = time.time()
        phone = self._sign_in(store, "ann", {"user_agent": "Phone/1.0", "ip": "192.0.2.7"})
        laptop = self._sign_in(store, "ann")
        other = self._sign_in(store, 42)
        Session(store).update(anonymous=True)
        infos = store.sessions_of("ann")
        assert {info.key_hash for info in infos} == {hash_key(phone), hash_key(laptop)}
        text = repr(infos)
        assert phone not in text, "a listing must never hold a key"
        assert laptop not in text, "a listing must never hold a key"
        by_hash = {info.key_hash: info for info in infos}
        assert by_hash[hash_key(phone)].client == {"user_agent": "Phone/1.0", "ip": "192.0.2.7"}
        assert by_hash[hash_key(laptop)].client == {}, "nothing is recorded unless asked"
        for info in infos:
            assert info.user_id == "ann"
            assert before - 1 <= info.created_at.timestamp() <= info.last_seen_at.timestamp()
            assert info.expires_at.timestamp() > time.time() + 60
            assert info.is_key(phone) == (info.key_hash == hash_key(phone))
        # Ids are compared as text: the command line's "42" finds the app's int 42.
        assert self._listed(store, "42") == self._listed(store, 42) == {hash_key(other)}
        assert store.sessions_of("nobody") == []
        loaded = Session(store, phone)
        assert loaded.user_id == "ann", "the session remembers its user between requests"

    def test_revoke_user_keeps_the_current_session(self, store: SessionStore) -> None:
        """ "Sign out other devices": every session of the user goes but the one kept."""
        self._needs_user_index(store)
        devices = [self._sign_in(store, "ann") for _ in range(3)]
        bystander = self._sign_in(store, "bob")
        assert store.revoke_user("ann", keep=devices[0]) == 2
        assert store.load(devices[0]) is not None
        assert store.load(devices[1]) is None
        assert store.load(devices[2]) is None
        assert self._listed(store, "ann") == {hash_key(devices[0])}
        assert self._listed(store, "bob") == {hash_key(bystander)}
        assert store.load(bystander) is not None

    def test_revoke_user_everywhere(self, store: SessionStore) -> None:
        """ "Sign out everywhere": every session goes; a second revoke finds nothing."""
        self._needs_user_index(store)
        devices = [self._sign_in(store, 7) for _ in range(3)]
        assert store.revoke_user("7") == 3
        assert all(store.load(key) is None for key in devices)
        assert store.sessions_of(7) == []
        assert store.revoke_user(7) == 0
        assert store.revoke_user("never-seen") == 0

    def test_revoked_session_is_not_brought_back_by_a_late_save(self, store: SessionStore) -> None:
        """A device's request that loaded before the revocation saves after it: the session
        stays gone, and the device ends up with a fresh anonymous session."""
        self._needs_user_index(store)
        kept = self._sign_in(store, "ann")
        stolen = self._sign_in(store, "ann")
        late = Session(store, stolen)
        assert late.user_id == "ann"
        assert store.revoke_user("ann", keep=kept) == 1
        late["after"] = 1
        assert late.save() is None
        assert late.vanished
        assert store.load(stolen) is None
        assert self._listed(store, "ann") == {hash_key(kept)}
        # Write-only (never read) the same: the key is not adopted, no user comes back with it.
        blind = Session(store, stolen)
        blind["after"] = 2
        fresh = blind.save()
        assert fresh != stolen
        assert fresh is not None
        assert Session(store, fresh).user_id is None

    def test_revoke_racing_a_save_does_not_resurrect(self, store: SessionStore) -> None:
        """A revocation that lands while a save of that session is in flight wins."""
        self._needs_user_index(store)
        key = self._sign_in(store, "ann")
        record = store.load(key)
        assert record is not None
        record.data["late"] = 1
        _save_racing(
            lambda r: store.save(key, r, Changes(frozenset({"late"}))),
            record,
            lambda: store.revoke_user("ann"),
            self.race_wait,
        )
        assert store.load(key) is None
        assert store.sessions_of("ann") == []

    def test_cycle_key_and_flush_keep_the_index_right(self, store: SessionStore) -> None:
        """A new key replaces the old one in the listing; a flushed (signed-out) session and a
        changed user leave it."""
        self._needs_user_index(store)
        key = self._sign_in(store, "ann")
        session = Session(store, key)
        session.cycle_key()
        cycled = session.save()
        assert cycled is not None
        assert cycled != key
        assert self._listed(store, "ann") == {hash_key(cycled)}
        switch = Session(store, cycled)
        switch.user_id = "bob"  # a different user: a new key, under bob only
        switched = switch.save()
        assert switched is not None
        assert switched != cycled
        assert self._listed(store, "ann") == set()
        assert self._listed(store, "bob") == {hash_key(switched)}
        out = Session(store, switched)
        out.flush()
        assert out.save() is None
        assert store.sessions_of("bob") == []
        assert store.revoke_user("bob") == 0

    def test_user_binding_survives_updates_and_empty_data(self, store: SessionStore) -> None:
        """Ordinary saves keep the session's user; a session holding only its user is kept."""
        self._needs_user_index(store)
        session = Session(store)
        session.user_id = "ann"
        key = session.save()
        assert key is not None, "a session bound to a user is saved even with no data"
        writer = Session(store, key)
        writer["x"] = 1  # write-only: the user is not known to this request
        assert writer.save() == key
        assert Session(store, key).user_id == "ann"
        assert self._listed(store, "ann") == {hash_key(key)}

    def test_expired_sessions_leave_the_listing_and_the_index(self, store: SessionStore) -> None:
        """Expired sessions are neither listed nor counted, and nothing about them stays behind
        once the user signs in again: the index does not grow as sessions expire."""
        self._needs_user_index(store)
        short = []
        for _ in range(3):
            record = make_record({"a": 1}, ttl=self.expiry_wait)
            record.user_id = "ann"
            key = store.save(None, record, Changes.everything(record))
            assert key is not None
            short.append(key)
        assert len(store.sessions_of("ann")) == 3
        time.sleep(self.expiry_wait + 1.0)
        assert store.sessions_of("ann") == []
        assert store.revoke_user("ann") == 0
        live = self._sign_in(store, "ann")
        store.clear_expired()
        assert self._listed(store, "ann") == {hash_key(live)}
        if self.server_side:
            held = self.dump_storage(store)
            for key in short:
                assert hash_key(key) not in held, "an expired session left an index entry"

    def test_user_index_async_twins(self, store: SessionStore) -> None:
        """asessions_of and arevoke_user keep the same promises."""
        self._needs_user_index(store)
        keys = [self._sign_in(store, "ann") for _ in range(2)]

        async def scenario() -> None:
            listed = await store.asessions_of("ann")
            assert {info.key_hash for info in listed} == {hash_key(key) for key in keys}
            assert await store.arevoke_user("ann", keep=keys[1]) == 1
            assert {info.key_hash for info in await store.asessions_of("ann")} == {
                hash_key(keys[1])
            }
            assert await store.arevoke_user("ann") == 1

        asyncio.run(scenario())
        assert all(store.load(key) is None for key in keys)

    # ------------------------------------------------------------------ async twins

    def test_async_twins(self, store: SessionStore) -> None:
        """The async twins keep the same promises as the sync methods."""

        async def scenario() -> None:
            record = make_record({"a": 1})
            key = await store.asave(None, record, Changes.everything(record))
            assert key is not None
            loaded = await store.aload(key)
            assert loaded is not None
            assert loaded.data == {"a": 1}
            loaded.data["b"] = 2
            key = await store.asave(key, loaded, Changes(frozenset({"b"})))
            assert key is not None
            again = await store.aload(key)
            assert again is not None
            assert again.data == {"a": 1, "b": 2}
            new_key = await store.acycle_key(key, again)
            await store.adelete(new_key)
            if self.server_side:
                assert new_key != key
                assert await store.aload(new_key) is None
                assert await store.aload(key) is None
            assert await store.aload(generate_key()) is None
            cleared = await store.aclear_expired()
            assert cleared is None or cleared >= 0

        asyncio.run(scenario())

    def test_async_sessions_concurrently(self, store: SessionStore) -> None:
        """Concurrent async sessions changing different keys all keep their change."""
        if not self.server_side:
            pytest.skip("a client-side store's cookie is replaced whole")
        shared = self._create(store, {"start": 0})

        async def one(n: int) -> None:
            session = Session(store, shared)
            await session.aload()
            session[f"t{n}"] = n
            assert await session.asave() == shared

        async def scenario() -> None:
            await asyncio.gather(*(one(n) for n in range(20)))

        asyncio.run(scenario())
        final = store.load(shared)
        assert final is not None
        assert final.data == {"start": 0, **{f"t{n}": n for n in range(20)}}

    # ------------------------------------------------------------------ listing (lists_records)

    def _needs_listing(self, store: SessionStore) -> None:
        if not type(store).lists_records or not self.lists_records:
            pytest.skip("the store does not list its records (lists_records = False)")

    def _scan_all(self, store: SessionStore, count: int) -> dict[str, SessionRecord]:
        listed: dict[str, SessionRecord] = {}
        cursor: str | None = None
        for _ in range(100_000):
            page, cursor = store.scan_records(cursor, count)
            for key_hash, record in page:
                listed[key_hash] = record
            if cursor is None:
                return listed
        pytest.fail("scan_records never returned a None cursor (100000 pages)")

    def test_scan_records_lists_every_live_record_once_by_hash(self, store: SessionStore) -> None:
        """scan_records lists each live record under hash_key(key), in pages, and no expired
        one; a cursor resumes where the last page stopped."""
        self._needs_listing(store)
        keys = {self._create(store, {"n": n}, expiry=n): n for n in range(23)}
        dead = self._create(store, {"dead": True}, ttl=-5)
        listed = self._scan_all(store, 5)
        mine = {h: r for h, r in listed.items() if h in {hash_key(k) for k in [*keys, dead]}}
        assert set(mine) == {hash_key(k) for k in keys}
        for key, n in keys.items():
            assert mine[hash_key(key)].data == {"n": n}
            assert mine[hash_key(key)].expiry == n
            assert abs(mine[hash_key(key)].expires_at - (time.time() + 3600)) < 60

    def test_scan_records_survives_writes_between_pages(self, store: SessionStore) -> None:
        """Records that live through a scan are listed even when others are created and deleted
        between its pages (a copy made while the site serves traffic)."""
        self._needs_listing(store)
        steady = {self._create(store, {"s": n}) for n in range(12)}
        churn = [self._create(store, {"c": n}) for n in range(12)]
        listed: set[str] = set()
        cursor: str | None = None
        first = True
        while first or cursor is not None:
            page, cursor = store.scan_records(cursor, 3)
            listed.update(h for h, _ in page)
            if first:
                for key in churn:
                    store.delete(key)
                for n in range(12):
                    self._create(store, {"new": n})
                first = False
        assert {hash_key(k) for k in steady} <= listed

    def test_insert_record_is_found_by_the_key(self, store: SessionStore) -> None:
        """A record inserted under hash_key(key) loads by key, merges like any other, and an
        insert never overwrites a live record."""
        self._needs_listing(store)
        key = generate_key()
        assert store.insert_record(hash_key(key), make_record({"a": 1}, expiry=60))
        loaded = store.load(key)
        assert loaded is not None
        assert (loaded.data, loaded.expiry) == ({"a": 1}, 60)
        by_hash = store.load_record(hash_key(key))
        assert by_hash is not None
        assert (by_hash.data, by_hash.expiry) == ({"a": 1}, 60)
        assert store.load_record(hash_key(generate_key())) is None
        assert not store.insert_record(hash_key(key), make_record({"a": "other"}))
        loaded.data["b"] = 2
        assert store.save(key, loaded, Changes(frozenset({"b"}))) == key
        again = store.load(key)
        assert again is not None
        assert again.data == {"a": 1, "b": 2}
        assert asyncio.run(store.ainsert_record(hash_key(key), make_record({"x": 0}))) is False

    def test_insert_record_refuses_what_is_no_key_hash(self, store: SessionStore) -> None:
        """A name that is not a key hash, or a record already expired, is not written."""
        self._needs_listing(store)
        for hostile in HOSTILE_KEYS:
            assert store.insert_record(hostile, make_record({"a": 1})) is False
        key = generate_key()
        assert store.insert_record(hash_key(key), make_record({"a": 1}, ttl=-5)) is False
        assert store.load(key) is None

    def test_insert_record_replaces_an_expired_record(self, store: SessionStore) -> None:
        """An expired record under the hash does not block an insert."""
        self._needs_listing(store)
        key = self._create(store, {"old": 1}, ttl=-5)
        assert store.insert_record(hash_key(key), make_record({"new": 1}))
        loaded = store.load(key)
        assert loaded is not None
        assert loaded.data == {"new": 1}

    def test_delete_record_by_hash(self, store: SessionStore) -> None:
        """delete_record removes the record of hash_key(key); a missing hash is no error."""
        self._needs_listing(store)
        key = self._create(store, {"a": 1})
        other = self._create(store, {"b": 1})
        store.delete_record(hash_key(key))
        store.delete_record(hash_key(generate_key()))
        asyncio.run(store.adelete_record(hash_key(generate_key())))
        assert store.load(key) is None
        assert store.load_record(hash_key(key)) is None
        assert store.load(other) is not None

    def test_a_record_copied_by_hash_keeps_its_user(self, store: SessionStore) -> None:
        """A record inserted by hash with a user (a session moved or copied from another store)
        loads with its user, is listed and revoked with the user's other sessions, stays
        indexed through later saves, and a listing of records holds sessions only."""
        self._needs_listing(store)
        self._needs_user_index(store)
        signed_in = self._sign_in(store, "ann")
        key = generate_key()
        record = make_record({"a": 1})
        record.user_id = "ann"
        record.client = {"ip": "192.0.2.9"}
        assert store.insert_record(hash_key(key), record)
        loaded = Session(store, key)
        assert loaded.user_id == "ann"
        both = {hash_key(signed_in), hash_key(key)}
        assert self._listed(store, "ann") == both
        copied = next(i for i in store.sessions_of("ann") if i.key_hash == hash_key(key))
        assert copied.client == {"ip": "192.0.2.9"}
        listed = self._scan_all(store, 100)
        assert both <= set(listed)
        assert all(is_key_hash(name) for name in listed), "a listing holds sessions only"
        loaded["b"] = 2
        assert loaded.save() == key
        assert self._listed(store, "ann") == both
        assert store.revoke_user("ann", keep=signed_in) == 1
        assert store.load(key) is None
        assert self._listed(store, "ann") == {hash_key(signed_in)}
