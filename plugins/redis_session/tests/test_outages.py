"""Outages: a server that is down, hung, restarted, or failed over by Sentinel."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest
import redis
from redis_servers import (
    HOST,
    RedisProcess,
    SentinelSetup,
    create,
    free_port,
    new_prefix,
    wait_until,
)

from session_core import Changes, Session, StoreUnreachableError
from session_core.testing import make_record
from session_core_redis import RedisStore


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_server_down_raises_store_unreachable_naming_address_without_password() -> None:
    port = free_port()
    store = RedisStore({"url": f"redis://admin:s3cret-pw@{HOST}:{port}/3"})
    key = store.generate_key()
    record = make_record({"a": 1})
    calls: list[tuple[str, Callable[[], object]]] = [
        ("load", lambda: store.load(key)),
        ("save", lambda: store.save(None, record, Changes.everything(record))),
        ("save", lambda: store.save(key, record, Changes(frozenset({"a"})))),
        ("delete", lambda: store.delete(key)),
        ("cycle", lambda: store.cycle_key(key, record)),
    ]
    for operation, call in calls:
        with pytest.raises(StoreUnreachableError) as caught:
            call()
        error = caught.value
        assert error.store == "redis"
        assert error.operation.startswith(operation)
        assert error.target == f"redis://{HOST}:{port}/3"
        assert f"{HOST}:{port}" in str(error)
        assert "s3cret" not in str(error)
        assert isinstance(error.__cause__, redis.ConnectionError)  # refused, not timed out
    store.close()


def test_server_down_async() -> None:
    port = free_port()
    store = RedisStore({"url": f"redis://{HOST}:{port}/0"})

    async def scenario() -> None:
        with pytest.raises(StoreUnreachableError, match=f"{HOST}:{port}"):
            await store.aload(store.generate_key())
        record = make_record({"a": 1})
        with pytest.raises(StoreUnreachableError, match="could not save"):
            await store.asave(None, record, Changes.everything(record))
        await store.aclose()

    asyncio.run(scenario())


def test_session_write_to_a_down_server_is_reported_not_dropped() -> None:
    store = RedisStore({"url": f"redis://{HOST}:{free_port()}/0"})
    session = Session(store, store.generate_key())
    session["cart"] = [1]
    with pytest.raises(StoreUnreachableError):
        session.save()
    store.close()


def test_hung_server_times_out(hung_port: int) -> None:
    store = RedisStore({"url": f"redis://{HOST}:{hung_port}/0", "socket_timeout": 0.2})
    with pytest.raises(StoreUnreachableError) as caught:
        store.load(store.generate_key())
    assert isinstance(caught.value.__cause__, redis.TimeoutError)  # the socket timeout ended it
    store.close()


def test_hung_server_times_out_async(hung_port: int) -> None:
    store = RedisStore({"url": f"redis://{HOST}:{hung_port}/0", "socket_timeout": 0.2})

    async def scenario() -> None:
        # wait_for only guards against a hang: the socket timeout must end the call first.
        with pytest.raises(StoreUnreachableError) as caught:
            await asyncio.wait_for(store.aload(store.generate_key()), 30)
        assert isinstance(caught.value.__cause__, redis.TimeoutError)
        await store.aclose()

    asyncio.run(scenario())


def test_restart_loses_nothing_and_store_recovers(
    throwaway: Callable[..., RedisProcess],
) -> None:
    server = throwaway("--appendonly", "yes", "--appendfsync", "always")
    store = RedisStore({"url": server.url, "key_prefix": new_prefix(), "retries": 0})
    keys = {create(store, {"n": n, "list": [n]}): n for n in range(20)}
    writer = Session(store, next(iter(keys)))
    writer["extra"] = True
    writer.save()

    server.stop()
    with pytest.raises(StoreUnreachableError, match=server.address):
        store.load(next(iter(keys)))
    failed = Session(store, next(iter(keys)))
    failed["lost?"] = 1
    with pytest.raises(StoreUnreachableError):
        failed.save()

    server.start()  # same port, same directory: replays its append-only file
    for key, n in keys.items():  # the same store object: no restart of the app
        record = store.load(key)
        assert record is not None
        assert record.data["n"] == n
    first = store.load(next(iter(keys)))
    assert first is not None
    assert first.data["extra"] is True
    assert "lost?" not in first.data
    assert create(store, {"after": "restart"})  # the script cache is empty again: reloaded

    async def after_restart() -> None:
        loaded = await store.aload(next(iter(keys)))
        assert loaded is not None
        await store.aclose()

    asyncio.run(after_restart())


def test_retry_rides_over_a_restart_between_requests(
    throwaway: Callable[..., RedisProcess],
) -> None:
    server = throwaway("--appendonly", "yes", "--appendfsync", "always")
    store = RedisStore({"url": server.url, "key_prefix": new_prefix()})
    key = create(store, {"user": 1})
    server.stop()
    server.start()
    record = store.load(key)  # the pooled connection is dead; one retry on a fresh one
    assert record is not None
    assert record.data == {"user": 1}
    store.close()


def test_sentinel_failover_is_followed(redis_sentinel: SentinelSetup) -> None:
    setup = redis_sentinel
    store = RedisStore(
        {
            "sentinel": {"master": setup.master_name, "nodes": [setup.sentinel.address]},
            "key_prefix": new_prefix(),
            "retries": 3,
        }
    )
    keys = {create(store, {"n": n}): n for n in range(10)}
    old_master = setup.master_port()
    with redis.Redis(port=old_master) as master:
        assert master.wait(1, 5000) == 1, "the replica must have every write before failover"
    with setup.sentinel_client() as sentinel:
        sentinel.execute_command("SENTINEL", "FAILOVER", setup.master_name)
    setup.wait_failed_over(old_master)

    def works() -> bool:
        try:
            return create(store, {"after": "failover"}) is not None
        except StoreUnreachableError:
            return False

    wait_until(works, "the store to write to the new master", timeout=30)
    for key, n in keys.items():
        record = store.load(key)
        assert record is not None
        assert record.data == {"n": n}
    session = Session(store, next(iter(keys)))
    session["written"] = "on the new master"
    assert session.save() == next(iter(keys))

    async def async_after_failover() -> None:
        record = await store.aload(next(iter(keys)))
        assert record is not None
        assert record.data["written"] == "on the new master"
        await store.aclose()

    asyncio.run(async_after_failover())
    setup.wait_healthy()
