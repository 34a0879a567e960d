"""Redis Cluster: sessions spread over slots and masters; ``cycle_key`` stays atomic because
the new key is chosen in the old key's slot."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis.cluster
from redis_servers import Cluster, new_prefix

from session_core import Changes, ConfigurationError, Session, SessionRecord, hash_key
from session_core.migrate import MigrateStore
from session_core.store import ListingUnsupportedError, with_flags
from session_core.testing import make_record
from session_core.tiered import TieredStore
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


# ---------------------------------------------------------------------- records by key hash


def _signed_in(store: RedisStore, user_id: str) -> str:
    record = make_record({"who": user_id})
    record.user_id = user_id
    key = store.save(None, record, Changes.everything(record))
    assert key is not None
    return key


def test_a_cluster_store_does_not_list_records(
    redis_cluster: Cluster, cluster_store: RedisStore, store: RedisStore
) -> None:
    """On Cluster the store says ``lists_records = False`` (its class does, as copying reads it)
    and refuses to insert by key hash: a record kept under its own hash would lie in another
    slot than its user's index, so it could not be indexed. The same class on one server lists."""
    handed = redis.cluster.RedisCluster.from_url(f"redis://{redis_cluster.addresses[0]}")
    try:
        by_client = RedisStore(client=handed, options={"key_prefix": new_prefix()})
        for on_cluster in (cluster_store, by_client):
            assert isinstance(on_cluster, RedisStore)
            assert type(on_cluster).lists_records is False
            assert type(on_cluster) is with_flags(RedisStore, lists_records=False)
            assert type(on_cluster).__qualname__ == "RedisStore"
            assert on_cluster.lists_records is False
            assert on_cluster.indexes_users is True
            record = make_record({"a": 1})
            record.user_id = "ada"
            with pytest.raises(ListingUnsupportedError, match="Cluster"):
                on_cluster.insert_record(hash_key(on_cluster.generate_key()), record)
            with pytest.raises(ListingUnsupportedError, match="Cluster"):
                asyncio.run(on_cluster.ainsert_record(hash_key(on_cluster.generate_key()), record))
        by_client.close()
    finally:
        handed.close()
    assert type(store).lists_records is True
    assert type(store) is RedisStore


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_session_moved_to_cluster_is_revoked_with_its_user(
    cluster_store: RedisStore, store: RedisStore, asynchronous: bool
) -> None:
    """``migrate`` into a Cluster store moves a signed-in session under a fresh key in its
    user's slot (not under its own key hash, which the user's index cannot reach), so the moved
    session is listed and revoked with the user's others."""
    migrating = MigrateStore(store, cluster_store)
    old_key = _signed_in(store, "grace")
    if asynchronous:

        async def move() -> tuple[SessionRecord | None, str | None]:
            loaded = await migrating.aload(old_key)
            assert loaded is not None
            loaded.data["seen"] = True
            return loaded, await migrating.asave(
                old_key, loaded, Changes(frozenset({"seen"}), complete=False, expiry=False)
            )

        loaded, new_key = asyncio.run(move())
    else:
        loaded = migrating.load(old_key)
        assert loaded is not None
        loaded.data["seen"] = True
        new_key = migrating.save(
            old_key, loaded, Changes(frozenset({"seen"}), complete=False, expiry=False)
        )
    assert new_key is not None
    assert store.load(old_key) is None
    moved = cluster_store.load(new_key)
    assert moved is not None
    assert moved.user_id == "grace"
    assert moved.data["seen"] is True
    listed = [info.key_hash for info in cluster_store.sessions_of("grace")]
    assert listed == [hash_key(new_key)], "the moved session is missing from its user's index"
    assert new_key != old_key, "moved under a fresh key, in its user's slot"
    assert migrating.revoke_user("grace") == 1
    assert cluster_store.load(new_key) is None


def test_tiered_refuses_a_cluster_front(cluster_store: RedisStore, store: RedisStore) -> None:
    """A front on Cluster could not index the copies it is filled with (so a revocation would
    leave them): the tiered store refuses it, saying why."""
    with pytest.raises(ConfigurationError, match=r"store_options\.front.*Redis Cluster"):
        TieredStore(cluster_store, store)
    TieredStore(store, cluster_store)  # the back may be on Cluster
