"""A pytest plugin that runs Flask's own session tests against session-core.

Loaded by ``tests/upstream/flask_upstream.py`` (``pytest -p flask_plugin``) into a run of the
test files of Flask's source distribution, unchanged. It adapts only what installs our
interface:

- every test that uses Flask's ``app`` fixture gets :func:`session_core.integrations.flask.init_app`
  called on that app, with the store named by ``SESSION_CORE_TEST_FLASK_STORE`` (``cookie``,
  ``db`` on SQLite, or ``redis`` at ``SESSION_CORE_TEST_REDIS_URL``);
- ``SESSION_CORE_SECRET_KEY`` is set for each test: Flask's fixture uses ``SECRET_KEY = "test
  key"``, and session-core refuses a key under 32 bytes;
- the tests that cannot apply (see ``NOT_APPLICABLE`` and docs/integrations.md) are marked as
  expected failures, strictly: one that starts passing fails the run, so the list stays true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from session_core.integrations.flask import init_app

SECRET = "flask-upstream-tests-secret-" + "k" * 40

NOT_APPLICABLE = {
    "test_session_using_samesite_attribute": (
        "SESSION_COOKIE_SAMESITE = None sends no SameSite in Flask; session-core always sends "
        "one (Lax by default), and its settings are kept from the first request on"
    ),
    "test_missing_session": (
        "Flask has no session without SECRET_KEY; here session-core's own key is set, so "
        "the session works"
    ),
    "test_session_secret_key_fallbacks": (
        "its keys are 5 bytes (session-core needs 32), so session-core's own key signs and "
        "changing Flask's changes nothing; tests/test_flask.py rotates SECRET_KEY_FALLBACKS the "
        "Flask way with long keys"
    ),
    "test_session_special_types": (
        "bytes, UUID, datetime and Markup values need Flask's tagged serializer; session-core "
        "stores JSON and refuses them at assignment"
    ),
    "test_session_refresh_vary": (
        "Flask re-sends a permanent session's cookie even on a request that never touches "
        "the session; session-core refreshes it on the requests that use it (an untouched "
        "request costs no store call)"
    ),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        reason = NOT_APPLICABLE.get(item.name)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


def _store_settings(tmp: Path) -> dict[str, Any]:
    store = os.environ.get("SESSION_CORE_TEST_FLASK_STORE", "cookie")
    if store == "db":
        return {"store": "db", "store_options": {"url": f"sqlite:///{tmp / 'sessions.db'}"}}
    if store == "redis":
        url = os.environ.get("SESSION_CORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        return {"store": "redis", "store_options": {"url": url}}
    return {"store": store}


@pytest.fixture(scope="session")
def _session_core_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _store_settings(tmp_path_factory.mktemp("session_core"))


@pytest.fixture(autouse=True)
def _session_core(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    _session_core_store: dict[str, Any],
) -> Iterator[None]:
    monkeypatch.setenv("SESSION_CORE_SECRET_KEY", SECRET)
    if "app" not in request.fixturenames:
        yield
        return
    interface = init_app(request.getfixturevalue("app"), **_session_core_store)
    assert interface.store.name == _session_core_store["store"]  # the store this run is for
    yield
    interface.store.close()
