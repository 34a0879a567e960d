"""session_core.testing.OutageStore: a MemoryStore whose server can go down, and the WSGI
middleware's 503 as the frameworks' test clients see it."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from werkzeug.test import Client

from session_core import StoreUnreachableError
from session_core.store import Changes
from session_core.testing import OutageStore, StoreConformance, make_record
from session_core.wsgi import SessionMiddleware

SECRET = "outage-store-test-secret-of-at-least-32-bytes"


class TestOutageStoreWhileUp(StoreConformance):
    """With nothing down it keeps the whole contract, as the MemoryStore it extends."""

    shared_backend = False

    def make_store(self) -> OutageStore:
        return OutageStore()

    def dump_storage(self, store):
        return store.dump()


def _saved(store: OutageStore) -> str:
    record = make_record({"n": 1})
    key = store.save(None, record, Changes.everything(record))
    assert key is not None
    return key


CALLS = {
    "load": lambda store, key: store.load(key),
    "save": lambda store, key: store.save(key, make_record({"n": 2}), Changes(frozenset({"n"}))),
    "delete": lambda store, key: store.delete(key),
    "clear_expired": lambda store, key: store.clear_expired(),
    "sessions_of": lambda store, key: store.sessions_of(7),
    "revoke_user": lambda store, key: store.revoke_user(7),
}


def test_every_operation_can_fail() -> None:
    assert set(CALLS) == OutageStore.OPERATIONS


@pytest.mark.parametrize("operation", sorted(CALLS))
def test_an_operation_that_is_down_raises_and_the_others_work(operation: str) -> None:
    store = OutageStore()
    key = _saved(store)
    store.fail(operation)
    assert store.down == {operation}
    with pytest.raises(StoreUnreachableError) as raised:
        CALLS[operation](store, key)
    assert (raised.value.store, raised.value.operation) == ("memory", operation)
    assert raised.value.target == "127.0.0.1:1"
    assert "connection refused" in str(raised.value)
    for other, call in CALLS.items():
        if other not in (operation, "delete", "revoke_user"):  # those would end the session
            call(store, key)
    store.recover(operation)
    assert store.down == set()
    assert store.load(key) is not None
    CALLS[operation](store, key)


def test_fail_with_no_name_takes_everything_down_and_recover_brings_it_back() -> None:
    store = OutageStore(reason="the server went away")
    key = _saved(store)
    store.fail()
    assert store.down == OutageStore.OPERATIONS
    for call in CALLS.values():
        with pytest.raises(StoreUnreachableError, match="the server went away"):
            call(store, key)
    store.recover()
    assert store.load(key).data == {"n": 1}


def test_the_async_twins_fail_too() -> None:
    store = OutageStore()
    key = _saved(store)
    store.fail("load", "save")

    async def scenario() -> None:
        with pytest.raises(StoreUnreachableError):
            await store.aload(key)
        record = make_record({"n": 3})
        with pytest.raises(StoreUnreachableError):
            await store.asave(None, record, Changes.everything(record))
        await store.adelete(key)  # still up

    asyncio.run(scenario())
    store.recover()
    assert store.load(key) is None  # the delete went through


def test_an_unknown_operation_is_refused() -> None:
    store = OutageStore()
    with pytest.raises(ValueError, match="cannot fail 'lod': the operations are clear_expired"):
        store.fail("load", "lod")
    assert store.down == set()


# ------------------------------------------------------------------ the WSGI 503 in test clients


def _counter(environ, start_response):
    session = environ["session_core.session"]
    session["n"] = session.get("n", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session["n"]).encode()]


@pytest.mark.parametrize("operation", ["load", "save"])
def test_werkzeug_s_test_client_gets_the_503(operation: str) -> None:
    # The middleware used to hand exc_info to the server's first start_response, which test
    # clients re-raise: a test saw the exception instead of the 503 a server sends.
    store = OutageStore()
    client = Client(SessionMiddleware(_counter, secret_key=SECRET, store=store))
    assert client.get("/").text == "1"
    store.fail(operation)
    response = client.get("/")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
    store.recover()
    assert client.get("/").text == "2"


def test_httpx_s_wsgi_transport_gets_the_503() -> None:
    store = OutageStore()
    app = SessionMiddleware(_counter, secret_key=SECRET, store=store)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://test") as client:
        assert client.get("/").text == "1"
        store.fail()
        assert client.get("/").status_code == 503


def test_a_failure_after_the_app_started_its_response_replaces_it_with_exc_info() -> None:
    store = OutageStore()

    def late(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        environ["session_core.session"].get("n")  # the load fails after start_response
        return [b"never"]

    app = SessionMiddleware(late, secret_key=SECRET, store=store)
    cookie = Client(SessionMiddleware(_counter, secret_key=SECRET, store=store)).get("/")
    store.fail("load")
    calls = []

    def start_response(status, headers, exc_info=None):
        calls.append((status, exc_info))
        return lambda data: None

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    environ["HTTP_COOKIE"] = cookie.headers["Set-Cookie"].partition(";")[0]
    body = b"".join(app(environ, start_response))
    assert b"session store" in body
    assert [status for status, _ in calls] == ["200 OK", "503 Service Unavailable"]
    assert calls[0][1] is None
    assert calls[1][1] is not None
    assert calls[1][1][0] is StoreUnreachableError
