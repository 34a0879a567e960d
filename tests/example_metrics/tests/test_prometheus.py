"""session-core-prometheus, installed as an extension, counting the store calls of requests."""

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from session_core.registry import refresh
from session_core.wsgi import SessionMiddleware

SECRET = "m" * 40


def app(environ, start_response):
    session = environ["session_core.session"]
    if environ["PATH_INFO"] == "/login":
        session["user"] = "ada"
        session.cycle_key()
    elif environ["PATH_INFO"] == "/logout":
        session.flush()
    else:
        session["visits"] = session.get("visits", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def request(middleware, path, cookie=None):
    """The session cookie after a request to ``path`` (``None`` once it is removed)."""
    sent = {}

    def start_response(status, headers, exc_info=None):
        sent["headers"] = headers

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
    if cookie:
        environ["HTTP_COOKIE"] = f"sessionid={cookie}"
    list(middleware(environ, start_response))
    for name, value in sent["headers"]:
        if name == "Set-Cookie":
            return value.split(";")[0].partition("=")[2] or None
    return cookie


def sample(name, kind):
    return REGISTRY.get_sample_value(name, {"kind": kind, "store": "cookie"}) or 0.0


@pytest.fixture
def middleware() -> Iterator[SessionMiddleware]:
    refresh()  # a fresh scan finds the installed extension
    yield SessionMiddleware(app, secret_key=SECRET)
    refresh()


def test_each_kind_of_store_call_is_counted_and_timed(middleware):
    kinds = ("created", "saved", "cycled", "flushed")
    counted = {kind: sample("session_core_events_total", kind) for kind in kinds}
    timed = {kind: sample("session_core_store_call_seconds_count", kind) for kind in kinds}
    cookie = request(middleware, "/")
    cookie = request(middleware, "/", cookie)
    cookie = request(middleware, "/login", cookie)
    assert request(middleware, "/logout", cookie) is None
    for kind in kinds:
        assert sample("session_core_events_total", kind) == counted[kind] + 1, kind
        assert sample("session_core_store_call_seconds_count", kind) == timed[kind] + 1, kind


def test_a_request_that_saves_nothing_counts_nothing(middleware):
    cookie = request(middleware, "/")
    before = sample("session_core_events_total", "saved")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_COOKIE": f"sessionid={cookie}"}

    def untouched(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    middleware.app = untouched
    list(middleware(environ, lambda status, headers, exc_info=None: None))
    assert sample("session_core_events_total", "saved") == before
