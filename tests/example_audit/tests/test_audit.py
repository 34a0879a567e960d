"""session-core-audit, installed as an extension, logging the sign-ins and sign-outs of
requests."""

import logging
from collections.abc import Iterator

import pytest

from session_core import EventKind, SessionEvent, hash_key
from session_core.registry import refresh
from session_core.wsgi import SessionMiddleware

SECRET = "a" * 40


def app(environ, start_response):
    session = environ["session_core.session"]
    path = environ["PATH_INFO"]
    if path == "/login":
        session["user"] = "ada"
        session.user_id = "ada"  # what a login sets; the session names its user in events
        session.cycle_key()
    elif path == "/logout":
        session.user_id = session.get("user")
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


@pytest.fixture
def middleware() -> Iterator[SessionMiddleware]:
    refresh()  # a fresh scan finds the installed extension
    yield SessionMiddleware(app, secret_key=SECRET)
    refresh()


def test_sign_in_and_sign_out_are_logged_with_the_key_hash_never_the_key(middleware, caplog):
    caplog.set_level(logging.INFO, logger="session_core_audit")
    anonymous = request(middleware, "/")
    signed_in = request(middleware, "/login", anonymous)
    assert request(middleware, "/logout", signed_in) is None
    lines = [r.getMessage() for r in caplog.records if r.name == "session_core_audit"]
    assert lines == [
        f"sign-in: user ada, session {hash_key(signed_in)}, store cookie",
        f"sign-out: user ada, session {hash_key(signed_in)}, store cookie",
    ]
    assert not any(key in line for line in lines for key in (anonymous, signed_in))
    events = [r.session_event for r in caplog.records if r.name == "session_core_audit"]
    assert [e.kind for e in events] == [EventKind.CYCLED, EventKind.FLUSHED]


def test_saves_and_a_key_cycled_for_no_user_are_not_audited(middleware, caplog):
    caplog.set_level(logging.INFO, logger="session_core_audit")
    from session_core_audit import session_core_session_event

    session_core_session_event(SessionEvent(EventKind.CYCLED, "redis", "ab" * 32, None, 0.001))
    request(middleware, "/", request(middleware, "/"))
    assert [r for r in caplog.records if r.name == "session_core_audit"] == []


def test_a_revocation_is_logged(caplog):
    caplog.set_level(logging.INFO, logger="session_core_audit")
    from session_core_audit import session_core_session_event

    session_core_session_event(SessionEvent(EventKind.REVOKED, "db", "cd" * 32, 42, 0.002))
    assert caplog.messages == [f"revoked: user 42, session {'cd' * 32}, store db"]
