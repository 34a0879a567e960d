"""The hot path at the physical floor: one round trip per load and per save, and no read for a
request that only writes. Round trips are counted on the client's connections."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import redis
import redis.asyncio
import redis.cluster
from redis_servers import create, new_prefix

from session_core import Changes, Session
from session_core.testing import make_record
from session_core_redis import RedisStore


def command_names(packed: Any) -> list[str]:
    """The names of the commands in what a connection sends at once (packed by redis-py or by
    the store itself: one buffer, or a list of pieces)."""
    if isinstance(packed, str):
        packed = packed.encode()
    data = packed if isinstance(packed, bytes) else b"".join(bytes(piece) for piece in packed)
    names, pos = [], 0
    while pos < len(data):
        assert data[pos : pos + 1] == b"*", data
        end = data.index(b"\r\n", pos)
        count, pos = int(data[pos + 1 : end]), end + 2
        for index in range(count):
            end = data.index(b"\r\n", pos)
            size, pos = int(data[pos + 1 : end]), end + 2
            if index == 0:
                names.append(data[pos : pos + size].decode().upper())
            pos += size + 2
    return names


class Counting(redis.connection.Connection):
    """A connection that logs every command and every request it sends (everything goes
    through ``send_packed_command``, from redis-py's ``send_command`` or from the store)."""

    commands: ClassVar[list[str]] = []
    trips: ClassVar[list[int]] = []

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self.commands.extend(command_names(command))
        self.trips.append(1)
        super().send_packed_command(command, check_health)


class AsyncCounting(redis.asyncio.Connection):
    """The :mod:`redis.asyncio` twin of :class:`Counting` (sharing its logs)."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        Counting.commands.extend(command_names(command))
        Counting.trips.append(1)
        await super().send_packed_command(command, check_health)


def reset() -> None:
    Counting.commands.clear()
    Counting.trips.clear()


def assert_sent(*commands: str) -> None:
    """Exactly ``commands`` were sent since :func:`reset`, one round trip each."""
    assert Counting.commands == list(commands)
    assert len(Counting.trips) == len(commands)


@pytest.fixture
def counted(shared_url: str) -> Iterator[RedisStore]:
    """A store on a handed-over client whose connections count what they send."""
    url = redis.connection.parse_url(shared_url)
    pool = redis.ConnectionPool(connection_class=Counting, **url)
    client = redis.Redis(connection_pool=pool)
    store = RedisStore({"key_prefix": new_prefix()}, client=client)
    record = make_record({"warm": "up"})
    store.load(store.save(None, record, Changes.everything(record)) or "")  # connect, cache
    reset()
    yield store
    store.close()
    client.close()
    pool.disconnect()


def test_create_is_one_round_trip(counted: RedisStore) -> None:
    create(counted, {"user": 1, "cart": [1, 2]})
    assert_sent("EVALSHA")


def test_load_is_one_round_trip(counted: RedisStore) -> None:
    key = create(counted, {"user": 1})
    reset()
    assert counted.load(key) is not None
    assert_sent("HGETALL")


def test_update_is_one_round_trip(counted: RedisStore) -> None:
    key = create(counted, {"user": 1})
    record = counted.load(key)
    assert record is not None
    reset()
    record.data["user"] = 2
    assert counted.save(key, record, Changes(frozenset({"user"}))) == key
    assert_sent("EVALSHA")


def test_write_only_request_needs_no_read(counted: RedisStore) -> None:
    key = create(counted, {"user": 1, "theme": "dark"})
    reset()
    session = Session(counted, key)
    session["cart"] = [3]
    assert session.save() == key
    assert_sent("EVALSHA")  # a write-only request must not read the session
    record = counted.load(key)
    assert record is not None
    assert record.data == {"user": 1, "theme": "dark", "cart": [3]}


def test_read_then_write_request_is_two_round_trips(counted: RedisStore) -> None:
    key = create(counted, {"visits": 1})
    reset()
    session = Session(counted, key)
    session["visits"] = session["visits"] + 1  # type: ignore[operator]
    session.save()
    assert_sent("HGETALL", "EVALSHA")


def test_cycle_key_is_one_round_trip(counted: RedisStore) -> None:
    key = create(counted, {"user": 1})
    record = counted.load(key)
    assert record is not None
    reset()
    new_key = counted.cycle_key(key, record)
    assert_sent("EVALSHA")
    assert counted.load(key) is None
    assert counted.load(new_key) is not None


def test_malformed_key_costs_no_round_trip(counted: RedisStore) -> None:
    assert counted.load("not a key") is None
    counted.delete("not a key")
    assert counted.save("not a key", make_record({"a": 1}), Changes(frozenset({"a"}))) is None
    assert Counting.trips == []


def test_async_load_and_save_are_one_round_trip_each(shared_url: str) -> None:
    url = redis.connection.parse_url(shared_url)

    async def scenario() -> None:
        pool = redis.asyncio.ConnectionPool(connection_class=AsyncCounting, **url)
        client = redis.asyncio.Redis(connection_pool=pool)
        store = RedisStore({"key_prefix": new_prefix()}, async_client=client)
        try:
            record = make_record({"user": 1})
            key = await store.asave(None, record, Changes.everything(record))
            assert key is not None
            await store.aload(key)
            reset()
            loaded = await store.aload(key)
            assert loaded is not None
            assert_sent("HGETALL")
            reset()
            session = Session(store, key)
            session["cart"] = [1]
            assert await session.asave() == key
            assert_sent("EVALSHA")
        finally:
            await client.aclose()
            await pool.disconnect()

    asyncio.run(scenario())


# Sessions per user: the index costs a login nothing beyond its save on one server, ordinary
# requests nothing at all, and listing or revoking is one call.


def _warm_user_scripts(store: RedisStore) -> None:
    """Load the list and revoke scripts into the server (a first call sends EVAL too)."""
    store.sessions_of("warm-up")
    store.revoke_user("warm-up")
    reset()


def test_login_costs_no_extra_round_trip(counted: RedisStore) -> None:
    key = create(counted, {"cart": [1]})
    reset()
    session = Session(counted, key)
    session.user_id = "ann"  # loads, then cycles the key into the user's index
    new_key = session.save()
    assert_sent("HGETALL", "EVALSHA")
    assert new_key is not None
    assert new_key != key
    assert counted.load(key) is None


def test_requests_of_a_signed_in_user_cost_nothing_more(counted: RedisStore) -> None:
    session = Session(counted)
    session["cart"] = [1]
    session.user_id = "ann"
    key = session.save()
    assert key is not None
    reset()
    writer = Session(counted, key)
    writer["cart"] = [1, 2]
    assert writer.save() == key
    assert_sent("EVALSHA")
    reset()
    reader = Session(counted, key)
    assert reader["cart"] == [1, 2]
    reader["seen"] = True
    assert reader.save() == key
    assert_sent("HGETALL", "EVALSHA")


def test_listing_and_revoking_are_one_round_trip_each(counted: RedisStore) -> None:
    _warm_user_scripts(counted)
    keys = []
    for _ in range(4):
        session = Session(counted)
        session.user_id = 7
        keys.append(session.save())
    reset()
    assert len(counted.sessions_of(7)) == 4
    assert_sent("EVALSHA")
    reset()
    assert counted.revoke_user(7, keep=keys[0]) == 3
    assert_sent("EVALSHA")


def test_async_listing_and_revoking_are_one_round_trip_each(shared_url: str) -> None:
    url = redis.connection.parse_url(shared_url)

    async def scenario() -> None:
        pool = redis.asyncio.ConnectionPool(connection_class=AsyncCounting, **url)
        client = redis.asyncio.Redis(connection_pool=pool)
        store = RedisStore({"key_prefix": new_prefix()}, async_client=client)
        session = Session(store)
        session.user_id = "ann"
        await session.aload()
        assert await session.asave() is not None
        await store.asessions_of("ann")  # loads the scripts
        await store.arevoke_user("nobody")
        reset()
        assert len(await store.asessions_of("ann")) == 1
        assert_sent("EVALSHA")
        reset()
        assert await store.arevoke_user("ann") == 1
        assert_sent("EVALSHA")
        await client.aclose()
        await pool.disconnect()

    asyncio.run(scenario())


class _CountingCluster(redis.cluster.RedisCluster):
    """A Cluster client that logs each command the store sends (the store sends every Cluster
    command through ``execute_command``, one round trip each, to the node of its slot)."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        name = args[0]
        Counting.commands.append(name.decode() if isinstance(name, bytes) else str(name))
        Counting.trips.append(1)
        return super().execute_command(*args, **kwargs)


def test_login_on_cluster_costs_at_most_one_extra_round_trip(redis_cluster: Any) -> None:
    """On Cluster the session moves into its user's hash slot at login: one script there, and
    an ``UNLINK`` of the old key when that was in another slot (a second round trip)."""
    from redis_servers import Cluster

    assert isinstance(redis_cluster, Cluster)
    host, port = redis_cluster.addresses[0].rsplit(":", 1)
    client = _CountingCluster(host=host, port=int(port))
    store = RedisStore({"key_prefix": new_prefix()}, client=client)
    try:
        for user in ("ann", "bob", "cy"):
            warm = make_record({"warm": 1})
            warm.user_id = user  # loads both scripts on the node of the user's slot
            store.save(None, warm, Changes.everything(warm))
            store.sessions_of(user)
            key = create(store, {"cart": [1]})
            session = Session(store, key)
            session.load()
            user_tag = store._index_key(user)[len(store.prefix) + 1 :][:2]
            same_slot = store._redis_key(key)[len(store.prefix) + 1 :][:2] == user_tag
            reset()
            session.user_id = user
            new_key = session.save()
            assert new_key is not None
            assert store._redis_key(new_key)[len(store.prefix) + 1 :][:2] == user_tag
            assert_sent("EVALSHA", *(() if same_slot else ("UNLINK",)))
            assert store.load(key) is None
            reset()
            assert sum(info.is_key(new_key) for info in store.sessions_of(user)) == 1
            assert_sent("EVALSHA")
    finally:
        client.close()
