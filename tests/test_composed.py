"""The tiered and migrate stores' own promises, over in-memory stores: what a read, a write and
a move cost and touch, races made certain with events, a front that fails, and configuration
errors that name the nested store at fault."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from session_core import (
    ConfigurationError,
    SessionConfig,
    StoreUnreachableError,
    UserIndexUnsupportedError,
)
from session_core.cookie import CookieStore
from session_core.migrate import MigrateStore
from session_core.registry import create_store
from session_core.session import Session
from session_core.store import Changes, SessionRecord, SessionStore, generate_key, hash_key
from session_core.testing import MemoryStore, make_record
from session_core.tiered import FrontState, TieredStore

SECRET = "s" * 40


class FailingMemory(MemoryStore):
    """A memory store that can be switched off: every call then raises
    StoreUnreachableError, as a store whose server is down does."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnreachableError("failing-memory", "memory", "call", "switched off")

    def load(self, key: str) -> SessionRecord | None:
        self._check()
        return super().load(key)

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        self._check()
        return super().save(key, record, changes)

    def delete(self, key: str) -> None:
        self._check()
        super().delete(key)

    def scan_records(
        self, cursor: str | None = None, count: int = 500
    ) -> tuple[list[tuple[str, SessionRecord]], str | None]:
        self._check()
        return super().scan_records(cursor, count)

    def insert_record(self, key_hash: str, record: SessionRecord) -> bool:
        self._check()
        return super().insert_record(key_hash, record)

    def delete_record(self, key_hash: str) -> None:
        self._check()
        super().delete_record(key_hash)


def _create(store: SessionStore, data: dict[str, object], ttl: float = 3600) -> str:
    record = make_record(data, ttl)  # type: ignore[arg-type]
    key = store.save(None, record, Changes.everything(record))
    assert key is not None
    return key


# ---------------------------------------------------------------------- tiered


def test_tiered_read_fills_front_with_back_lifetime_then_hits_front_only() -> None:
    front, back = MemoryStore(), MemoryStore()
    store = TieredStore(front, back)
    key = _create(store, {"user": 1}, ttl=600)
    assert len(front) == 0, "a create writes the back only"
    expires = back.load(key).expires_at  # type: ignore[union-attr]
    first = store.load(key)
    assert first is not None
    assert first.data == {"user": 1}
    cached = front.load(key)
    assert cached is not None
    assert cached.expires_at == expires, "the front copy lives as long as the back record"
    back.calls.clear()
    again = store.load(key)
    assert again is not None
    assert again.data == {"user": 1}
    assert back.calls == {}, "a hit costs the back nothing"


def test_tiered_write_goes_to_back_and_leaves_the_front() -> None:
    front, back = MemoryStore(), MemoryStore()
    store = TieredStore(front, back)
    key = _create(store, {"a": 1})
    record = store.load(key)
    assert record is not None
    assert front.load(key) is not None
    record.data["a"] = 2
    assert store.save(key, record, Changes(frozenset({"a"}))) == key
    assert front.load(key) is None
    assert back.load(key).data == {"a": 2}  # type: ignore[union-attr]
    assert store.load(key).data == {"a": 2}  # type: ignore[union-attr]


def test_tiered_delete_and_cycle_key_leave_nothing_in_the_front() -> None:
    front, back = MemoryStore(), MemoryStore()
    store = TieredStore(front, back)
    key = _create(store, {"a": 1})
    record = store.load(key)
    assert record is not None
    new_key = store.cycle_key(key, record)
    assert front.load(key) is None
    assert store.load(key) is None
    assert store.load(new_key) is not None
    store.delete(new_key)
    assert front.load(new_key) is None
    assert store.load(new_key) is None


class PausingBack(MemoryStore):
    """Pauses its next load after reading (the value is in hand, not returned yet) until the
    test says go, so a write can land between a tiered read of the back and its fill."""

    def __init__(self) -> None:
        super().__init__()
        self.pause_next = False
        self.paused = threading.Event()
        self.go = threading.Event()

    def load(self, key: str) -> SessionRecord | None:
        record = super().load(key)
        if self.pause_next:
            self.pause_next = False
            self.paused.set()
            assert self.go.wait(10)
        return record


def test_tiered_fill_racing_a_write_leaves_no_old_copy() -> None:
    front, back = MemoryStore(), PausingBack()
    store = TieredStore(front, back)
    key = _create(store, {"a": "old"})
    back.pause_next = True
    reader = threading.Thread(target=store.load, args=(key,))
    reader.start()
    assert back.paused.wait(10)
    record = back.load(key)
    assert record is not None
    record.data["a"] = "new"
    assert store.save(key, record, Changes(frozenset({"a"}))) == key
    back.go.set()
    reader.join()
    cached = front.load(key)
    assert cached is None or cached.data == {"a": "new"}, "the reader's old copy stayed"
    assert store.load(key).data == {"a": "new"}  # type: ignore[union-attr]


def test_tiered_fill_racing_a_delete_does_not_resurrect() -> None:
    front, back = MemoryStore(), PausingBack()
    store = TieredStore(front, back)
    key = _create(store, {"a": 1})
    back.pause_next = True
    reader = threading.Thread(target=store.load, args=(key,))
    reader.start()
    assert back.paused.wait(10)
    store.delete(key)
    back.go.set()
    reader.join()
    assert front.load(key) is None
    assert store.load(key) is None


def test_tiered_front_down_serves_from_back_then_recovers_without_stale_copies() -> None:
    front, back = FailingMemory(), MemoryStore()
    store = TieredStore(front, back, retry_after=0.05)
    key = _create(store, {"n": 0})
    assert store.load(key) is not None  # now in the front
    front.down = True
    record = store.load(key)  # the front fails: the back serves
    assert record is not None
    assert store.front_state is FrontState.DOWN
    record.data["n"] = 1
    assert store.save(key, record, Changes(frozenset({"n"}))) == key  # front not reachable
    front.down = False  # back, with its old copy {"n": 0}
    assert front.load(key).data == {"n": 0}  # type: ignore[union-attr]
    assert store.load(key).data == {"n": 1}, "the front is not trusted before its retry time"  # type: ignore[union-attr]
    time.sleep(0.1)
    assert store.load(key).data == {"n": 1}  # type: ignore[union-attr]  # starts the recovery
    assert store.wait_for_recovery(10) is FrontState.UP
    assert front.load(key) is None, "the recovery emptied the front"
    assert store.load(key).data == {"n": 1}  # type: ignore[union-attr]
    assert front.load(key).data == {"n": 1}  # type: ignore[union-attr]


def test_tiered_front_failing_during_recovery_waits_again() -> None:
    front, back = FailingMemory(), MemoryStore()
    store = TieredStore(front, back, retry_after=0.05)
    key = _create(store, {"n": 0})
    front.down = True
    assert store.load(key) is not None
    time.sleep(0.1)
    assert store.load(key) is not None  # a recovery starts, and fails
    assert store.wait_for_recovery(10) is FrontState.DOWN


def test_tiered_back_down_is_an_outage() -> None:
    front, back = MemoryStore(), FailingMemory()
    store = TieredStore(front, back)
    key = _create(store, {"n": 0})
    back.down = True
    with pytest.raises(StoreUnreachableError):
        store.load(key)


def test_tiered_async_twins_fill_and_invalidate() -> None:
    front, back = MemoryStore(), MemoryStore()
    store = TieredStore(front, back)

    async def scenario() -> None:
        record = make_record({"a": 1})
        key = await store.asave(None, record, Changes.everything(record))
        assert key is not None
        loaded = await store.aload(key)
        assert loaded is not None
        assert front.load(key) is not None
        loaded.data["a"] = 2
        assert await store.asave(key, loaded, Changes(frozenset({"a"}))) == key
        assert front.load(key) is None
        assert (await store.aload(key)).data == {"a": 2}  # type: ignore[union-attr]
        await store.adelete(key)
        assert front.load(key) is None
        assert await store.aload(key) is None

    asyncio.run(scenario())


def test_tiered_flags_follow_the_stores() -> None:
    store = TieredStore(MemoryStore(), MemoryStore())
    assert isinstance(store, TieredStore)
    assert type(store).partial_writes
    assert type(store).needs_cleanup
    assert type(store).lists_records
    assert not type(store).local
    assert type(store).indexes_users


class UnindexedMemory(MemoryStore):
    """A memory store that keeps no index of sessions by user (as a third-party store may)."""

    name = "unindexed"
    indexes_users = False


@pytest.mark.parametrize("role", ["front", "back"])
def test_tiered_without_a_user_index_in_either_tier_refuses_naming_it(role: str) -> None:
    """Both tiers must index users: the back to list and revoke, the front to find the copies
    of revoked sessions. Otherwise the tiered store refuses, before any I/O, naming the tier."""
    stores = {"front": MemoryStore(), "back": MemoryStore(), role: UnindexedMemory()}
    store = TieredStore(stores["front"], stores["back"])
    assert not store.indexes_users
    with pytest.raises(UserIndexUnsupportedError, match=f"its {role} store \\(unindexed\\)"):
        store.revoke_user("ann")
    with pytest.raises(UserIndexUnsupportedError, match=f"its {role} store"):
        asyncio.run(store.asessions_of("ann"))
    assert stores["front"].calls == stores["back"].calls == {}


def test_migrate_flags_and_refusal_follow_both_stores() -> None:
    """migrate indexes users only when both stores do; otherwise it names the one that does
    not, the old one with the reason (its sessions could not be signed out)."""
    assert MigrateStore(MemoryStore(), MemoryStore()).indexes_users
    old_cookie = MigrateStore(CookieStore([SECRET]), MemoryStore())
    with pytest.raises(UserIndexUnsupportedError, match=r"old store \(cookie\).*signed out"):
        old_cookie.sessions_of("ann")
    new_unindexed = MigrateStore(MemoryStore(), UnindexedMemory())
    with pytest.raises(UserIndexUnsupportedError, match="new store \\(unindexed\\)"):
        asyncio.run(new_unindexed.arevoke_user("ann"))


# ---------------------------------------------------------------------- migrate


def test_migrate_moves_a_cookie_session_to_the_new_store_on_save() -> None:
    cookie, new = CookieStore([SECRET]), MemoryStore()
    store = MigrateStore(cookie, new)
    assert not type(store).local, "the middleware must treat it as server-side"
    value = _create(cookie, {"user": 7})
    session = Session(store, value)
    assert session["user"] == 7
    session["seen"] = True
    key = session.save()
    assert key is not None
    assert key != value
    assert new.load(key).data == {"user": 7, "seen": True}  # type: ignore[union-attr]


def test_migrate_keeps_the_key_between_server_stores() -> None:
    old, new = MemoryStore(), MemoryStore()
    store = MigrateStore(old, new)
    key = _create(old, {"user": 7})
    session = Session(store, key)
    session["seen"] = 1
    assert session.save() == key
    assert len(old) == 0, "the session left the old store"
    assert new.load(key).data == {"user": 7, "seen": 1}  # type: ignore[union-attr]


def test_migrate_write_only_request_moves_the_session_whole() -> None:
    old, new = MemoryStore(), MemoryStore()
    store = MigrateStore(old, new)
    key = _create(old, {"user": 7}, ttl=600)
    before = old.load(key)
    assert before is not None
    record = make_record({"cart": [1]}, ttl=99999)
    assert (
        store.save(key, record, Changes(frozenset({"cart"}), complete=False, expiry=False)) == key
    )
    moved = new.load(key)
    assert moved is not None
    assert moved.data == {"user": 7, "cart": [1]}
    assert abs(moved.expires_at - before.expires_at) < 1, "the stored lifetime is kept"


def test_migrate_two_requests_moving_one_session_both_keep_their_change() -> None:
    old, new = MemoryStore(), MemoryStore()
    store = MigrateStore(old, new)
    key = _create(old, {"start": 0})
    first, second = store.load(key), store.load(key)
    assert first is not None
    assert second is not None
    first.data["a"] = 1
    second.data["b"] = 2
    assert store.save(key, first, Changes(frozenset({"a"}))) == key
    assert store.save(key, second, Changes(frozenset({"b"}))) == key
    assert new.load(key).data == {"start": 0, "a": 1, "b": 2}  # type: ignore[union-attr]


def test_migrate_flush_reaches_both_stores() -> None:
    old, new = MemoryStore(), MemoryStore()
    store = MigrateStore(old, new)
    key = _create(old, {"user": 1})
    new.insert_record(hash_key(key), make_record({"user": 1}))  # as a bulk copy leaves it
    session = Session(store, key)
    assert session["user"] == 1
    session.flush()
    session.save()
    assert store.load(key) is None, "the old store's copy came back after a sign-out"


def test_migrate_new_sessions_go_to_the_new_store_only() -> None:
    old, new = MemoryStore(), MemoryStore()
    store = MigrateStore(old, new)
    key = _create(store, {"a": 1})
    assert len(old) == 0
    assert new.load(key) is not None


def test_migrate_round_trips_of_a_session_not_moved_yet() -> None:
    """Counted, not timed: a read costs one call more than the old store alone (the new
    store's miss); a save is the move (one write to the new store, the old store read again so
    that a sign-out meanwhile is not undone, one delete from the old), for an anonymous session
    too."""
    old, new = MemoryStore(), MemoryStore()
    store = MigrateStore(old, new)
    key = _create(old, {"user": 1})
    old.calls.clear()
    session = Session(store, key)
    assert session["user"] == 1
    assert (new.calls, old.calls) == ({"load": 1}, {"load": 1})
    session["x"] = 1
    session.save()
    assert (new.calls, old.calls) == ({"load": 1, "insert_record": 1}, {"load": 2, "delete": 1})
    new.calls.clear()
    old.calls.clear()
    again = Session(store, key)
    assert again["x"] == 1
    assert (new.calls, old.calls) == ({"load": 1}, {}), "once moved, the old store is not asked"


def test_migrate_async_twins_move() -> None:
    old, new = MemoryStore(), MemoryStore()
    store = MigrateStore(old, new)
    key = _create(old, {"user": 1})

    async def scenario() -> None:
        record = await store.aload(key)
        assert record is not None
        record.data["x"] = 1
        assert await store.asave(key, record, Changes(frozenset({"x"}))) == key
        assert len(old) == 0
        moved = await store.aload(key)
        assert moved is not None
        assert moved.data == {"user": 1, "x": 1}
        new_key = await store.acycle_key(key, moved)
        assert await store.aload(key) is None
        await store.adelete(new_key)
        assert await store.aload(new_key) is None

    asyncio.run(scenario())


# ---------------------------------------------------------------------- configuration


def _config(store: str, **options: object) -> SessionConfig:
    return SessionConfig(secret_key=SECRET, store=store, store_options=options)


def test_config_builds_both_composed_stores_by_name() -> None:
    memory = MemoryStore()
    tiered = create_store(_config("tiered", front={"store": MemoryStore()}, back={"store": memory}))
    assert isinstance(tiered, TieredStore)
    assert tiered.back is memory
    migrate = create_store(_config("migrate", old={"store": "cookie"}, new={"store": memory}))
    assert isinstance(migrate, MigrateStore)
    assert isinstance(migrate.old, CookieStore)


@pytest.mark.parametrize(
    ("store", "options", "where", "says"),
    [
        ("tiered", {"back": {"store": "cookie"}}, "store_options.front", "needs a front store"),
        ("tiered", {"front": "redis", "back": {}}, "store_options.front", "must be a table"),
        ("tiered", {"front": {"store": "nosuch"}, "back": {}}, "store_options.front", "nosuch"),
        ("tiered", {"front": {"url": "x"}, "back": {}}, "store_options.front", 'store = "<name>"'),
        (
            "tiered",
            {"front": {"store": "cookie"}, "back": {"store": "cookie"}},
            "store_options.front",
            "keeps sessions in the cookie",
        ),
        ("tiered", {"frnot": {}}, "store_options.frnot", "no option 'frnot'"),
        (
            "migrate",
            {"old": {"store": "cookie", "encrpyt": True}, "new": {}},
            "store_options.old",
            "encrpyt",
        ),
        (
            "migrate",
            {"old": {"store": "cookie"}, "new": {"store": "tiered"}},
            "store_options.new",
            "cannot be nested",
        ),
        (
            "tiered",
            {"front": {"store": "migrate"}, "back": {}},
            "store_options.front",
            "cannot be nested",
        ),
    ],
)
def test_config_errors_name_the_nested_store_at_fault(
    store: str, options: dict[str, object], where: str, says: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_store(_config(store, **options))
    assert caught.value.key == where
    assert says in str(caught.value)
    assert where in str(caught.value)


def test_config_refuses_a_front_that_cannot_be_filled() -> None:
    class NoListing(MemoryStore):
        lists_records = False

    with pytest.raises(ConfigurationError, match="cannot be a front") as caught:
        create_store(_config("tiered", front={"store": NoListing()}, back={"store": MemoryStore()}))
    assert caught.value.key == "store_options.front"


def test_config_refuses_a_bad_retry_after() -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_store(
            _config(
                "tiered",
                front={"store": MemoryStore()},
                back={"store": MemoryStore()},
                retry_after="soon",
            )
        )
    assert caught.value.key == "store_options.retry_after"


def test_unused_generated_key_loads_nothing_from_either_store() -> None:
    store = MigrateStore(MemoryStore(), MemoryStore())
    assert store.load(generate_key()) is None
