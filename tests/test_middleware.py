"""The WSGI and ASGI middleware, driven through HTTP clients: what each kind of request saves and
which headers it sends. Every behaviour is checked on both interfaces."""

import asyncio
import calendar
import json
import random
import string
import threading
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest

from session_core import (
    CookieTooLargeError,
    SessionConfig,
    SessionNotLoadedError,
    StoreUnreachableError,
)
from session_core.asgi import SessionMiddleware as ASGIMiddleware
from session_core.config import MAX_COOKIE_AGE
from session_core.cookie import CookieStore
from session_core.testing import MemoryStore, OutageStore, make_record
from session_core.wsgi import SessionMiddleware as WSGIMiddleware

SECRET = "s" * 40
OLD_SECRET = "o" * 40


def blob(size):
    """``size`` characters that do not compress."""
    return "".join(random.Random(size).choices(string.ascii_letters, k=size))


def handle(session, path, query):
    """The app's logic, shared by the WSGI and ASGI apps: returns (status, body)."""
    if path == "/untouched":
        return 200, "untouched"
    if path == "/read":
        return 200, json.dumps(session.get("n"))
    if path == "/write":
        session["n"] = (session.get("n") or 0) + 1
        return 200, json.dumps(session["n"])
    if path == "/set":
        session["n"] = int(query["n"][0])
        return 200, "set"
    if path == "/browser":
        session.set_expiry(0)
        session["n"] = 1
        return 200, "browser"
    if path == "/far-future":
        session.set_expiry(datetime(9999, 12, 31, tzinfo=UTC))
        session["n"] = 1
        return 200, "far"
    if path == "/flush":
        session.flush()
        return 200, "flushed"
    if path == "/clear":
        session.clear()
        return 200, "cleared"
    if path == "/big":
        session["blob"] = blob(int(query["size"][0]))
        return 200, "big"
    if path == "/read-or-carry-on":
        try:
            return 200, json.dumps(session.get("n"))
        except StoreUnreachableError:
            return 200, "store down"
    if path == "/error":
        session["n"] = 999
        return 500, "error"
    if path == "/logout-error":
        session.flush()
        return 500, "error"
    if path == "/cycle":
        session.cycle_key()
        return 200, "cycled"
    return 404, "not found"


def wsgi_app(environ, start_response):
    session = environ["session_core.session"]
    status, body = handle(session, environ["PATH_INFO"], parse_qs(environ.get("QUERY_STRING", "")))
    start_response(f"{status} X", [("Content-Type", "text/plain")])
    return [body.encode()]


async def asgi_app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        scope["session"]["ws"] = True
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(scope["session"].get("n"))})
        await send({"type": "websocket.close"})
        return
    session = scope["session"]
    query = parse_qs(scope.get("query_string", b"").decode())
    status, body = handle(session, scope["path"], query)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


class Client:
    """One interface (WSGI or ASGI) wrapped around an app, with a cookie-keeping client."""

    def __init__(self, kind, **settings):
        settings.setdefault("secret_key", SECRET)
        if kind == "wsgi":
            self.middleware = WSGIMiddleware(wsgi_app, SessionConfig(**settings))
            self.http = httpx.Client(
                transport=httpx.WSGITransport(app=self.middleware), base_url="http://testserver"
            )
        else:
            self.middleware = ASGIMiddleware(asgi_app, SessionConfig(**settings))
            self.http = _SyncASGIClient(self.middleware)
        self.store = self.middleware.store

    def get(self, path, **kwargs):
        return self.http.get(path, **kwargs)

    @property
    def cookies(self):
        return self.http.cookies

    def close(self):
        self.http.close()


class _SyncASGIClient:
    """httpx's async ASGI transport, driven synchronously so both interfaces share the tests."""

    def __init__(self, app):
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )

    @property
    def cookies(self):
        return self.client.cookies

    def get(self, path, **kwargs):
        return self.loop.run_until_complete(self.client.get(path, **kwargs))

    def close(self):
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture(params=["wsgi", "asgi"])
def kind(request):
    return request.param


@pytest.fixture(autouse=True)
def _close_clients(monkeypatch):
    made = []
    original = Client.__init__

    def tracking_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Client, "__init__", tracking_init)
    yield
    for client in made:
        client.close()


def http_date(text):
    """The Unix time of an HTTP date (``Expires``), read as UTC."""
    return calendar.timegm(time.strptime(text, "%a, %d %b %Y %H:%M:%S GMT"))


def set_cookies(response):
    return response.headers.get_list("set-cookie")


def attributes(header):
    parts = [p.strip() for p in header.split(";")]
    name, _, value = parts[0].partition("=")
    attrs = {}
    for part in parts[1:]:
        key, _, val = part.partition("=")
        attrs[key.lower()] = val
    return name, value, attrs


# -------------------------------------------------------------------- what each request sends


def test_untouched_session_costs_nothing(kind):
    store = MemoryStore()
    client = Client(kind, store=store)
    response = client.get("/untouched")
    assert set_cookies(response) == []
    assert "vary" not in response.headers
    assert store.calls == {}


def test_untouched_session_with_a_cookie_sends_nothing(kind):
    client = Client(kind)
    client.get("/write")
    response = client.get("/untouched")
    assert set_cookies(response) == []
    assert "vary" not in response.headers


def test_read_adds_vary_and_no_cookie(kind):
    client = Client(kind)
    client.get("/write")
    response = client.get("/read")
    assert response.json() == 1
    assert response.headers["vary"] == "Cookie"
    assert set_cookies(response) == []


def test_write_sets_cookie_with_every_configured_attribute(kind):
    client = Client(
        kind,
        cookie_name="sid",
        cookie_domain="testserver.local",
        cookie_path="/",
        cookie_max_age=3600,
        cookie_secure=True,
        cookie_http_only=True,
        cookie_same_site="Strict",
    )
    before = int(time.time())
    response = client.get("/write")
    after = time.time()
    [header] = set_cookies(response)
    name, value, attrs = attributes(header)
    assert name == "sid"
    assert value
    assert attrs["path"] == "/"
    assert attrs["domain"] == "testserver.local"
    assert attrs["max-age"] == "3600"
    assert before + 3600 <= http_date(attrs["expires"]) <= after + 3600
    assert "secure" in attrs
    assert "httponly" in attrs
    assert attrs["samesite"] == "Strict"
    assert response.headers["vary"] == "Cookie"


@pytest.mark.parametrize("store", ["cookie", "memory"])
def test_an_expiry_far_in_the_future_caps_the_cookie_at_400_days(kind, store):
    # Browsers keep a cookie at most 400 days; a date further away (here the last one a
    # datetime can hold) is saved, and its cookie's Max-Age is capped, as browsers would.
    client = Client(kind, store=MemoryStore() if store == "memory" else "cookie")
    response = client.get("/far-future")
    assert response.status_code == 200
    [header] = set_cookies(response)
    attrs = attributes(header)[2]
    assert attrs["max-age"] == str(MAX_COOKIE_AGE)
    assert http_date(attrs["expires"]) <= time.time() + MAX_COOKIE_AGE + 1
    assert client.get("/read").json() == 1


def test_partitioned_cookie_and_its_deletion_carry_the_attribute(kind):
    client = Client(kind, cookie_secure=True, cookie_partitioned=True)
    [header] = set_cookies(client.get("/write"))
    _, value, attrs = attributes(header)
    assert "partitioned" in attrs
    assert "secure" in attrs
    # A partitioned cookie is only removed by a Set-Cookie that is partitioned too.
    [removal] = set_cookies(client.get("/flush", headers={"Cookie": f"sessionid={value}"}))
    assert "partitioned" in attributes(removal)[2]
    assert attributes(removal)[2]["max-age"] == "0"


def test_unpartitioned_cookie_by_default(kind):
    [header] = set_cookies(Client(kind).get("/write"))
    assert "partitioned" not in attributes(header)[2]


def test_counter_survives_requests(kind):
    client = Client(kind)
    assert [client.get("/write").json() for _ in range(3)] == [1, 2, 3]


def test_browser_session_cookie_has_no_max_age_or_expires(kind):
    client = Client(kind)
    [header] = set_cookies(client.get("/browser"))
    _, _, attrs = attributes(header)
    assert "max-age" not in attrs
    assert "expires" not in attrs
    [again] = set_cookies(client.get("/write"))
    assert "max-age" not in attributes(again)[2], "remembered on the next request"


def test_flush_deletes_record_and_cookie_with_same_attributes(kind):
    store = MemoryStore()
    client = Client(
        kind,
        store=store,
        cookie_domain="example.org",
        cookie_path="/",
        cookie_secure=True,
        cookie_same_site="None",
    )
    value = attributes(set_cookies(client.get("/write"))[0])[1]
    assert len(store) == 1
    # Sent by hand: the client would not send a Secure cookie for another domain over http.
    response = client.get("/flush", headers={"Cookie": f"sessionid={value}"})
    [header] = set_cookies(response)
    name, value, attrs = attributes(header)
    assert (name, value) == ("sessionid", "")
    assert attrs["max-age"] == "0"
    assert attrs["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert attrs["domain"] == "example.org"
    assert attrs["path"] == "/"
    assert "secure" in attrs
    assert attrs["samesite"] == "None"
    assert len(store) == 0


def test_emptied_session_deletes_record_and_cookie(kind):
    store = MemoryStore()
    client = Client(kind, store=store)
    client.get("/write")
    [header] = set_cookies(client.get("/clear"))
    assert attributes(header)[2]["max-age"] == "0"
    assert len(store) == 0


@pytest.mark.parametrize("bad", ["garbage", "a.b.c", "W10.AAAA.BBBB"])
def test_bad_cookie_is_removed_when_read(kind, bad):
    client = Client(kind)
    response = client.get("/read", headers={"Cookie": f"sessionid={bad}"})
    assert response.json() is None
    [header] = set_cookies(response)
    assert attributes(header)[2]["max-age"] == "0"


def test_a_failed_load_the_app_carries_on_from_keeps_the_cookie():
    # WSGI loads on first use, so the app sees the failure and may carry on. (The ASGI
    # middleware loads ahead, and a failure there fails the request.)
    store = OutageStore()
    client = Client("wsgi", store=store)
    client.get("/set", params={"n": 7})
    store.fail("load")
    response = client.get("/read-or-carry-on")
    assert response.text == "store down"
    assert set_cookies(response) == []  # the visitor's session is not thrown away
    store.recover()
    assert client.get("/read").json() == 7


def test_bad_cookie_is_replaced_when_written(kind):
    client = Client(kind)
    response = client.get("/write", headers={"Cookie": "sessionid=tampered.value.x"})
    assert response.json() == 1
    [header] = set_cookies(response)
    value = attributes(header)[1]
    assert value
    assert value != "tampered.value.x"


def test_nothing_is_saved_on_5xx(kind):
    store = MemoryStore()
    client = Client(kind, store=store)
    response = client.get("/error")
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert len(store) == 0


def test_sign_out_takes_effect_even_on_5xx(kind):
    store = MemoryStore()
    client = Client(kind, store=store)
    client.get("/write")
    response = client.get("/logout-error")
    assert response.status_code == 500
    assert len(store) == 0
    assert attributes(set_cookies(response)[0])[2]["max-age"] == "0"


def test_save_every_request_refreshes_a_read_only_request(kind, monkeypatch):
    client = Client(kind, save_every_request=True)
    [first] = set_cookies(client.get("/write"))
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 2)  # later, without waiting
    [refreshed] = set_cookies(client.get("/read"))
    assert attributes(refreshed)[1] != attributes(first)[1]  # signed anew, at the new time


def test_save_every_request_does_not_create_sessions_for_visitors_without_one(kind):
    store = MemoryStore()
    client = Client(kind, store=store, save_every_request=True)
    assert set_cookies(client.get("/read")) == []
    assert len(store) == 0


def test_oversized_cookie_is_a_clear_error(kind):
    client = Client(kind)
    with pytest.raises(CookieTooLargeError) as info:
        client.get("/big", params={"size": 5000})
    assert info.value.size > 4096
    assert info.value.limit == 4096
    assert "server-side store" in str(info.value)


def test_the_limit_counts_the_whole_set_cookie_line(kind):
    # Find a payload whose cookie value alone fits in 4096 bytes but whose whole line does not.
    store = CookieStore([SECRET])

    def value_length(size):
        return len(store.save(None, make_record({"n": None, "blob": blob(size)}), None))

    size = 2000
    while value_length(size) < 4096 - 40:
        size += 5
    assert value_length(size) <= 4096
    client = Client(kind, cookie_domain="a-rather-long-domain-name.example.com", store_options={})
    with pytest.raises(CookieTooLargeError):
        client.get("/big", params={"size": size})


def test_cycle_key_replaces_cookie_and_kills_old_record(kind):
    store = MemoryStore()
    client = Client(kind, store=store)
    client.get("/write")
    old = client.cookies["sessionid"]
    client.get("/cycle")
    new = client.cookies["sessionid"]
    assert new != old
    assert store.load(old) is None
    assert client.get("/read").json() == 1


def test_server_store_session_key_is_not_adopted_from_attacker(kind):
    store = MemoryStore()
    client = Client(kind, store=store)
    planted = store.generate_key()
    response = client.get("/write", headers={"Cookie": f"sessionid={planted}"})
    value = attributes(set_cookies(response)[0])[1]
    assert value != planted
    assert store.load(planted) is None


def test_key_rotation_through_the_middleware(kind):
    old_app = Client(kind, secret_key=OLD_SECRET)
    old_app.get("/set", params={"n": 41})
    old_cookie = old_app.cookies["sessionid"]
    rotated = Client(kind, secret_key=SECRET, fallback_secret_keys=[OLD_SECRET])
    response = rotated.get("/write", headers={"Cookie": f"sessionid={old_cookie}"})
    assert response.json() == 42
    new_cookie = attributes(set_cookies(response)[0])[1]
    assert CookieStore([SECRET]).load(new_cookie).data == {"n": 42}
    assert CookieStore([OLD_SECRET]).load(new_cookie) is None
    # Once the old key is dropped from the list, its cookies are worthless.
    dropped = Client(kind, secret_key=SECRET)
    assert dropped.get("/read", headers={"Cookie": f"sessionid={old_cookie}"}).json() is None


def test_foreign_app_cookie_is_refused(kind):
    other = Client(kind, secret_key="x" * 40)
    other.get("/set", params={"n": 7})
    client = Client(kind)
    assert (
        client.get("/read", headers={"Cookie": f"sessionid={other.cookies['sessionid']}"}).json()
        is None
    )


def test_cookie_among_others_is_found(kind):
    client = Client(kind)
    client.get("/set", params={"n": 5})
    value = client.cookies["sessionid"]
    header = f'theme=dark; sessionidx=nope; sessionid="{value}"; other=1'
    fresh = Client(kind)
    assert fresh.get("/read", headers={"Cookie": header}).json() == 5


# -------------------------------------------------------------------- ASGI specifics


class ThreadCheckingStore(MemoryStore):
    """A server-side store whose sync methods refuse to run on the event loop's thread."""

    loop_thread = None

    def _check(self):
        assert threading.get_ident() != self.loop_thread, "store I/O on the event loop"

    def load(self, key):
        self._check()
        return super().load(key)

    def save(self, key, record, changes):
        self._check()
        return super().save(key, record, changes)

    def delete(self, key):
        self._check()
        super().delete(key)


def test_asgi_never_runs_store_io_on_the_event_loop():
    store = ThreadCheckingStore()
    app = ASGIMiddleware(asgi_app, secret_key=SECRET, store=store)

    async def scenario():
        store.loop_thread = threading.get_ident()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            assert (await client.get("/write")).json() == 1
            assert (await client.get("/write")).json() == 2
            assert (await client.get("/read")).json() == 2
            await client.get("/flush")
            assert (await client.get("/read")).json() is None

    asyncio.run(scenario())
    assert store.calls["load"] >= 3
    assert store.calls["save"] == 2


def test_asgi_without_preload_loads_only_when_the_app_awaits_it():
    # asgi_preload = false: nothing is loaded ahead; a write-only request is one save (the
    # store takes partial writes), a read needs `await session.aload()` first, and a read
    # without it is refused with a clear error instead of blocking the event loop.
    store = ThreadCheckingStore()
    refused = []

    async def app(scope, receive, send):
        session = scope["session"]
        path = scope["path"]
        body = b"ok"
        if path == "/write":
            session["n"] = 1
        elif path == "/read":
            await session.aload()
            body = json.dumps(session.get("n")).encode()
        elif path == "/read-unloaded":
            try:
                session.get("n")
            except SessionNotLoadedError as error:
                refused.append(error)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    middleware = ASGIMiddleware(app, secret_key=SECRET, store=store, asgi_preload=False)

    async def scenario():
        store.loop_thread = threading.get_ident()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=middleware), base_url="http://t"
        ) as client:
            await client.get("/write")  # a new session: one save
            assert store.calls == {"save": 1}
            await client.get("/write")  # a returning visitor's write: one save, no load
            assert store.calls == {"save": 2}
            await client.get("/untouched")  # nothing at all
            assert store.calls == {"save": 2}
            assert (await client.get("/read")).json() == 1
            assert store.calls == {"save": 2, "load": 1}
            untouched = await client.get("/read-unloaded")
            assert "set-cookie" not in untouched.headers  # the cookie is kept as it is
            assert store.calls == {"save": 2, "load": 1}

    asyncio.run(scenario())
    assert len(refused) == 1
    assert refused[0].store == store.name
    assert "await request.session.aload()" in str(refused[0])


def test_asgi_preload_is_kept_for_the_cookie_store_and_by_default():
    cookie_app = ASGIMiddleware(asgi_app, secret_key=SECRET, asgi_preload=False)
    client = Client("asgi", asgi_preload=False)  # the cookie store loads lazily, without I/O
    assert client.get("/write").json() == 1
    assert client.get("/read").json() == 1
    assert not cookie_app._preload
    assert ASGIMiddleware(asgi_app, secret_key=SECRET, store=MemoryStore())._preload


def test_asgi_passes_other_scope_types_through():
    seen = []

    async def app(scope, receive, send):
        seen.append("session" in scope)

    asyncio.run(ASGIMiddleware(app, secret_key=SECRET)({"type": "lifespan"}, None, None))
    assert seen == [False]


def test_asgi_websocket_gets_its_session():
    store = MemoryStore()
    middleware = ASGIMiddleware(asgi_app, secret_key=SECRET, store=store)
    client = Client("asgi", store=store)
    client.get("/set", params={"n": 3})
    cookie = client.cookies["sessionid"]
    sent = []

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": [(b"cookie", f"sessionid={cookie}".encode())],
    }
    asyncio.run(middleware(scope, receive, send))
    assert sent[0]["type"] == "websocket.accept"
    assert json.loads(sent[1]["text"]) == 3
    assert store.load(cookie).data == {"n": 3, "ws": True}


# -------------------------------------------------------------------- real sockets


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def test_wsgi_over_a_real_socket():
    app = WSGIMiddleware(wsgi_app, secret_key=SECRET)
    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.server_port}") as client:
            assert [client.get("/write").json() for _ in range(3)] == [1, 2, 3]
            client.get("/flush")
            assert "sessionid" not in client.cookies
            assert client.get("/read").json() is None
    finally:
        server.shutdown()
        server.server_close()


def test_asgi_over_a_real_socket(live_asgi_server):
    url = live_asgi_server(ASGIMiddleware(asgi_app, secret_key=SECRET))
    with httpx.Client(base_url=url) as client:
        assert [client.get("/write").json() for _ in range(3)] == [1, 2, 3]
        client.get("/flush")
        assert "sessionid" not in client.cookies
        assert client.get("/read").json() is None
