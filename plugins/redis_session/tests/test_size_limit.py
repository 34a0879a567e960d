"""A session over the server's size limit (``proto-max-bulk-len``) is refused with a clear error
before anything is sent, and leaves the store's connection to the other requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis
from redis_servers import RedisProcess, create, new_prefix

import session_core
from session_core import Changes, SessionCoreError
from session_core.testing import make_record
from session_core_redis import RedisStore, SessionTooLargeError
from session_core_redis.options import DEFAULT_MAX_VALUE_SIZE

MIB = 1024 * 1024


def stats(server: RedisProcess) -> tuple[int, int]:
    """(connections accepted, bytes received) by ``server`` so far, this check's included."""
    with redis.Redis.from_url(server.url) as client:
        info = client.info("stats")
    return int(info["total_connections_received"]), int(info["total_net_input_bytes"])


@pytest.fixture
def small_server(throwaway: Callable[..., RedisProcess]) -> RedisProcess:
    """A server that accepts values of at most 1 MiB (the smallest proto-max-bulk-len)."""
    return throwaway("--proto-max-bulk-len", str(MIB))


def test_default_limit_is_redis_default() -> None:
    assert DEFAULT_MAX_VALUE_SIZE == 512 * MIB
    assert RedisStore().options.max_value_size == 512 * MIB


def test_oversized_session_is_refused_before_it_is_sent(small_server: RedisProcess) -> None:
    store = RedisStore(
        {"url": small_server.url, "key_prefix": new_prefix(), "max_value_size": MIB, "retries": 0}
    )
    kept = create(store, {"user": "alice"})  # the store's one connection, now kept
    connections, received = stats(small_server)
    big = make_record({"user": "bob", "blob": "x" * MIB})  # its JSON is two quotes longer
    attempts = [
        lambda: store.save(None, big, Changes.everything(big)),
        lambda: store.save(kept, big, Changes(frozenset({"blob"}))),
        lambda: store.cycle_key(kept, big),
    ]
    for attempt in attempts:
        with pytest.raises(SessionTooLargeError) as caught:
            attempt()
        error = caught.value
        assert isinstance(error, SessionCoreError)
        assert isinstance(error, session_core.SessionTooLargeError)  # one class for any store
        assert (error.store, error.size, error.limit) == ("redis", MIB + 2, MIB)
        assert "proto-max-bulk-len" in str(error)
        assert f"{MIB + 2} bytes" in str(error)
        assert small_server.url in str(error)
    record = store.load(kept)  # the other requests' connection is intact
    assert record is not None
    assert record.data == {"user": "alice"}
    now_connections, now_received = stats(small_server)
    assert now_connections == connections + 1  # the check's own: no reconnect
    assert now_received - received < 64 * 1024  # nothing of the megabyte was sent
    store.close()


def test_oversized_session_is_refused_async(small_server: RedisProcess) -> None:
    store = RedisStore({"url": small_server.url, "key_prefix": new_prefix(), "max_value_size": MIB})
    big = make_record({"blob": "x" * MIB})

    async def scenario() -> None:
        try:
            key = await store.asave(None, make_record({"n": 1}), Changes(frozenset({"n"})))
            assert key is not None
            with pytest.raises(SessionTooLargeError):
                await store.asave(None, big, Changes.everything(big))
            with pytest.raises(SessionTooLargeError):
                await store.asave(key, big, Changes(frozenset({"blob"})))
            loaded = await store.aload(key)
            assert loaded is not None
            assert loaded.data == {"n": 1}
        finally:
            await store.aclose()

    _, received = stats(small_server)
    asyncio.run(scenario())
    assert stats(small_server)[1] - received < 64 * 1024


def test_a_value_at_the_limit_is_saved(small_server: RedisProcess) -> None:
    # The limit is the server's: a value of exactly max_value_size bytes must be accepted.
    store = RedisStore({"url": small_server.url, "key_prefix": new_prefix(), "max_value_size": MIB})
    key = create(store, {"blob": "x" * (MIB - 2)})
    record = store.load(key)
    assert record is not None
    assert len(record.data["blob"]) == MIB - 2  # type: ignore[arg-type]
    store.close()
