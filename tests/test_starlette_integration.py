"""session_core.integrations.starlette: Starlette's SessionMiddleware signature and behaviour,
start-up errors under a real uvicorn, and the 503 a store outage gives (ASGI, WSGI, Starlette)."""

import logging
import subprocess
import sys
import textwrap
import time

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from session_core import ConfigurationError, StoreUnreachableError
from session_core import asgi as session_asgi
from session_core import wsgi as session_wsgi
from session_core.integrations.starlette import SessionMiddleware
from session_core.testing import MemoryStore, OutageStore

SECRET = "starlette-integration-test-secret-of-48-bytes-xx"


async def write(request: Request) -> JSONResponse:
    request.session.update(await request.json())
    return JSONResponse(request.session)


async def write_only(request: Request) -> PlainTextResponse:
    request.session["a"] = 1  # no read: works without a load (asgi_preload=False)
    return PlainTextResponse("written")


async def view(request: Request) -> JSONResponse:
    return JSONResponse(request.session)


async def merge(request: Request) -> JSONResponse:
    session = request.session
    session |= await request.json()
    return JSONResponse({"session": session})


async def pop_last(request: Request) -> JSONResponse:
    return JSONResponse({"popped": list(request.session.popitem()), "session": request.session})


ROUTES = [
    Route("/write", write, methods=["POST"]),
    Route("/view", view),
    Route("/set", write_only, methods=["POST"]),
    Route("/merge", merge, methods=["POST"]),
    Route("/pop", pop_last, methods=["POST"]),
]


def starlette_app(routes=ROUTES, handlers=None, **options):
    options.setdefault("secret_key", SECRET)
    return Starlette(
        routes=routes,
        middleware=[Middleware(SessionMiddleware, **options)],
        exception_handlers=handlers,
    )


# -------------------------------------------------------------------- drop-in


def test_dict_behaviour_through_request_session():
    client = TestClient(starlette_app())
    assert client.post("/write", json={"a": 1, "b": 2}).json() == {"a": 1, "b": 2}
    assert client.get("/view").json() == {"a": 1, "b": 2}
    assert client.post("/merge", json={"c": 3}).json() == {"session": {"a": 1, "b": 2, "c": 3}}
    assert client.post("/pop").json() == {"popped": ["c", 3], "session": {"a": 1, "b": 2}}
    assert client.get("/view").json() == {"a": 1, "b": 2}


def test_starlette_arguments_shape_the_cookie():
    client = TestClient(
        starlette_app(
            session_cookie="sid",
            max_age=600,
            path="/",
            same_site="strict",
            https_only=True,
            domain="testserver.local",
            partitioned=True,
        ),
        base_url="https://testserver.local",
    )
    cookie = client.post("/write", json={"a": 1}).headers["set-cookie"]
    name, _, rest = cookie.partition("=")
    assert name == "sid"
    attributes = rest.split("; ")[1:]
    assert attributes[0] == "path=/"
    assert "Max-Age=600" in attributes
    for flag in ("httponly", "samesite=strict", "secure", "domain=testserver.local", "partitioned"):
        assert flag in attributes


def test_max_age_none_makes_a_browser_session_cookie_kept_by_the_server():
    store = MemoryStore()
    client = TestClient(starlette_app(max_age=None, store=store))
    cookie = client.post("/write", json={"a": 1}).headers["set-cookie"]
    assert "Max-Age" not in cookie
    assert "Expires" not in cookie
    assert client.get("/view").json() == {"a": 1}
    # The choice is stored with the session, which the server expires after the default
    # lifetime.
    record = store.load(cookie.partition(";")[0].partition("=")[2])
    assert record.expiry == 0
    assert record.expires_at > time.time() + 14 * 24 * 3600 - 60


@pytest.mark.parametrize("max_age", [0, -1])
def test_a_max_age_that_expires_at_once_is_refused(max_age):
    with pytest.raises(ConfigurationError, match="None for a cookie that ends with the browser"):
        SessionMiddleware(view, secret_key=SECRET, max_age=max_age)


def test_starlettes_short_secret_is_refused_with_how_to_make_one():
    with pytest.raises(ConfigurationError) as info:
        SessionMiddleware(view, secret_key="example")
    assert "secrets.token_urlsafe" in str(info.value)
    assert "7 bytes" in str(info.value)


def test_a_starlette_argument_and_the_same_key_must_agree():
    with pytest.raises(ConfigurationError, match=r"set twice.*session_cookie"):
        SessionMiddleware(view, secret_key=SECRET, session_cookie="a", cookie_name="b")
    # Agreeing, or Starlette's default, is no conflict: the session-core key wins.
    SessionMiddleware(view, secret_key=SECRET, session_cookie="a", cookie_name="a")
    assert SessionMiddleware(view, secret_key=SECRET, cookie_name="b").config.cookie_name == "b"


def test_starlette_defaults_yield_to_the_environment_and_arguments_override_it(monkeypatch):
    monkeypatch.setenv("SESSION_CORE_COOKIE_NAME", "from_env")
    monkeypatch.setenv("SESSION_CORE_COOKIE_SAME_SITE", "Strict")
    config = SessionMiddleware(view, secret_key=SECRET).config
    assert (config.cookie_name, config.cookie_same_site) == ("from_env", "Strict")
    assert config.cookie_max_age == 14 * 24 * 3600
    config = SessionMiddleware(view, secret_key=SECRET, session_cookie="mine").config
    assert config.cookie_name == "mine"
    # Starlette's own defaults where nothing else says: its cookie name, not session-core's.
    monkeypatch.delenv("SESSION_CORE_COOKIE_NAME")
    assert SessionMiddleware(view, secret_key=SECRET).config.cookie_name == "session"


def test_secret_key_none_takes_it_from_the_environment(monkeypatch):
    monkeypatch.setenv("SESSION_CORE_SECRET_KEY", SECRET)
    assert SessionMiddleware(view, secret_key=None).config.secret_key == SECRET


def test_a_starlette_argument_and_a_config_that_sets_the_key_must_agree():
    from session_core import SessionConfig

    config = SessionConfig(secret_key=SECRET, cookie_name="from_config", cookie_max_age=60)
    with pytest.raises(ConfigurationError, match=r"set twice.*max_age=600"):
        SessionMiddleware(view, secret_key=SECRET, max_age=600, config=config)
    with pytest.raises(ConfigurationError, match="a different secret"):
        SessionMiddleware(
            view, secret_key="another-secret-of-at-least-32-bytes-long", config=config
        )
    middleware = SessionMiddleware(view, secret_key=None, config=config, https_only=True)
    assert middleware.config.cookie_name == "from_config"  # Starlette's default yields
    assert middleware.config.cookie_max_age == 60
    assert middleware.config.cookie_secure is True  # the config left it at the default


@pytest.mark.parametrize(
    "middleware", [session_asgi.SessionMiddleware, session_wsgi.SessionMiddleware]
)
def test_settings_named_like_config_load_parameters_are_unknown_keys(middleware):
    # path= used to reach SessionConfig.load's file argument ("cannot read ... '/'").
    with pytest.raises(ConfigurationError, match="path") as info:
        middleware(view, secret_key=SECRET, path="/")
    assert "configuration file" not in str(info.value)
    with pytest.raises(ConfigurationError, match="environ"):
        middleware(view, secret_key=SECRET, environ={})


# -------------------------------------------------------------------- start-up errors


@pytest.mark.parametrize("module", ["session_core.integrations.starlette", "session_core.asgi"])
def test_a_bad_configuration_stops_uvicorn_at_start_up(
    module, tmp_path, live_free_port, live_clean_env
):
    # Starlette builds its middleware at the lifespan startup, where uvicorn's default
    # (--lifespan auto) takes an exception for "no lifespan support" and serves 500s.
    (tmp_path / "badapp.py").write_text(
        textwrap.dedent(
            f"""
            from starlette.applications import Starlette
            from starlette.middleware import Middleware
            from {module} import SessionMiddleware

            app = Starlette(middleware=[Middleware(SessionMiddleware, secret_key="example")])
            """
        )
    )
    process = subprocess.run(
        [sys.executable, "-m", "uvicorn", "badapp:app", "--port", str(live_free_port())],
        cwd=tmp_path,
        env=live_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,  # a server that starts anyway never exits: the test fails here
    )
    assert process.returncode != 0
    assert "Application startup failed" in process.stderr
    assert "'secret_key': is 7 bytes long" in process.stderr
    assert "secrets.token_urlsafe" in process.stderr


def test_a_bad_configuration_in_a_running_loop_fails_every_request():
    app = Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, secret_key="x")])
    with pytest.raises(ConfigurationError, match="secret_key"):
        TestClient(app).get("/view")
    with pytest.raises(ConfigurationError, match="secret_key"), TestClient(app):
        pass  # the lifespan startup fails with the error


# -------------------------------------------------------------------- store outage: 503


def assert_503(response):
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert "set-cookie" not in response.headers


def outage_warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and "503" in r.message]


def signed_in(client):
    assert client.post("/set").status_code == 200


def test_starlette_preload_failure_is_a_503(caplog):
    store = OutageStore()
    client = TestClient(starlette_app(store=store))
    signed_in(client)
    store.fail()
    assert_503(client.get("/view"))
    assert len(outage_warnings(caplog)) == 1
    assert "connection refused" in outage_warnings(caplog)[0].message


def test_starlette_save_failure_is_a_503_even_when_streaming(caplog):
    async def stream(request):
        request.session["n"] = 1

        async def body():
            yield b"one"
            yield b"two"

        return StreamingResponse(body())

    store = OutageStore()
    client = TestClient(starlette_app(routes=[Route("/stream", stream)], store=store))
    store.fail()
    response = client.get("/stream")
    assert_503(response)
    assert b"one" not in response.content
    assert len(outage_warnings(caplog)) == 1


async def load_in_app(request):
    await request.session.aload()
    return PlainTextResponse("loaded")


def test_starlette_app_handler_sees_errors_raised_inside_the_app():
    async def handler(request, exc):
        return PlainTextResponse(f"handled {type(exc).__name__}", status_code=502)

    for handled in (StoreUnreachableError, ConnectionError, Exception):
        store = OutageStore()
        client = TestClient(
            starlette_app(
                routes=[Route("/load", load_in_app), *ROUTES],
                handlers={handled: handler},
                store=store,
                asgi_preload=False,
            ),
            raise_server_exceptions=False,
        )
        signed_in(client)
        store.fail()
        response = client.get("/load")
        assert (response.status_code, response.text) == (502, "handled StoreUnreachableError")


def test_starlette_error_inside_the_app_without_a_handler_is_a_503():
    store = OutageStore()
    client = TestClient(
        starlette_app(
            routes=[Route("/load", load_in_app), *ROUTES], store=store, asgi_preload=False
        )
    )
    signed_in(client)
    store.fail()
    assert_503(client.get("/load"))


def test_plain_asgi_middleware_answers_503(caplog):
    store = OutageStore()

    async def app(scope, receive, send):
        scope["session"]["n"] = 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    client = TestClient(session_asgi.SessionMiddleware(app, secret_key=SECRET, store=store))
    assert client.get("/").status_code == 200
    store.fail()
    assert_503(client.get("/"))  # the pre-load, then (below) the save
    client.cookies.clear()
    assert_503(client.get("/"))
    assert len(outage_warnings(caplog)) == 2


def call_wsgi(app, cookie=None):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.input": None}
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    started = []

    def start_response(status, headers, exc_info=None):
        started.append((status, dict(headers)))
        return lambda data: None

    body = b"".join(app(environ, start_response))
    return started[-1][0], started[-1][1], body


@pytest.mark.parametrize("operation", ["load", "save"])
def test_wsgi_middleware_answers_503(operation, caplog):
    store = OutageStore()

    def app(environ, start_response):
        session = environ[session_wsgi.ENVIRON_KEY]
        session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = session_wsgi.SessionMiddleware(app, secret_key=SECRET, store=store)
    status, headers, _ = call_wsgi(middleware)
    cookie = headers["Set-Cookie"].partition(";")[0]
    store.fail()
    status, headers, body = call_wsgi(middleware, cookie if operation == "load" else None)
    assert status.startswith("503")
    assert headers["Retry-After"].isdigit()
    assert b"session store" in body
    assert len(outage_warnings(caplog)) == 1


def test_websocket_whose_session_cannot_load_is_closed_with_1013():
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocketDisconnect

    async def socket(websocket):
        await websocket.accept()
        await websocket.send_json(websocket.session)
        await websocket.close()

    store = OutageStore()
    client = TestClient(starlette_app(routes=[WebSocketRoute("/ws", socket), *ROUTES], store=store))
    signed_in(client)
    with client.websocket_connect("/ws") as websocket:
        assert websocket.receive_json() == {"a": 1}
    store.fail()
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws"):
        pass
    assert info.value.code == 1013


def test_the_503_response_can_be_replaced_by_a_subclass():
    class OwnPage(session_asgi.SessionMiddleware):
        def unavailable(self, error):
            return 503, [("content-type", "text/html"), ("retry-after", "60")], b"<p>back soon</p>"

    class OwnWSGIPage(session_wsgi.SessionMiddleware):
        def unavailable(self, error):
            return 503, [("Content-Type", "text/html"), ("Retry-After", "60")], b"<p>back soon</p>"

    async def app(scope, receive, send):
        scope["session"]["n"] = 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    store = OutageStore()
    store.fail()
    response = TestClient(OwnPage(app, secret_key=SECRET, store=store)).get("/")
    assert (response.status_code, response.text) == (503, "<p>back soon</p>")
    assert response.headers["retry-after"] == "60"

    def wsgi_app(environ, start_response):
        environ[session_wsgi.ENVIRON_KEY]["n"] = 1
        start_response("200 OK", [])
        return [b"ok"]

    status, headers, body = call_wsgi(OwnWSGIPage(wsgi_app, secret_key=SECRET, store=store))
    assert (status, headers["Retry-After"], body) == (
        "503 Service Unavailable",
        "60",
        b"<p>back soon</p>",
    )


def test_fastapi_returns_request_session_as_a_dict():
    from fastapi import FastAPI

    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=SECRET)

    @app.post("/add")
    async def add(request: Request):
        request.session["cart"] = [*request.session.get("cart", []), len(request.session) + 1]
        return request.session

    client = TestClient(app)
    assert client.post("/add").json() == {"cart": [1]}
    assert client.post("/add").json() == {"cart": [1, 2]}


def test_a_failed_save_is_a_503_even_with_an_exception_handler():
    seen = []

    async def handler(request, exc):
        seen.append(exc)
        return PlainTextResponse("handled", status_code=500)

    store = OutageStore()
    client = TestClient(
        starlette_app(handlers={Exception: handler}, store=store), raise_server_exceptions=False
    )
    store.fail()
    assert_503(client.post("/set"))  # the save happens outside the app
    assert seen == []


def test_a_failed_save_of_a_streaming_response_under_asgi_2_3_is_a_503():
    # uvicorn says ASGI 2.3: Starlette then streams inside a task group, which the signal that
    # the 503 replaced the response must still get out of.
    import asyncio

    async def stream(request):
        request.session["n"] = 1

        async def body():
            yield b"one"

        return StreamingResponse(body())

    store = OutageStore()
    store.fail()
    app = starlette_app(routes=[Route("/stream", stream)], store=store)
    sent, received = [], []

    async def receive():
        if received:
            await asyncio.Event().wait()  # no disconnect: the app ends on its own
        received.append(True)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/stream",
        "raw_path": b"/stream",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "server": ("testserver", 80),
        "client": ("testclient", 50000),
    }
    asyncio.run(app(scope, receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 503
    assert b"one" not in sent[1]["body"]
