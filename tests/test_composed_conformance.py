"""The composed stores pass the conformance suite over in-memory stores (the composed tox env
runs them over Redis, SQLite and PostgreSQL: tests/composed/)."""

from session_core.cookie import CookieStore
from session_core.migrate import MigrateStore
from session_core.store import SessionStore
from session_core.testing import MemoryStore, StoreConformance
from session_core.tiered import TieredStore

SECRET = "k" * 40


def _dump(*stores: SessionStore) -> str:
    return "\n".join(store.dump() for store in stores if isinstance(store, MemoryStore))


class TestTieredOverMemory(StoreConformance):
    shared_backend = False

    def make_store(self) -> SessionStore:
        return TieredStore(MemoryStore(), MemoryStore())

    def dump_storage(self, store: SessionStore) -> str:
        assert isinstance(store, TieredStore)
        return _dump(store.front, store.back)


class TestMigrateBetweenMemoryStores(StoreConformance):
    shared_backend = False

    def make_store(self) -> SessionStore:
        return MigrateStore(MemoryStore(), MemoryStore())

    def dump_storage(self, store: SessionStore) -> str:
        assert isinstance(store, MigrateStore)
        return _dump(store.old, store.new)


class TestMigrateFromCookie(StoreConformance):
    shared_backend = False

    def make_store(self) -> SessionStore:
        return MigrateStore(CookieStore([SECRET]), MemoryStore())

    def dump_storage(self, store: SessionStore) -> str:
        assert isinstance(store, MigrateStore)
        return _dump(store.new)
