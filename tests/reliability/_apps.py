"""A small app run through the real WSGI and ASGI middleware, and in-process clients for it.

Routes (GET, query string arguments):
    /read             the session's data and whether it has a key, as JSON
    /set?k=..&v=..    session[k] = v
    /incr?k=..        session[k] += 1
    /login?user=..    cycle_key(), then session["user"] = user
    /logout           flush()
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from session_core import Session, SessionConfig
from session_core import asgi as session_asgi
from session_core import wsgi as session_wsgi


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: dict[str, Any]

    def set_cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    def cookie_value(self, name: str = "sessionid") -> str | None:
        """The value the response sets for ``name`` ("" when it deletes the cookie)."""
        for header in self.set_cookies():
            first = header.split(";", 1)[0]
            cookie, _, value = first.partition("=")
            if cookie == name:
                return value
        return None


def handle(session: Session, path: str, query: str) -> tuple[int, dict[str, Any]]:
    args = {k: v[-1] for k, v in parse_qs(query).items()}
    if path == "/set":
        session[args["k"]] = args["v"]
    elif path == "/incr":
        session[args["k"]] = int(session.get(args["k"], 0)) + 1
    elif path == "/login":
        session.cycle_key()
        session["user"] = args["user"]
    elif path == "/logout":
        session.flush()
        return 200, {"data": {}}
    elif path != "/read":
        return 404, {}
    return 200, {"data": dict(session)}


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["session_core.session"]
    status, body = handle(session, environ["PATH_INFO"], environ.get("QUERY_STRING", ""))
    start_response(f"{status} X", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    session = scope["session"]
    status, body = handle(session, scope["path"], scope["query_string"].decode())
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


class WSGIClient:
    """Calls the WSGI middleware in process; ``cookie`` is sent as the raw ``Cookie`` header."""

    def __init__(self, config: SessionConfig) -> None:
        self.middleware = session_wsgi.SessionMiddleware(_wsgi_app, config)

    @property
    def store(self) -> Any:
        return self.middleware.store

    def get(self, path: str, cookie: str | None = None, query: str = "") -> Response:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "wsgi.url_scheme": "http",
        }
        if cookie is not None:
            environ["HTTP_COOKIE"] = cookie
        captured: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            captured["status"] = int(status[:3])
            captured["headers"] = headers
            return lambda chunk: None

        body = b"".join(self.middleware(environ, start_response))
        return Response(captured["status"], captured["headers"], json.loads(body))


class ASGIClient:
    """Calls the ASGI middleware in process, on an event loop of its own."""

    def __init__(self, config: SessionConfig) -> None:
        self.middleware = session_asgi.SessionMiddleware(_asgi_app, config)
        self.loop = asyncio.new_event_loop()

    @property
    def store(self) -> Any:
        return self.middleware.store

    def close(self) -> None:
        """Close the store on this loop (async connections belong to it), then the loop."""
        self.loop.run_until_complete(self.middleware.store.aclose())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    async def aget(self, path: str, cookie: str | bytes | None = None, query: str = "") -> Response:
        headers = []
        if cookie is not None:
            raw = cookie if isinstance(cookie, bytes) else cookie.encode("utf-8")
            headers.append((b"cookie", raw))
        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "query_string": query.encode(),
            "headers": headers,
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.middleware(scope, receive, send)
        start = sent[0]
        body = b"".join(m.get("body", b"") for m in sent[1:])
        return Response(
            start["status"],
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]],
            json.loads(body),
        )

    def get(self, path: str, cookie: str | bytes | None = None, query: str = "") -> Response:
        return self.loop.run_until_complete(self.aget(path, cookie, query))
