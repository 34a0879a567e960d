"""ASGI middleware: a session for every HTTP and websocket connection, in ``scope["session"]``,
so Starlette's and FastAPI's ``request.session`` work unchanged. To replace Starlette's own
``SessionMiddleware`` with its arguments, use :mod:`session_core.integrations.starlette`.

Example::

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from session_core.asgi import SessionMiddleware

    app = Starlette(middleware=[Middleware(SessionMiddleware, secret_key=SECRET)])
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from functools import partial
from typing import Any, TypeAlias

from ._http import (
    MAX_COOKIE_HEADER_BYTES,
    SessionCookie,
    parse_cookie_value,
    resolve_config,
    store_unavailable,
)
from .config import SessionConfig
from .errors import SessionCoreError, SessionNotLoadedError, StoreUnreachableError
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

    A store that is down (:class:`~session_core.StoreUnreachableError` from the load before
    the app, from the save before the response starts, or from the app before its response
    started) gives the response of :meth:`unavailable`, a 503 with ``Retry-After``; a websocket
    is closed with code 1013.

    A configuration error is raised here, at start-up; built while an event loop runs (as
    Starlette builds its middleware, at the server's first call), it fails the lifespan startup
    instead (see ``__init__``).

    Args:
        app: the ASGI application to wrap.
        config: the configuration; ``None`` builds one from ``settings`` and the environment.
        **settings: configuration keys, overriding ``config``.
    """

    def __init__(self, app: ASGIApp, config: SessionConfig | None = None, **settings: Any) -> None:
        self.app = app
        try:
            self._configure(self._resolve(config, settings))
        except SessionCoreError as error:
            if not _event_loop_running():
                raise
            # Starlette and FastAPI build their middleware when the server first calls the app:
            # under uvicorn that is the lifespan startup, where an exception means "no lifespan
            # support" and is only logged, and every request would then fail with a 500. So the
            # error is kept, fails the lifespan startup (uvicorn refuses to start and prints it)
            # and is raised by every request of a server that runs no lifespan.
            self.__class__ = _Misconfigured
            self.error = error

    def _resolve(self, config: SessionConfig | None, settings: dict[str, Any]) -> SessionConfig:
        """The configuration from the middleware's arguments."""
        return resolve_config(config, settings)

    def _configure(self, config: SessionConfig) -> None:
        self.config = config
        self.store = create_store(self.config)
        self.cookie = SessionCookie(self.config, self.store)
        self._server_side = not self.store.local
        self._preload = self._server_side and self.config.asgi_preload
        self._session_class = self._session_type(
            Session if self._preload or not self._server_side else _AwaitedSession
        )
        self._always_finish = self.config.save_every_request
        self._cookie_name = self.config.cookie_name
        self._max_age = self.config.cookie_max_age

    def _session_type(self, base: type[Session]) -> type[Session]:
        """The class of the sessions this middleware makes (an integration's own, built on
        ``base``)."""
        return base

    def unavailable(self, error: StoreUnreachableError) -> tuple[int, list[tuple[str, str]], bytes]:
        """The response (status, headers, body) for a request whose session store is down.

        The default is a plain-text 503 with ``Retry-After``, logged as one warning; override
        it in a subclass for your own page (log there too, if you want the line).
        """
        return store_unavailable(error)

    def _app_handles(self, scope: Scope, error: StoreUnreachableError) -> bool:
        """Whether the app has its own answer to ``error`` raised inside it, which then
        propagates instead of becoming the 503."""
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one connection."""
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        # Built here rather than through SessionCookie.new_session: one call less on every
        # request. The key source holds the header list, not the scope (see new_session).
        session = self._session_class(
            self.store,
            max_age=self._max_age,
            key_source=partial(_key_from_headers, scope.get("headers", ()), self._cookie_name),
        )
        scope["session"] = session
        if self._preload and session.incoming_key() is not None:
            try:
                await session.aload()
            except StoreUnreachableError as error:
                await _store_unavailable(kind, self.unavailable(error), send)
                return

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
                    return _finish_then_send(self, session, message, send, scope)
                # A local store does no I/O: the session is finished here, synchronously.
                status = message.get("status", 200)
                return send(_with_headers(message, self.cookie.finish(session, status)))
            return send(message)

        try:
            await self.app(scope, receive, send_with_session)
        except _Answered:
            return  # the save failed and the 503 went out instead of the app's response
        except StoreUnreachableError as error:
            # Only a server-side store's outage is the session's to answer, and only while
            # nothing of the response has gone out (the save marks the scope when it sends).
            if not self._server_side or _STARTED in scope or self._app_handles(scope, error):
                raise
            await _store_unavailable(kind, self.unavailable(error), send)
            return
        if kind == "websocket" and self._server_side and session.modified:
            self.cookie.observe(session)
            await session.asave()


class _Misconfigured(SessionMiddleware):
    """A middleware whose configuration failed while an event loop ran (see
    :meth:`SessionMiddleware.__init__`): it fails the lifespan startup with the error, and
    raises it for every connection."""

    error: SessionCoreError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Fail the lifespan startup, or raise the configuration error."""
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Then raised, as Starlette's router does: servers and test clients wait for
                # the app to end with an error after a failed startup.
                await send({"type": "lifespan.startup.failed", "message": str(self.error)})
        raise self.error


def _event_loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


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


# Put in the scope once a response start that went through the session's save is sent.
_STARTED = "session_core.response_started"


class _Answered(Exception):
    """Raised into the app by its ``send`` when the session's save failed and the 503 was sent
    in place of its response: what the app sends after that has nowhere to go."""


async def _finish_then_send(
    middleware: SessionMiddleware, session: Session, message: Message, send: Send, scope: Scope
) -> None:
    try:
        extra = await middleware.cookie.afinish(session, message.get("status", 200))
    except StoreUnreachableError as error:
        # The save comes before the response start is forwarded, so nothing has gone out yet
        # and the 503 can take the response's place.
        kind = message["type"].partition(".")[0]
        await _store_unavailable(kind, middleware.unavailable(error), send)
        raise _Answered from error
    scope[_STARTED] = True
    await send(_with_headers(message, extra))


async def _store_unavailable(
    kind: str, response: tuple[int, list[tuple[str, str]], bytes], send: Send
) -> None:
    """Answer a connection whose session store is down with ``response`` (see
    :meth:`SessionMiddleware.unavailable`), or a websocket with a close, code 1013 (try again
    later)."""
    status, headers, body = response
    if kind == "websocket":
        await send({"type": "websocket.close", "code": 1013, "reason": "session store unavailable"})
        return
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _with_headers(message: Message, extra: list[tuple[str, str]]) -> Message:
    """``message`` with the ``extra`` headers added: a new message and header list, since the
    app's own may be reused for other responses and must not collect this visitor's cookie."""
    if not extra:
        return message
    headers = list(message.get("headers", ()))
    for name, value in extra:
        headers.append((_ENCODED_NAMES[name], value.encode("latin-1")))
    return {**message, "headers": headers}
