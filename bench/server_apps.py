"""The apps the real-server benchmark serves (imported by uvicorn and gunicorn by name).

``bare_*`` give the view a plain dict where the session would be; ``sessions_*`` wrap the same
view in session-core's middleware with the cookie store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from session_core.asgi import SessionMiddleware as AsgiSessions
from session_core.wsgi import SessionMiddleware as WsgiSessions

from .cookie import ENVIRON_KEY, SEED, asgi_app, wsgi_app
from .harness import SECRET


def bare_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The plain WSGI app with a dict for a session."""
    environ[ENVIRON_KEY] = dict(SEED)
    return wsgi_app(environ, start_response)


async def bare_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The plain ASGI app with a dict for a session."""
    if scope["type"] == "http":
        scope["session"] = dict(SEED)
        await asgi_app(scope, receive, send)


async def _asgi_view(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await asgi_app(scope, receive, send)


sessions_wsgi = WsgiSessions(wsgi_app, secret_key=SECRET)
sessions_asgi = AsgiSessions(_asgi_view, secret_key=SECRET)
