"""The Django settings shared by tests/test_django.py and tests/upstream/django_test_sessions.py,
so the two can run in one process (Django is configured once per process)."""

from __future__ import annotations

import os

import django
import pytest
from django.conf import settings

DJANGO_SECRET = "django-test-secret-" + "d" * 40
URLCONF = "session_core_test_django_urls"


def configure() -> None:
    """Configure Django for the tests, once; later calls do nothing."""
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY=DJANGO_SECRET,
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
        ROOT_URLCONF=URLCONF,
        MIDDLEWARE=["session_core.integrations.django.SessionMiddleware"],
        # django.contrib.sessions and Django's own session tests (vendored here) for the
        # models they import; django_checks for the system check.
        INSTALLED_APPS=[
            "django.contrib.sessions",
            "django_sessions_tests",
            "session_core.integrations.django_checks",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        SESSION_ENGINE="session_core.integrations.django",
        SESSION_CORE={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()


def without_session_core_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the ``SESSION_CORE_*`` settings variables (not ``SESSION_CORE_TEST_*``) of the
    shell running the tests: the Django settings here are the whole configuration."""
    for name in list(os.environ):
        if name.startswith("SESSION_CORE_") and not name.startswith("SESSION_CORE_TEST_"):
            monkeypatch.delenv(name)
