"""Fixtures: the shared Redis at 127.0.0.1:6379 (namespaced by a unique key prefix per test
run, never flushed), and throwaway Cluster and Sentinel setups started for this run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis_servers import RUN_PREFIX, Cluster, RedisProcess, SentinelSetup, new_prefix, running

from session_core_redis import RedisStore

SHARED_URL = os.environ.get("SESSION_CORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def shared_url() -> Iterator[str]:
    """The shared standalone server; the test fails (not skips) if it is not running."""
    client = redis.Redis.from_url(SHARED_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"no Redis server at {SHARED_URL} (start one, e.g. bash .ci/services): {exc}")
    try:
        yield SHARED_URL
    finally:
        for name in client.scan_iter(match=RUN_PREFIX + "*", count=1000):
            client.unlink(name)
        client.close()


@pytest.fixture
def shared_client(shared_url: str) -> Iterator[redis.Redis]:
    """A plain client of the shared server."""
    with redis.Redis.from_url(shared_url) as client:
        yield client


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-master Redis Cluster for this test run."""
    with running(Cluster(tmp_path_factory.mktemp("cluster"))) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSetup]:
    """A master, a replica and a sentinel for this test run."""
    with running(SentinelSetup(tmp_path_factory.mktemp("sentinel"))) as setup:
        yield setup


@pytest.fixture
def store(shared_url: str) -> Iterator[RedisStore]:
    """A store on the shared server, under a key prefix of its own."""
    store = RedisStore({"url": shared_url, "key_prefix": new_prefix()})
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def throwaway(tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    """Start a private ``redis-server`` (arguments are extra server options); all are stopped
    after the test, whatever happens."""
    started: list[RedisProcess] = []

    def start(*args: str) -> RedisProcess:
        server = RedisProcess(tmp_path / f"server{len(started)}", None, *args)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()
