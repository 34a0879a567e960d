"""Round trips counted, not timed: Redis commands as a throwaway server counts them, and SQL
statements as SQLite runs them. A tiered read that hits the front costs what the redis store
alone costs; a migrated session's first request costs at most one more than the old store
alone, except the save that moves it between two server stores (one write to the new store,
one more read of the old store and one delete from the old, where the old store alone writes
once): the second read keeps a sign-out made meanwhile from being undone by the move."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from conftest import build, build_nested
from forwarding import forwarding
from redis_servers import RedisProcess, new_prefix
from sqlalchemy import event

from session_core.migrate import MigrateStore
from session_core.session import Session
from session_core.store import SessionStore, generate_key
from session_core_db import DbStore


class Counter:
    """Round trips to one Redis server and one SQLite file since the last :meth:`take`."""

    def __init__(self, server: RedisProcess) -> None:
        self.client = redis.Redis(host="127.0.0.1", port=server.port)
        self.sql: list[str] = []
        self._last = self._commands()

    def _commands(self) -> int:
        # Session commands only: a connection's own setup (HELLO, CLIENT SETINFO, SELECT) and
        # a script's first EVALSHA (answered NOSCRIPT before an EVAL loads it) are not the
        # store's per-request cost.
        stats = self.client.info("commandstats")
        return sum(
            int(stats[f"cmdstat_{name}"]["calls"])
            - int(stats[f"cmdstat_{name}"].get("failed_calls", 0))
            for name in _SESSION_COMMANDS
            if f"cmdstat_{name}" in stats
        )

    def watch(self, store: DbStore) -> None:
        def trace(connection: sqlite3.Connection, _record: object) -> None:
            connection.set_trace_callback(self.sql.append)

        event.listen(store.engine, "connect", trace)

    def take(self) -> tuple[int, int]:
        """(Redis commands, SQL data statements) since the last call."""
        now = self._commands()
        commands, self._last = now - self._last, now
        statements = [s for s in self.sql if s.split()[0].upper() in _DATA_STATEMENTS]
        self.sql.clear()
        return commands, len(statements)


_DATA_STATEMENTS = {"SELECT", "INSERT", "UPDATE", "DELETE"}
_SESSION_COMMANDS = ("hgetall", "evalsha", "eval", "unlink")


@pytest.fixture
def counted(
    throwaway: Callable[..., RedisProcess], tmp_path: Path
) -> Iterator[tuple[Counter, dict[str, object], Callable[[], dict[str, object]]]]:
    server = throwaway()
    counter = Counter(server)

    def redis_place() -> dict[str, object]:
        return {"store": "redis", "url": server.url, "key_prefix": new_prefix()}

    db = {"store": "db", "url": f"sqlite:///{tmp_path}/rt.sqlite3"}
    yield counter, db, redis_place
    counter.client.close()


def _warm(counter: Counter, *stores: SessionStore) -> None:
    """Open every connection (a new Redis connection sends its own setup commands)."""
    for store in stores:
        if isinstance(store, DbStore):
            counter.watch(store)  # before its first connection
        store.load(generate_key())
        if type(store).lists_records:
            store.load_record("0" * 64)  # the listing's own first check of the table
    counter.take()


def _request(store: SessionStore, key: str, write: bool) -> str:
    session = Session(store, key)
    assert session["user"] == "alice"
    if write:
        session["visits"] = session.get("visits", 0) + 1
        saved = session.save()
        assert saved is not None
        return saved
    return key


def _alice(store: SessionStore) -> str:
    session = Session(store)
    session["user"] = "alice"
    key = session.save()
    assert key is not None
    return key


def test_tiered_read_costs_what_redis_alone_costs(counted) -> None:  # type: ignore[no-untyped-def]
    counter, db, redis_place = counted
    alone = build("redis", **{k: v for k, v in redis_place().items() if k != "store"})
    tiered = build("tiered", front=redis_place(), back=db)
    assert hasattr(tiered, "back")
    _warm(counter, alone, tiered.front, tiered.back)  # type: ignore[attr-defined]
    key_alone, key_tiered = _alice(alone), _alice(tiered)
    _request(tiered, key_tiered, write=False)  # the first read fills the front
    counter.take()
    _request(alone, key_alone, write=False)
    assert counter.take() == (1, 0)
    _request(tiered, key_tiered, write=False)
    assert counter.take() == (1, 0), "a tiered read that hits the front costs one Redis command"


def test_cookie_to_redis_first_request_costs_no_extra(counted) -> None:  # type: ignore[no-untyped-def]
    counter, _db, redis_place = counted
    new = redis_place()
    cookie = build("cookie")
    alone = build("redis", **{k: v for k, v in new.items() if k != "store"})
    migrate = build("migrate", old={"store": "cookie"}, new=new)
    _warm(counter, alone, migrate.new)  # type: ignore[attr-defined]
    value = _alice(cookie)
    key = _alice(alone)
    counter.take()
    _request(alone, key, write=True)
    redis_alone = counter.take()
    assert redis_alone == (2, 0)
    _request(migrate, value, write=True)
    assert counter.take() == (1, 0), "the move is the new session's one write"


def _migrating(
    counter: Counter, old: dict[str, object], new: dict[str, object]
) -> tuple[SessionStore, SessionStore, str]:
    """A migrate store from ``old`` to ``new`` (connections open), its old store, and the key
    of a session saved in the old store; the counter starts afresh."""
    migrate = build("migrate", old=old, new=new)
    assert isinstance(migrate, MigrateStore)
    _warm(counter, migrate.old, migrate.new)
    key = _alice(migrate.old)
    counter.take()
    return migrate, migrate.old, key


def test_db_to_redis_first_request(counted) -> None:  # type: ignore[no-untyped-def]
    counter, db, redis_place = counted
    migrate, old, key = _migrating(counter, db, redis_place())
    _request(old, key, write=False)
    assert counter.take() == (0, 1), "the old store alone: one SELECT"
    _request(migrate, key, write=False)
    assert counter.take() == (1, 1), "a read: one more (the new store's miss)"
    _request(old, key, write=True)
    assert counter.take() == (0, 2), "the old store alone: a SELECT and an UPDATE"
    moved = _request(migrate, key, write=True)
    assert moved == key
    assert counter.take() == (2, 3), "the move: a miss, the SELECT, the write, a SELECT, DELETE"
    _request(migrate, key, write=True)
    assert counter.take() == (2, 0), "once moved: the new store alone"


def test_redis_to_db_first_request(counted) -> None:  # type: ignore[no-untyped-def]
    """The move into a database writes the session with one INSERT (no DELETE of an expired
    row and no SELECT first: those run only when the INSERT finds the hash held)."""
    counter, db, redis_place = counted
    migrate, old, key = _migrating(counter, redis_place(), db)
    _request(old, key, write=True)
    assert counter.take() == (2, 0), "the old store alone: HGETALL and the save script"
    assert _request(migrate, key, write=True) == key
    assert counter.take() == (3, 2), "the move: a miss, HGETALL, INSERT, HGETALL, UNLINK"
    _request(migrate, key, write=True)
    assert counter.take() == (0, 2), "once moved: the new store alone"


@pytest.mark.parametrize(("old_kind", "new_kind"), [("sqlite", "redis"), ("redis", "sqlite")])
def test_store_calls_of_a_migrated_sessions_first_requests(
    place: Callable[[str], dict[str, object]], old_kind: str, new_kind: str
) -> None:
    """The calls the migrate store makes to its real stores (counted by a forwarder around
    each), against what the old store alone is asked: a first read-only request asks one more
    (the new store's miss); the first saving request writes the whole session to the new store
    as a create (an insert by hash: no failed update first), reads the old store once more
    and deletes the session from it. The miss, the second read and the delete are the three
    calls the move adds: the new store must be asked first (it holds every session created or
    copied since the change), a sign-out or revocation that ran meanwhile must not be undone
    (the second read finds the session gone and takes the copy back; tests/composed/
    test_users.py), and the old copy must go (a session moves out of the old store)."""
    old, new = forwarding(build_nested(place(old_kind))), forwarding(build_nested(place(new_kind)))
    store = MigrateStore(old, new)
    for async_ in (False, True):
        key = _alice(old.inner)
        old.calls.clear()
        _request_maybe_async(store, key, write=False, async_=async_)
        assert (dict(old.calls), dict(new.calls)) == ({"load": 1}, {"load": 1}), async_
        old.calls.clear()
        new.calls.clear()
        _request_maybe_async(store, key, write=True, async_=async_)
        assert dict(old.calls) == {"load": 2, "delete": 1}, async_
        assert dict(new.calls) == {"load": 1, "insert_record": 1}, async_
        new.calls.clear()
        old.calls.clear()
        _request_maybe_async(store, key, write=True, async_=async_)
        assert (dict(old.calls), dict(new.calls)) == ({}, {"load": 1, "save": 1}), "moved"
        new.calls.clear()
    # A signed-in session's move costs the same: the second read is there for every session.
    signed_in = Session(old.inner)
    signed_in["user"] = "alice"
    signed_in.user_id = "alice"
    key = signed_in.save()
    assert key is not None
    old.calls.clear()
    _request(store, key, write=True)
    assert dict(old.calls) == {"load": 2, "delete": 1}
    assert dict(new.calls) == {"load": 1, "insert_record": 1}
    store.close()


def _request_maybe_async(store: SessionStore, key: str, write: bool, async_: bool) -> None:
    if not async_:
        _request(store, key, write)
        return

    async def request() -> None:
        session = Session(store, key)
        await session.aload()
        assert session["user"] == "alice"
        if write:
            session["visits"] = session.get("visits", 0) + 1
            assert await session.asave() == key

    asyncio.run(request())
