"""Starlette and FastAPI with ``session_core.asgi.SessionMiddleware``: ``request.session`` works
unchanged. Each app runs under uvicorn and is driven over real HTTP; so is a plain ASGI app."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from session_core.asgi import SessionMiddleware
from session_core.testing import MemoryStore

SECRET = "asgi-test-secret-" + "a" * 40


def starlette_app(store) -> Starlette:
    async def counter(request):
        request.session["visits"] = request.session.get("visits", 0) + 1
        return JSONResponse(
            {"visits": request.session["visits"], "user": request.session.get("user")}
        )

    async def untouched(request):
        return PlainTextResponse("no session here")

    async def login(request):
        form = await request.form()
        request.session.cycle_key()
        request.session["user"] = str(form["name"])
        request.session.set_expiry(None if form.get("remember") else 0)
        return JSONResponse({"user": request.session["user"]})

    async def logout(request):
        request.session.clear()  # Starlette's idiom; flush() also deletes the server record
        return JSONResponse({"user": request.session.get("user")})

    return Starlette(
        routes=[
            Route("/", counter),
            Route("/untouched", untouched),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key=SECRET, store=store)],
    )


def fastapi_app(store) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=SECRET, store=store)

    @app.get("/")
    async def counter(request: Request):
        request.session["visits"] = request.session.get("visits", 0) + 1
        return {"visits": request.session["visits"], "user": request.session.get("user")}

    @app.get("/untouched")
    def untouched():
        return {"session": "untouched"}

    @app.post("/login/{name}")
    def login(name: str, request: Request):  # a sync endpoint: runs in a worker thread
        request.session.cycle_key()
        request.session["user"] = name
        request.session.set_expiry(0)
        return RedirectResponse("/", status_code=303)

    @app.post("/logout")
    async def logout(request: Request):
        request.session.flush()
        return RedirectResponse("/", status_code=303)

    return app


@pytest.fixture(params=["cookie", "memory"])
def asgi_store(request):
    return "cookie" if request.param == "cookie" else MemoryStore()


def test_starlette_request_session(asgi_store, live_asgi_server, live_checks):
    url = live_asgi_server(starlette_app(asgi_store))
    with httpx.Client(base_url=url, follow_redirects=True, timeout=10) as client:
        live_checks.counter_then_untouched(client)
        before = client.cookies["sessionid"]
        signed_in = client.post("/login", data={"name": "ada"})
        assert signed_in.json() == {"user": "ada"}
        assert "Max-Age" not in signed_in.headers["set-cookie"]
        assert client.get("/").json() == {"visits": 3, "user": "ada"}
        if not isinstance(asgi_store, str):
            assert live_checks.as_another_browser(client, "/", before).json()["user"] is None

        signed_out = client.post("/logout")
        assert signed_out.json() == {"user": None}
        assert "Max-Age=0" in signed_out.headers["set-cookie"]
        assert "sessionid" not in client.cookies


def test_fastapi_request_session(asgi_store, live_asgi_server, live_checks):
    url = live_asgi_server(fastapi_app(asgi_store))
    with httpx.Client(base_url=url, follow_redirects=True, timeout=10) as client:
        assert client.get("/").json() == {"visits": 1, "user": None}
        before = client.cookies["sessionid"]
        signed_in = client.post("/login/grace")
        assert signed_in.json() == {"visits": 2, "user": "grace"}
        assert "Max-Age" not in signed_in.history[0].headers["set-cookie"]
        assert client.cookies["sessionid"] != before
        untouched = client.get("/untouched")
        assert "set-cookie" not in untouched.headers

        signed_in_key = client.cookies["sessionid"]
        signed_out = client.post("/logout")
        assert signed_out.json() == {"visits": 1, "user": None}
        if not isinstance(asgi_store, str):
            assert live_checks.as_another_browser(client, "/", signed_in_key).json()["user"] is None


def test_plain_asgi_app_under_uvicorn(live_asgi_server):
    async def app(scope, receive, send):
        session = scope["session"]
        session["visits"] = session.get("visits", 0) + 1
        body = str(session["visits"]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    url = live_asgi_server(SessionMiddleware(app, secret_key=SECRET, store=MemoryStore()))
    with httpx.Client(base_url=url, timeout=10) as client:
        assert [client.get("/").text for _ in range(3)] == ["1", "2", "3"]
