"""WSGI middleware: a session for every request, in ``environ["session_core.session"]``.

Example::

    from session_core.wsgi import SessionMiddleware

    app = SessionMiddleware(app, secret_key=os.environ["SECRET_KEY"])

    def view(environ, start_response):
        session = environ["session_core.session"]
        session["visits"] = session.get("visits", 0) + 1
        ...
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from http import HTTPStatus
from types import TracebackType
from typing import Any, TypeAlias

from ._http import SessionCookie, resolve_config, store_unavailable
from .config import SessionConfig
from .errors import StoreUnreachableError
from .registry import create_store

__all__ = ["ENVIRON_KEY", "SessionMiddleware"]

ENVIRON_KEY = "session_core.session"
"""Where the request's :class:`~session_core.Session` is put in the WSGI environ."""

_ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse: TypeAlias = Callable[..., Callable[[bytes], object]]
WSGIApplication: TypeAlias = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class SessionMiddleware:
    """Gives every WSGI request a lazy :class:`~session_core.Session`.

    The store is built once, here. At the response (inside ``start_response``) a modified
    session is saved and its cookie set, an emptied or flushed one is deleted with its cookie, an
    accessed one adds ``Vary: Cookie``, and an untouched one costs nothing. Changes made after the
    app calls ``start_response`` (while streaming the body) are not saved.

    When the store is down (:class:`~session_core.StoreUnreachableError` from the app's reads
    or from the save) the visitor gets a ``503 Service Unavailable`` with ``Retry-After``
    instead, unless the app catches the error itself. An app that calls ``start_response``
    only once its body is iterated (a generator) gets the error from the iteration instead.

    Args:
        app: the WSGI application to wrap.
        config: the configuration; ``None`` builds one from ``settings`` and the environment
            (see :meth:`SessionConfig.load <session_core.SessionConfig.load>`).
        **settings: configuration keys, overriding ``config``.
    """

    def __init__(
        self, app: WSGIApplication, config: SessionConfig | None = None, **settings: Any
    ) -> None:
        self.app = app
        self.config = resolve_config(config, settings)
        self.store = create_store(self.config)
        self.cookie = SessionCookie(self.config, self.store)
        self._always_finish = self.config.save_every_request

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Handle one request."""
        session = environ[ENVIRON_KEY] = self.cookie.new_session(environ.get("HTTP_COOKIE"))
        always = self._always_finish
        finish = self.cookie.finish
        started = False  # whether the server's start_response was called

        def session_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: _ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            nonlocal started
            if session._accessed or always:  # the property would cost a call
                extra = finish(session, int(status[:3]))
                if extra:
                    headers = [*headers, *extra]
            started = True
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, session_start_response)
        except StoreUnreachableError as error:
            # The load (in the app) or the save (in start_response, before the server's was
            # called) failed: the 503 takes the response's place. Only a second call of the
            # server's start_response carries exc_info (PEP 3333): a first one with it is
            # re-raised by test clients (Werkzeug's, httpx's), so a test could not see the 503.
            # If the server already sent headers, it re-raises, which is all there is left.
            status, headers, body = self.unavailable(error)
            exc_info = sys.exc_info() if started else None
            start_response(f"{status} {HTTPStatus(status).phrase}", headers, exc_info)
            return [body]

    def unavailable(self, error: StoreUnreachableError) -> tuple[int, list[tuple[str, str]], bytes]:
        """The response (status, headers, body) for a request whose session store is down.

        The default is a plain-text 503 with ``Retry-After``, logged as one warning; override
        it in a subclass for your own page (log there too, if you want the line).
        """
        return store_unavailable(error)
