"""The cookie store passes the conformance suite, plain and encrypted."""

from session_core.cookie import CookieStore
from session_core.testing import StoreConformance

SECRET = "k" * 40


class TestCookieStore(StoreConformance):
    server_side = False

    def make_store(self):
        return CookieStore([SECRET])


class TestEncryptedCookieStore(StoreConformance):
    server_side = False

    def make_store(self):
        return CookieStore([SECRET], encrypt=True)
