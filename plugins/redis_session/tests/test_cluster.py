"""Redis Cluster: sessions spread over slots and masters; ``cycle_key`` stays atomic because
the new key is chosen in the old key's slot."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis.cluster
from redis_servers import Cluster, new_prefix

from session_core import Changes, Session
from session_core.testing import make_record
from session_core_redis import RedisStore, redis_key


@pytest.fixture
def cluster_store(redis_cluster: Cluster) -> Iterator[RedisStore]:
    store = RedisStore({"cluster": redis_cluster.addresses, "key_prefix": new_prefix()})
    yield store
    store.close()


@pytest.fixture
def cluster_client(redis_cluster: Cluster) -> Iterator[redis.cluster.RedisCluster]:
    host, port = redis_cluster.addresses[0].split(":")
    with redis.cluster.RedisCluster(host=host, port=int(port)) as client:
        yield client


def create(store: RedisStore, n: int) -> str:
    record = make_record({"n": n})
    key = store.save(None, record, Changes.everything(record))
    assert key is not None
    return key


def test_sessions_spread_over_slots_and_masters(
    cluster_store: RedisStore, cluster_client: redis.cluster.RedisCluster
) -> None:
    keys = [create(cluster_store, n) for n in range(40)]
    names = [redis_key(cluster_store.prefix, key) for key in keys]
    slots = {cluster_client.keyslot(name) for name in names}
    masters = {cluster_client.get_node_from_key(name).name for name in names}
    assert len(slots) > 20
    assert len(masters) == 3
    for n, key in enumerate(keys):
        record = cluster_store.load(key)
        assert record is not None
        assert record.data == {"n": n}


def test_cycle_key_keeps_the_slot(
    cluster_store: RedisStore, cluster_client: redis.cluster.RedisCluster
) -> None:
    for n in range(5):
        key = create(cluster_store, n)
        session = Session(cluster_store, key)
        session["user"] = n
        session.cycle_key()
        new_key = session.save()
        assert new_key is not None
        assert new_key != key
        old_name, new_name = (redis_key(cluster_store.prefix, k) for k in (key, new_key))
        assert cluster_client.keyslot(old_name) == cluster_client.keyslot(new_name)
        assert cluster_client.exists(old_name) == 0
        record = cluster_store.load(new_key)
        assert record is not None
        assert record.data == {"n": n, "user": n}


def test_async_cluster_from_several_event_loops(cluster_store: RedisStore) -> None:
    key = create(cluster_store, 0)

    async def request(n: int) -> None:
        session = Session(cluster_store, key)
        session[f"t{n}"] = n
        assert await session.asave() == key

    async def scenario(first: int) -> None:
        await asyncio.gather(*(request(n) for n in range(first, first + 10)))

    asyncio.run(scenario(0))
    asyncio.run(scenario(10))
    record = cluster_store.load(key)
    assert record is not None
    assert record.data == {"n": 0, **{f"t{n}": n for n in range(20)}}
