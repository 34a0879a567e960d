"""ASGI middleware: a session for every HTTP and websocket connection, in ``scope["session"]``,
so Starlette's and FastAPI's ``request.session`` work unchanged.

Example::

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from session_core.asgi import SessionMiddleware

    app = Starlette(middleware=[Middleware(SessionMiddleware, secret_key=SECRET)])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any, TypeAlias

from ._http import SessionCookie, parse_cookie_value, resolve_config
from .config import SessionConfig
from .registry import create_store
from .session import Session

__all__ = ["SessionMiddleware"]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


def _cookie_header(scope: Scope) -> str | None:
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"cookie"]
    return "; ".join(values) if values else None


class SessionMiddleware:
    """Gives every HTTP request and websocket connection a :class:`~session_core.Session`.

    Store I/O never blocks the event loop: server-side stores are called through their async
    twins, and a session whose visitor sent a cookie is loaded (``aload``) before the app runs,
    since ``request.session`` is read synchronously. With the cookie store (no I/O) loading is
    lazy and a request that never touches its session costs nothing.

    At ``http.response.start`` a modified session is saved and its cookie set, an emptied or
    flushed one is deleted with its cookie, an accessed one adds ``Vary: Cookie``; nothing is
    saved on a 5xx response. A websocket's session is saved when it is accepted (the cookie rides
    on the accept), and server-side changes made later are saved when the connection ends.

    Args:
        app: the ASGI application to wrap.
        config: the configuration; ``None`` builds one from ``settings`` and the environment.
        **settings: configuration keys, overriding ``config``.
    """

    def __init__(self, app: ASGIApp, config: SessionConfig | None = None, **settings: Any) -> None:
        self.app = app
        self.config = resolve_config(config, settings)
        self.store = create_store(self.config)
        self.cookie = SessionCookie(self.config, self.store)
        self._preload = not self.store.local
        self._always_finish = self.config.save_every_request
        self._max_age = self.config.cookie_max_age
        self._cookie_name = self.config.cookie_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one connection."""
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        session = Session(
            self.store,
            max_age=self._max_age,
            key_source=partial(_key_from_scope, scope, self._cookie_name),
        )
        scope["session"] = session
        if self._preload and session.incoming_key() is not None:
            await session.aload()
        always = self._always_finish
        afinish = self.cookie.afinish

        async def send_with_session(message: Message) -> None:
            if (session.accessed or always) and (
                message["type"] == "http.response.start" or message["type"] == "websocket.accept"
            ):
                extra = await afinish(session, message.get("status", 200))
                if extra:
                    headers = list(message.get("headers", ()))
                    headers.extend((_encoded_name(k), v.encode("latin-1")) for k, v in extra)
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_session)
        if kind == "websocket" and self._preload and session.modified:
            await session.asave()


def _key_from_scope(scope: Scope, cookie_name: str) -> str | None:
    return parse_cookie_value(_cookie_header(scope), cookie_name)


def _encoded_name(name: str) -> bytes:
    return b"set-cookie" if name == "Set-Cookie" else name.lower().encode("latin-1")
