"""The core's conformance suite, against standalone Redis, Redis Cluster and Redis Sentinel."""

from __future__ import annotations

import pytest
import redis
from redis_servers import Cluster, SentinelSetup, dump_keys, new_prefix

from session_core import SessionStore
from session_core.store import ListingUnsupportedError
from session_core.testing import StoreConformance
from session_core_redis import RedisStore


class TestStandalone(StoreConformance):
    @pytest.fixture(autouse=True)
    def _server(self, shared_url: str) -> None:
        self.url = shared_url
        self.prefix = new_prefix()  # per test: both stores of a two-app-server test share it

    def make_store(self) -> SessionStore:
        return RedisStore({"url": self.url, "key_prefix": self.prefix})

    def dump_storage(self, store: SessionStore) -> str:
        assert isinstance(store, RedisStore)
        with redis.Redis.from_url(self.url) as client:
            return dump_keys(client, store.prefix)


class TestCluster(StoreConformance):
    lists_records = False  # SCAN covers one node: the store refuses to list on Cluster

    @pytest.fixture(autouse=True)
    def _server(self, redis_cluster: Cluster) -> None:
        self.cluster = redis_cluster
        self.prefix = new_prefix()

    def make_store(self) -> SessionStore:
        return RedisStore({"cluster": self.cluster.addresses, "key_prefix": self.prefix})

    def dump_storage(self, store: SessionStore) -> str:
        assert isinstance(store, RedisStore)
        dumps = []
        for node in self.cluster.nodes:
            with node.client() as client:
                dumps.append(dump_keys(client, store.prefix))
        return "\n".join(dumps)


class TestSentinel(StoreConformance):
    @pytest.fixture(autouse=True)
    def _server(self, redis_sentinel: SentinelSetup) -> None:
        self.setup = redis_sentinel
        self.prefix = new_prefix()

    def make_store(self) -> SessionStore:
        sentinel = {"master": self.setup.master_name, "nodes": [self.setup.sentinel.address]}
        return RedisStore({"sentinel": sentinel, "key_prefix": self.prefix})

    def dump_storage(self, store: SessionStore) -> str:
        assert isinstance(store, RedisStore)
        with redis.Redis(port=self.setup.master_port()) as client:
            return dump_keys(client, store.prefix)


def test_cluster_store_refuses_to_list(redis_cluster: Cluster) -> None:
    """On Cluster the store says it cannot list, instead of listing one node's records."""
    store = RedisStore({"cluster": redis_cluster.addresses, "key_prefix": new_prefix()})
    try:
        with pytest.raises(ListingUnsupportedError, match="Cluster"):
            store.scan_records()
    finally:
        store.close()
