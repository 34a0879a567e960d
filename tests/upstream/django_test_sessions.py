"""Django's own session tests, run against session-core's Django integration.

``django_sessions_tests/`` is Django's ``tests/sessions_tests`` (the version in its
``UPSTREAM.md``), unchanged. Its backend-agnostic ``SessionTestsMixin`` and its
``SessionMiddlewareTests`` run here on the cookie, db (SQLite) and redis stores, bound to this
integration the way Django binds its own backends: a subclass with ``backend = SessionStore``
(ours), and ``SESSION_ENGINE``/``SESSION_CORE`` pointing at ours. The adaptations, each one
named where it is made below, and the upstream tests that cannot apply are listed with their
reasons in docs/integrations.md ("Django's own tests").

Run with ``tox -e django-upstream`` or ``pytest tests/upstream/django_test_sessions.py`` (the db
and redis stores need session-core-db and session-core-redis installed, and Redis at
``SESSION_CORE_TEST_REDIS_URL``).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import unittest
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import django
import pytest
from django_test_settings import configure, without_session_core_environment

configure()

from django.test import SimpleTestCase, override_settings  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402
from django_sessions_tests import tests as upstream  # noqa: E402

from session_core.integrations.django import SessionMiddleware, SessionStore  # noqa: E402

UPSTREAM = Path(__file__).parent / "django_sessions_tests"
DJANGO_SERIES = (5, 2)
"""The Django release series the vendored tests come from."""

# sha256 of each vendored file, as in Django 5.2.19's sdist (see UPSTREAM.md).
VENDORED = {
    "__init__.py": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "models.py": "646d26595060a9eb7b1d099b6e0c60fce91ff4ee6cf03b12fb563dbc9c9ab6a3",
    "no_clear_expired.py": "db89702e1fd39cb64473385ddad613232dfbbd90b40813aff909d008089d95cb",
    "tests.py": "8bd410d82afe5ef8fd81af9bb210dc01f6a082cb3cbff2e7b6505b6dc96ef30c",
}

_SQLITE_DIR = tempfile.mkdtemp(prefix="session-core-django-upstream-")
atexit.register(shutil.rmtree, _SQLITE_DIR, ignore_errors=True)

STORES = {
    "cookie": {"store": "cookie"},
    "db": {"store": "db", "store_options": {"url": f"sqlite:///{_SQLITE_DIR}/sessions.sqlite3"}},
    "redis": {
        "store": "redis",
        "store_options": {
            "url": os.environ.get("SESSION_CORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        },
    },
}


def test_the_vendored_tests_are_djangos_unchanged():
    found = {name: hashlib.sha256((UPSTREAM / name).read_bytes()).hexdigest() for name in VENDORED}
    assert found == VENDORED


def test_the_vendored_tests_match_the_installed_django():
    assert django.VERSION[:2] == DJANGO_SERIES, (
        f"the vendored session tests are Django {DJANGO_SERIES}'s but Django "
        f"{django.get_version()} is installed: vendor that release's tests/sessions_tests "
        f"(see tests/upstream/django_sessions_tests/UPSTREAM.md)"
    )


@pytest.fixture(autouse=True)
def _own_settings_only(monkeypatch):
    without_session_core_environment(monkeypatch)


@pytest.fixture(scope="module", autouse=True)
def _django_test_database():
    # Django's test runner creates the test databases; SessionMiddlewareTests is a TestCase.
    databases = setup_databases(verbosity=0, interactive=False)
    yield
    teardown_databases(databases, verbosity=0)


# ---------------------------------------------------------------------- the engine


class _OurBackend:
    backend = SessionStore


@override_settings(SESSION_CORE=STORES["cookie"])
class CookieStoreSessionTests(_OurBackend, upstream.CookieSessionTests):
    """Django's own cookie-backend class, so its reasoned exemptions (a signed cookie cannot be
    revoked or looked up) apply to our cookie store too."""

    def test_actual_expiry(self):
        # Adaptation: Django's signed_cookies backend marks this an expected failure (#19201:
        # it does not enforce a custom expiry); our cookie store does, so the test must pass.
        upstream.SessionTestsMixin.test_actual_expiry(self)

    async def test_actual_expiry_async(self):
        # The same: Django empties this test for its cookie backend; ours runs it.
        await upstream.SessionTestsMixin.test_actual_expiry_async(self)


@override_settings(SESSION_CORE=STORES["db"])
class DbStoreSessionTests(_OurBackend, upstream.SessionTestsMixin, SimpleTestCase):
    """The backend-agnostic tests on the db store (SimpleTestCase: the store is not Django's
    database, so Django's own database stays untouched)."""


@override_settings(SESSION_CORE=STORES["redis"])
class RedisStoreSessionTests(_OurBackend, upstream.SessionTestsMixin, SimpleTestCase):
    """The backend-agnostic tests on the redis store."""


# ---------------------------------------------------------------------- the middleware


class _SessionModel:
    """Adaptation: upstream ``test_empty_session_saved`` reads the saved session through
    Django's db backend's model (``Session.objects.get(session_key=...).get_decoded()``); this
    answers the same question through our engine."""

    class objects:  # named as the model manager it stands for
        @staticmethod
        def get(session_key: str) -> SimpleNamespace:
            data = SessionStore(session_key).load()
            return SimpleNamespace(get_decoded=lambda: data)


class _OurMiddleware:
    def setUp(self):
        super().setUp()
        # Binding: upstream's names for the middleware and for the engine a view builds by
        # hand (test_session_update_error_redirect) are ours while these tests run.
        for name, ours in (
            ("SessionMiddleware", SessionMiddleware),
            ("DatabaseSession", SessionStore),
            ("Session", _SessionModel),
        ):
            patcher = mock.patch.object(upstream, name, ours)
            patcher.start()
            self.addCleanup(patcher.stop)


@override_settings(SESSION_CORE=STORES["cookie"])
class CookieStoreMiddlewareTests(_OurMiddleware, upstream.SessionMiddlewareTests):
    """Django's middleware tests with our middleware and engine, on the cookie store."""

    @unittest.skip("a signed cookie cannot be deleted from the server (see docs)")
    def test_session_update_error_redirect(self):
        pass


@override_settings(SESSION_CORE=STORES["db"])
class DbStoreMiddlewareTests(_OurMiddleware, upstream.SessionMiddlewareTests):
    """Django's middleware tests with our middleware and engine, on the db store."""


@override_settings(SESSION_CORE=STORES["redis"])
class RedisStoreMiddlewareTests(_OurMiddleware, upstream.SessionMiddlewareTests):
    """Django's middleware tests with our middleware and engine, on the redis store."""
