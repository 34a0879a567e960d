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
from session_core_redis import AsyncClientOnlyError, RedisOptions, RedisStore, SentinelOptions
from session_core_redis.options import redact_url

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
        ({"socket_timout": 1}, "no option 'socket_timout'; did you mean 'socket_timeout'\\?"),
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


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://:s3cret@127.0.0.1:6379/abc", "database 'abc'"),
        ("redis://:s3cret@127.0.0.1:6379/99", "database '99'"),
        ("redis://:s3cret@127.0.0.1:6379/-1", "database '-1'"),
        ("redis://:s3cret@127.0.0.1:6379/0?db=abc", "database 'abc'"),
        ("redis://:s3cret@127.0.0.1:6379/1?db=2", "database once"),
        ("unix://:s3cret@/run/redis.sock?db=99", "database '99'"),
        ("redis://:s3cret@127.0.0.1:99999/0", "port"),
        ("redis://:s3cret@127.0.0.1:0/0", "port"),
        ("redis://:s3cret@127.0.0.1:port/0", "port"),
        ("redis://:s3cret@127.0.0.1:6379/0?socket_timeout=9", "'socket_timeout'"),
        ("redis://:s3cret@127.0.0.1:6379/0?max_connections=9", "'max_connections'"),
        ("unix://:s3cret@", "path"),
        ("http://:s3cret@127.0.0.1:6379/0", "redis://"),
    ],
)
def test_urls_redis_py_would_misread_fail_at_start_up(url: str, message: str) -> None:
    # redis-py reads a URL at the first connection: "abc" became database 0, 99 and 99999
    # failed the first request with a raw ResponseError or ValueError.
    with pytest.raises(ConfigurationError, match=message) as caught:
        session_core.create_store(config(url=url, key_prefix=new_prefix()))
    text = str(caught.value)
    assert "'url'" in text
    assert "s3cret" not in text
    assert "127.0.0.1" in text or "unix://" in text


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"url": "redis://h/0", "db": 2}, "db"),  # the URL's database would win
        ({"db": 2}, "db"),  # the default URL's database would win
        ({"url": "redis://h/0", "ssl": True}, "ssl"),  # the scheme decides
        ({"ssl": True}, "ssl"),
        ({"url": "redis://h/0", "ssl_ca_certs": "/ca.pem"}, "ssl_ca_certs"),  # no TLS
        ({"cluster": ["a:1"], "ssl_ca_certs": "/ca.pem"}, "ssl_ca_certs"),
        ({"url": "redis://u:pw@h/0", "password": "other"}, "password"),
        ({"url": "redis://u:pw@h/0", "username": "other"}, "username"),
        ({"sentinel": {"master": "m", "nodes": ["a:1"]}, "db": 16}, "db"),
        ({"socket_timeout": -1}, "socket_timeout"),
        ({"socket_connect_timeout": -0.5}, "socket_connect_timeout"),
        ({"health_check_interval": -1}, "health_check_interval"),
        ({"max_connections": -3}, "max_connections"),
        ({"max_value_size": 0}, "max_value_size"),
        ({"direct_commands": "no"}, "direct_commands"),
    ],
)
def test_options_that_would_be_ignored_or_fail_later_fail_at_start_up(
    options: dict[str, Any], option: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"option {option!r}") as caught:
        session_core.create_store(config(**options))
    assert "pw" not in str(caught.value)


def test_valid_urls_pass() -> None:
    for url in (
        "redis://h",
        "redis://h:6380",
        "redis://h/",
        "redis://h:6380/15",
        "redis://h?db=3",
        "rediss://u:pw@[::1]:6380/1",
        "unix:///run/redis.sock?db=2",
    ):
        assert RedisOptions(url=url).url == url
    assert RedisOptions(url="redis://h/0", password="pw").password == "pw"
    assert RedisOptions(url="rediss://h/0", ssl_ca_certs="/ca.pem").ssl_ca_certs == "/ca.pem"
    assert RedisOptions(sentinel=SentinelOptions("m", (("a", 1),)), db=15, ssl=True).db == 15


@pytest.mark.parametrize(
    "options", [{"url": "redis://h/0"}, {"socket_timeout": 9}, {"password": "pw"}, {"retries": 3}]
)
def test_client_and_connection_options_conflict(shared_url: str, options: dict[str, Any]) -> None:
    # A handed-over client brings its own connection settings: an option beside it would be
    # silently ignored.
    with (
        redis.Redis.from_url(shared_url) as client,
        pytest.raises(ConfigurationError, match="not both") as caught,
    ):
        RedisStore(options, client=client)
    assert repr(next(iter(options))) in str(caught.value)


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
    assert store.target == redact_url(shared_url)  # the server and db the override names
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
        with pytest.raises(AsyncClientOnlyError, match="only an async_client") as caught:
            store.load(key)
        assert isinstance(caught.value, session_core.SessionCoreError)
        assert caught.value.operation == "load"
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
