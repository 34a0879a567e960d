"""Configuration: entry-point discovery, option validation at start-up, handing over clients,
and use from several event loops."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from typing import Any

import pytest
import redis
import redis.asyncio
from redis_servers import new_prefix

import session_core
from session_core import ConfigurationError, SessionConfig
from session_core.testing import make_record
from session_core_redis import RedisOptions, RedisStore

SECRET = "s" * 40


def config(**options: Any) -> SessionConfig:
    return SessionConfig(secret_key=SECRET, store="redis", store_options=options)


def test_entry_point_builds_the_store(shared_url: str) -> None:
    prefix = new_prefix()
    store = session_core.create_store(config(url=shared_url, key_prefix=prefix))
    try:
        assert isinstance(store, RedisStore)
        assert store.prefix == prefix
        session = session_core.Session(store)
        session["user"] = 1
        key = session.save()
        assert key is not None
        assert dict(session_core.Session(store, key)) == {"user": 1}
    finally:
        store.close()


def test_listed_among_available_stores() -> None:
    info = {i.name: i for i in session_core.available_stores()}["redis"]
    assert info.ok
    assert info.distribution == "session-core-redis"
    assert info.version == "0.1.0"


def test_construction_does_not_connect() -> None:
    store = session_core.create_store(config(url="redis://127.0.0.1:1/0"))
    store.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hosts": "x"}, "no option 'hosts'"),
        ({"url": "http://localhost"}, "'url'"),
        ({"url": 5}, "'url'"),
        ({"url": "redis://a", "cluster": ["a:1"]}, "only one of"),
        ({"sentinel": {"master": "m", "nodes": ["a:1"]}, "url": "redis://a"}, "only one of"),
        ({"key_prefix": "{app}"}, "key_prefix"),
        ({"key_prefix": 3}, "key_prefix"),
        ({"socket_timeout": 0}, "socket_timeout"),
        ({"socket_timeout": "1"}, "socket_timeout"),
        ({"max_connections": 0}, "max_connections"),
        ({"retries": -1}, "retries"),
        ({"retries": True}, "retries"),
        ({"cluster": []}, "cluster"),
        ({"cluster": ["nohost"]}, "cluster"),
        ({"cluster": ["a:99999"]}, "cluster"),
        ({"cluster": ["a:1"], "db": 2}, "db"),
        ({"sentinel": "m"}, "sentinel"),
        ({"sentinel": {"master": "m"}}, "nodes"),
        ({"sentinel": {"nodes": ["a:1"]}}, "master"),
        ({"sentinel": {"master": "m", "nodes": ["a:1"], "port": 1}}, "port"),
        ({"ssl": "yes"}, "ssl"),
        ({"password": 1234}, "password"),
    ],
)
def test_bad_options_fail_at_start_up(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        session_core.create_store(config(**options))
    assert caught.value.key == "store_options"


def test_options_parse() -> None:
    options = RedisOptions.from_mapping(
        {
            "sentinel": {"master": "m", "nodes": ["10.0.0.1:26379", ["::1", 26380]]},
            "password": "pw",
            "db": 2,
        }
    )
    assert options.sentinel is not None
    assert options.sentinel.nodes == (("10.0.0.1", 26379), ("::1", 26380))
    assert options.target == "sentinel master 'm' via 10.0.0.1:26379,[::1]:26380"
    cluster = RedisOptions.from_mapping({"cluster": "a:7000,[::1]:7001"})
    assert cluster.cluster == (("a", 7000), ("::1", 7001))
    assert cluster.target == "cluster a:7000,[::1]:7001"
    assert RedisOptions(url="rediss://u:pw@h:6380/1?x=y").target == "rediss://h:6380/1"
    assert RedisOptions(url="unix://:pw@/run/redis.sock?db=1").target == "unix:///run/redis.sock"
    assert RedisOptions().target == "redis://localhost:6379/0"


def test_handed_over_client(shared_url: str) -> None:
    client = redis.Redis.from_url(shared_url)
    store = RedisStore({"key_prefix": new_prefix()}, client=client)
    assert store.target == "redis://127.0.0.1:6379/0"
    record = make_record({"a": 1})
    key = store.save(None, record, session_core.Changes.everything(record))
    assert key is not None

    async def through_threads() -> None:  # only a sync client: the async twins use threads
        loaded = await store.aload(key)
        assert loaded is not None
        assert loaded.data == {"a": 1}

    asyncio.run(through_threads())
    store.close()
    assert client.ping(), "the store must not close a client it was handed"
    client.close()


def test_handed_over_async_client_only(shared_url: str) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(shared_url)
        store = RedisStore({"key_prefix": new_prefix()}, async_client=client)
        record = make_record({"a": 1})
        key = await store.asave(None, record, session_core.Changes.everything(record))
        assert key is not None
        assert await store.aload(key) is not None
        with pytest.raises(RuntimeError, match="async_client"):
            store.load(key)
        await store.aclose()
        assert await client.ping()
        await client.aclose()

    asyncio.run(scenario())


def test_handed_over_client_must_return_bytes(shared_url: str) -> None:
    with (
        redis.Redis.from_url(shared_url, decode_responses=True) as client,
        pytest.raises(ConfigurationError, match="decode_responses"),
    ):
        RedisStore(client=client)


def test_client_and_connection_options_conflict(shared_url: str) -> None:
    with (
        redis.Redis.from_url(shared_url) as client,
        pytest.raises(ConfigurationError, match="not both"),
    ):
        RedisStore({"url": shared_url}, client=client)


def test_several_event_loops_and_threads_leave_nothing_open(shared_url: str) -> None:
    store = RedisStore({"url": shared_url, "key_prefix": new_prefix()})
    record = make_record({"a": 1})
    key = store.save(None, record, session_core.Changes.everything(record))
    assert key is not None
    errors: list[BaseException] = []

    async def use() -> None:
        for _ in range(5):
            loaded = await store.aload(key)
            assert loaded is not None

    def in_thread() -> None:
        try:
            asyncio.run(use())
        except BaseException as exc:
            errors.append(exc)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            asyncio.run(use())
        threads = [threading.Thread(target=in_thread) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        store.close()
        gc.collect()
    assert not errors, errors
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
