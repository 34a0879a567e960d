"""The built-in stores pass the conformance suite: cookie (plain and encrypted) and memory."""

from session_core.cookie import CookieStore
from session_core.testing import MemoryStore, StoreConformance

SECRET = "k" * 40


class TestCookieStore(StoreConformance):
    server_side = False

    def make_store(self):
        return CookieStore([SECRET])


class TestEncryptedCookieStore(StoreConformance):
    server_side = False

    def make_store(self):
        return CookieStore([SECRET], encrypt=True)


class TestMemoryStore(StoreConformance):
    def make_store(self):
        return MemoryStore()

    def dump_storage(self, store):
        return store.dump()
