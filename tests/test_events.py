"""Session events: what a plugin observing ``session_core_session_event`` receives from the
middleware's store calls, on WSGI and ASGI; that nothing is built or timed when no plugin
observes; and that an observer that raises never breaks the visitor's request."""

from __future__ import annotations

import asyncio
import logging
import time
import types

import pytest
from event_observers import DownStore, install_observers

import session_core.session as session_module
from session_core import EventKind, SessionConfig, hash_key
from session_core.asgi import SessionMiddleware as ASGIMiddleware
from session_core.events import EventEmitter, SessionEvent
from session_core.registry import refresh
from session_core.session import ResponseAction, Session
from session_core.testing import MemoryStore
from session_core.wsgi import SessionMiddleware as WSGIMiddleware

SECRET = "e" * 40


def view(session, path):
    """The app's logic, shared by the WSGI and ASGI apps: returns the status."""
    if path == "/write":
        session["n"] = (session.get("n") or 0) + 1
    elif path == "/login":
        session.user_id = 7  # what a login sets (the session's user, named in events)
        session.cycle_key()
    elif path == "/logout":
        session.user_id = 7
        session.flush()
    elif path == "/logout-error":
        session.user_id = 7
        session.flush()
        return 500
    elif path == "/clear":
        session.clear()
    elif path == "/read":
        session.get("n")
    return 200


def wsgi_app(environ, start_response):
    status = view(environ["session_core.session"], environ["PATH_INFO"])
    start_response(f"{status} X", [("Content-Type", "text/plain")])
    return [b"ok"]


async def asgi_app(scope, receive, send):
    status = view(scope["session"], scope["path"])
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class Client:
    """Requests to a WSGI or an ASGI middleware, keeping the session cookie as a browser."""

    def __init__(self, kind: str, store: object, **settings: object) -> None:
        config = SessionConfig(secret_key=SECRET, store=store, **settings)
        self.kind = kind
        if kind == "wsgi":
            self.middleware = WSGIMiddleware(wsgi_app, config)
        else:
            self.middleware = ASGIMiddleware(asgi_app, config)
        self.cookie: str | None = None

    def get(self, path: str) -> int:
        headers = self._wsgi(path) if self.kind == "wsgi" else asyncio.run(self._asgi(path))
        for name, value in headers:
            if name.lower() == "set-cookie":
                self.cookie = value.split(";")[0].partition("=")[2] or None
        return self.status

    def _wsgi(self, path):
        sent = {}

        def start_response(status, headers, exc_info=None):
            self.status = int(status[:3])
            sent["headers"] = headers

        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
        if self.cookie:
            environ["HTTP_COOKIE"] = f"sessionid={self.cookie}"
        list(self.middleware(environ, start_response))
        return sent["headers"]

    async def _asgi(self, path):
        sent = []
        headers = [(b"cookie", f"sessionid={self.cookie}".encode())] if self.cookie else []

        async def receive():
            return {"type": "http.request"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "path": path, "headers": headers}
        await self.middleware(scope, receive, send)
        self.status = sent[0]["status"]
        return [(k.decode(), v.decode()) for k, v in sent[0]["headers"]]


interfaces = pytest.mark.parametrize("kind", ["wsgi", "asgi"])


@pytest.fixture
def recorder(tmp_path, monkeypatch):
    """A recording extension observing every middleware built in the test."""
    yield install_observers(tmp_path / "site", monkeypatch)[0]
    refresh()


@interfaces
def test_a_session_lifetime_reports_each_store_call(kind, recorder):
    store = MemoryStore()
    client = Client(kind, store)
    client.get("/write")
    created = client.cookie
    client.get("/write")
    client.get("/read")  # reads save nothing, and report nothing
    client.get("/login")
    signed_in = client.cookie
    client.get("/logout")
    assert client.cookie is None
    seen = recorder.seen
    assert [(e.kind, e.store, e.key_hash, e.user_id) for e in seen] == [
        (EventKind.CREATED, "memory", hash_key(created), None),
        (EventKind.SAVED, "memory", hash_key(created), None),
        (EventKind.CYCLED, "memory", hash_key(signed_in), 7),
        (EventKind.FLUSHED, "memory", hash_key(signed_in), 7),
    ]
    assert all(isinstance(e.duration, float) and 0 <= e.duration < 60 for e in seen)
    text = repr(seen)
    assert created not in text  # the hash, never the key
    assert signed_in not in text


@interfaces
def test_an_emptied_session_reports_its_deletion(kind, recorder):
    client = Client(kind, MemoryStore())
    client.get("/write")
    key = client.cookie
    client.get("/clear")
    assert recorder.seen[-1].kind is EventKind.FLUSHED
    assert recorder.seen[-1].key_hash == hash_key(key)


@interfaces
def test_a_sign_out_answered_with_a_5xx_still_reports_its_deletion(kind, recorder):
    store = MemoryStore()
    client = Client(kind, store)
    client.get("/write")
    key = client.cookie
    assert client.get("/logout-error") == 500
    assert store.load(key) is None
    last = recorder.seen[-1]
    assert (last.kind, last.key_hash, last.user_id) == (EventKind.FLUSHED, hash_key(key), 7)


@interfaces
def test_a_store_error_is_reported_then_raised(kind, recorder):
    store = DownStore()
    client = Client(kind, store)
    client.get("/write")
    key = client.cookie
    store.down = True
    assert client.get("/write") == 503  # the error went on to the middleware's answer
    last = recorder.seen[-1]
    assert (last.kind, last.store, last.key_hash) == (
        EventKind.STORE_ERROR,
        "memory",
        hash_key(key),
    )


@interfaces
def test_an_observer_that_raises_does_not_break_the_request_and_is_logged_once(
    kind, tmp_path, monkeypatch, caplog
):
    failing, recording = install_observers(tmp_path / "site", monkeypatch, ("failing", "rec"))
    try:
        failing.fail_with.append(ValueError)
        client = Client(kind, MemoryStore())
        assert client.get("/write") == 200
        assert client.get("/write") == 200
        failing.fail_with[0] = KeyError
        assert client.get("/write") == 200
        assert client.get("/write") == 200
    finally:
        refresh()
    assert [e.kind for e in recording.seen] == [EventKind.CREATED] + [EventKind.SAVED] * 3
    logged = [r for r in caplog.records if "session event observer" in r.getMessage()]
    assert [(r.exc_info[0], r.levelno) for r in logged] == [
        (ValueError, logging.ERROR),
        (KeyError, logging.ERROR),
    ]
    assert "'failing'" in logged[0].getMessage()
    assert "SESSION_CORE_DISABLE_PLUGINS=failing" in logged[0].getMessage()


@interfaces
def test_without_an_observer_nothing_is_built_or_timed(kind, monkeypatch):
    monkeypatch.setenv("SESSION_CORE_DISABLE_PLUGINS", "*")
    refresh()
    try:
        client = Client(kind, MemoryStore())
        assert client.middleware.cookie.events is None

        def no_timing():
            raise AssertionError("a store call was timed with no observer")

        clock = types.SimpleNamespace(time=time.time, perf_counter=no_timing)
        monkeypatch.setattr(session_module, "time", clock)
        monkeypatch.setattr(SessionEvent, "__init__", no_timing)
        for path in ("/write", "/write", "/login", "/logout", "/write", "/logout-error"):
            client.get(path)
        assert client.cookie is None
    finally:
        refresh()


def test_a_session_saved_by_hand_reports_to_the_emitter_it_is_given():
    seen: list[SessionEvent] = []
    store = MemoryStore()
    session = Session(store)
    session.observe(EventEmitter(store.name, [("mine", seen.append)]))
    session["a"] = 1
    key = session.save()
    session.cycle_key()
    new_key = session.save()
    session.flush()
    session.save()
    assert [(e.kind, e.key_hash) for e in seen] == [
        (EventKind.CREATED, hash_key(key)),
        (EventKind.CYCLED, hash_key(new_key)),
        (EventKind.FLUSHED, hash_key(new_key)),
    ]


def test_async_saves_report_as_sync_ones():
    seen: list[SessionEvent] = []
    store = MemoryStore()

    async def lifetime():
        session = Session(store)
        session.observe(EventEmitter(store.name, [("mine", seen.append)]))
        session["a"] = 1
        await session.asave()
        session["a"] = 2
        await session.asave()
        session.cycle_key()
        await session.asave()
        session.flush()
        await session.asave()

    asyncio.run(lifetime())
    assert [e.kind for e in seen] == ["created", "saved", "cycled", "flushed"]


def test_revoked_sends_one_event_per_session_with_the_call_duration():
    seen: list[SessionEvent] = []
    emitter = EventEmitter("db", [("mine", seen.append)])
    started = time.perf_counter()
    emitter.revoked(42, ["a" * 64, "b" * 64], started)
    assert [(e.kind, e.store, e.key_hash, e.user_id) for e in seen] == [
        (EventKind.REVOKED, "db", "a" * 64, 42),
        (EventKind.REVOKED, "db", "b" * 64, 42),
    ]
    assert seen[0].duration == seen[1].duration >= 0


# ---------------------------------------------------------------------- the response decision


def _session(key=None):
    store = MemoryStore()
    if key == "live":
        seed = Session(store)
        seed["n"] = 1
        key = seed.save()
    return Session(store, key)


@pytest.mark.parametrize(
    ("act", "key", "status", "every", "expected"),
    [
        ("nothing", "live", 200, False, ResponseAction.NOTHING),
        ("nothing", "live", 200, True, ResponseAction.SAVE),
        ("nothing", None, 200, True, ResponseAction.NOTHING),
        ("read", "live", 200, False, ResponseAction.VARY),
        ("write", "live", 200, False, ResponseAction.SAVE),
        ("write", "live", 500, False, ResponseAction.VARY),
        ("flush", "live", 500, False, ResponseAction.DROP_FLUSHED),
        ("flush", "live", 200, False, ResponseAction.SAVE),
        ("read", "a" * 43, 200, False, ResponseAction.DELETE_COOKIE),
    ],
)
def test_response_action(act, key, status, every, expected):
    session = _session(key)
    if act == "read":
        session.get("n")
    elif act == "write":
        session["n"] = 2
    elif act == "flush":
        session.flush()
    assert session.response_action(every, status) is expected


# ---------------------------------------------------------------------- the integrations


def test_the_flask_integration_reports_as_the_middleware(recorder):
    import flask

    from session_core.integrations.flask import init_app

    app = flask.Flask("events")
    store = MemoryStore()
    init_app(app, secret_key=SECRET, store=store)

    @app.route("/<action>")
    def act(action):
        view(flask.session, "/" + action)
        return "ok"

    client = app.test_client()
    client.get("/write")
    created = client.get_cookie("session").value
    client.get("/write")
    client.get("/logout")
    assert [(e.kind, e.key_hash) for e in recorder.seen] == [
        (EventKind.CREATED, hash_key(created)),
        (EventKind.SAVED, hash_key(created)),
        (EventKind.FLUSHED, hash_key(created)),
    ]


def test_the_starlette_integration_reports_as_the_middleware(recorder):
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from session_core.integrations.starlette import SessionMiddleware

    async def act(request: Request) -> PlainTextResponse:
        view(request.session, request.url.path)
        return PlainTextResponse("ok")

    store = MemoryStore()
    app = Starlette(
        routes=[Route(p, act) for p in ("/write", "/login")],
        middleware=[Middleware(SessionMiddleware, secret_key=SECRET, store=store)],
    )
    with TestClient(app) as client:
        client.get("/write")
        created = client.cookies["session"]
        client.get("/login")
        cycled = client.cookies["session"]
    assert [(e.kind, e.key_hash, e.user_id) for e in recorder.seen] == [
        (EventKind.CREATED, hash_key(created), None),
        (EventKind.CYCLED, hash_key(cycled), 7),
    ]
