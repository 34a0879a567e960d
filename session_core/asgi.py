"""ASGI middleware: a session for every HTTP and websocket connection, in ``scope["session"]``,
so Starlette's and FastAPI's ``request.session`` work unchanged.

Example::

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from session_core.asgi import SessionMiddleware

    app = Starlette(middleware=[Middleware(SessionMiddleware, secret_key=SECRET)])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from functools import partial
from typing import Any, TypeAlias

from ._http import MAX_COOKIE_HEADER_BYTES, SessionCookie, parse_cookie_value, resolve_config
from .config import SessionConfig
from .errors import SessionNotLoadedError
from .registry import create_store
from .session import Session

__all__ = ["SessionMiddleware"]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


def _key_from_headers(headers: Iterable[tuple[bytes, bytes]], cookie_name: str) -> str | None:
    found = None
    lines: list[bytes] | None = None
    size = 0
    for name, value in headers:
        if name == b"cookie":
            # HTTP/2 may split the cookies over several headers: they are joined once, at the
            # end (joining line by line costs the square of their number), and only until the
            # bound parse_cookie_value reads is reached. One header, the usual case, builds no
            # list.
            if found is None:
                found = value
            elif lines is None:
                lines = [found, value]
            else:
                lines.append(value)
            size += len(value) + 2
            if size > MAX_COOKIE_HEADER_BYTES:
                break
    if found is None:
        return None
    joined = found if lines is None else b"; ".join(lines)
    return parse_cookie_value(joined.decode("latin-1"), cookie_name)


class SessionMiddleware:
    """Gives every HTTP request and websocket connection a :class:`~session_core.Session`.

    Store I/O never blocks the event loop: server-side stores are called through their async
    twins, and a session whose visitor sent a cookie is loaded (``aload``) before the app runs,
    since ``request.session`` is read synchronously. With the cookie store (no I/O) loading is
    lazy and a request that never touches its session costs nothing. With ``asgi_preload =
    false`` a server-side store's session is not loaded ahead either: the app calls ``await
    session.aload()`` before reading it (a read before raises
    :class:`~session_core.SessionNotLoadedError`), and a request that only writes costs one
    round trip with a store that takes partial writes.

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
        self._server_side = not self.store.local
        self._preload = self._server_side and self.config.asgi_preload
        self._session_class = Session if self._preload or not self._server_side else _AwaitedSession
        self._always_finish = self.config.save_every_request
        self._cookie_name = self.config.cookie_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one connection."""
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        session = self.cookie.new_session(
            key_source=partial(_key_from_headers, scope.get("headers", ()), self._cookie_name),
            session_class=self._session_class,
        )
        scope["session"] = session
        if self._preload and session.incoming_key() is not None:
            await session.aload()

        # Not a coroutine function: a message that needs nothing from the session is handed
        # straight to the server's send, whose awaitable is returned for the app to await, so
        # passing through costs no coroutine of its own. (It reads the middleware's settings
        # through self: fewer closure cells to make per request.)
        def send_with_session(message: Message) -> Awaitable[None]:
            kind = message["type"]
            if (kind == "http.response.start" or kind == "websocket.accept") and (
                session._accessed or self._always_finish  # the property would cost a call
            ):
                if self._server_side:
                    return _finish_then_send(self.cookie, session, message, send)
                # A local store does no I/O: the session is finished here, synchronously.
                status = message.get("status", 200)
                return send(_with_headers(message, self.cookie.finish(session, status)))
            return send(message)

        await self.app(scope, receive, send_with_session)
        if kind == "websocket" and self._server_side and session.modified:
            await session.asave()


class _AwaitedSession(Session):
    """The session of a server-side store with ``asgi_preload = false``: nothing loads it ahead,
    and loading it synchronously would block the event loop, so reading it before
    ``await session.aload()`` raises :class:`~session_core.SessionNotLoadedError`. Writes need no
    load with a store that takes partial writes."""

    __slots__ = ()

    def load(self) -> None:
        """Refuse to load on the event loop: see the class."""
        if not self._loaded:
            raise SessionNotLoadedError(self._store.name)


# The names of the headers SessionCookie.finish adds, as ASGI sends them.
_ENCODED_NAMES = {"Set-Cookie": b"set-cookie", "Vary": b"vary"}


async def _finish_then_send(
    cookie: SessionCookie, session: Session, message: Message, send: Send
) -> None:
    extra = await cookie.afinish(session, message.get("status", 200))
    await send(_with_headers(message, extra))


def _with_headers(message: Message, extra: list[tuple[str, str]]) -> Message:
    """``message`` with the ``extra`` headers added: a new message and header list, since the
    app's own may be reused for other responses and must not collect this visitor's cookie."""
    if not extra:
        return message
    headers = list(message.get("headers", ()))
    for name, value in extra:
        headers.append((_ENCODED_NAMES[name], value.encode("latin-1")))
    return {**message, "headers": headers}
