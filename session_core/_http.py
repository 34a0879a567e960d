"""The HTTP side of a session, shared by the WSGI and ASGI middleware and the framework
integrations: reading the session cookie and deciding, at the response, what to save and which
headers to send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, overload

from .config import MAX_COOKIE_AGE, SessionConfig, layered_settings
from .cookie import MAX_COOKIE_BYTES
from .errors import ConfigurationError, CookieTooLargeError, StoreUnreachableError
from .events import EventEmitter
from .registry import default_registry
from .session import ResponseAction, Session
from .store import SessionStore

__all__ = [
    "MAX_COOKIE_HEADER_BYTES",
    "RETRY_AFTER_SECONDS",
    "SessionCookie",
    "parse_cookie_value",
    "resolve_config",
    "store_unavailable",
]

RETRY_AFTER_SECONDS = 5
"""The ``Retry-After`` of the 503 response a visitor gets while the store is down."""

logger = logging.getLogger("session_core")

_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SET_COOKIE_PREFIX = len("Set-Cookie: ")

_S = TypeVar("_S", bound=Session)

_NOTHING = ResponseAction.NOTHING
_VARY = ResponseAction.VARY
_SAVE = ResponseAction.SAVE
_DROP_FLUSHED = ResponseAction.DROP_FLUSHED


_VARY_HEADER = ("Vary", "Cookie")


def _http_date(second: int) -> str:
    """Unix time ``second`` as an HTTP date."""
    t = time.gmtime(second)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


MAX_COOKIE_HEADER_BYTES = 64 * 1024
"""How much of a ``Cookie`` request header is read: 64 KiB.

A real browser's header never gets that far: every common server refuses a longer one before it
reaches the app (nginx and Apache 8 KiB a header line, gunicorn 8 KiB, Node.js, IIS and h11 16
KiB, Cloudflare 32 KiB and AWS load balancers 64 KiB of headers in all), and 64 KiB holds fifteen
cookies of the 4096 bytes a browser allows each, and the session cookie. A longer header is
hostile: only the cookies that end within its first 64 KiB are read, so its cost is bounded
whatever its size.
"""


def parse_cookie_value(header: str | None, name: str) -> str | None:
    """The value of the first cookie called ``name`` in a ``Cookie`` request header.

    Browsers send the cookie with the most specific path first, so the first one wins. Quotes
    around a value are removed; nothing else is decoded (session cookie values are plain ASCII).
    Whitespace around names and values is ignored. Only the first
    :data:`MAX_COOKIE_HEADER_BYTES` of the header are read: a cookie that does not end within
    them is ignored.
    """
    if not header:
        return None
    if header.startswith(name) and header[len(name) : len(name) + 1] == "=":
        # The session cookie comes first (the usual case): its value ends at the first ";".
        end = header.find(";", 0, MAX_COOKIE_HEADER_BYTES + 1)
        if end >= 0:
            return _unquoted(header[len(name) + 1 : end].strip())
        if len(header) <= MAX_COOKIE_HEADER_BYTES:
            return _unquoted(header[len(name) + 1 :].strip())
    if len(header) > MAX_COOKIE_HEADER_BYTES:
        # Cut at the last separator within the bound, so that no cookie is read cut short
        # (none at all: the first cookie alone is longer than the bound).
        header = header[: max(0, header.rfind(";", 0, MAX_COOKIE_HEADER_BYTES + 1))]
    # Splitting the whole header once is cheaper than walking it with find().
    for pair in header.split(";"):
        key, eq, value = pair.partition("=")
        if eq and key.strip() == name:
            return _unquoted(value.strip())
    return None


def _unquoted(value: str) -> str | None:
    """A cookie value without the quotes around it; ``None`` for an empty one."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value or None


class SessionCookie:
    """Reads and writes the session cookie for one configuration, and finishes a session at the
    end of a request (save, then the ``Set-Cookie`` and ``Vary`` headers).

    Args:
        config: the session configuration.
        store: the app's store.
    """

    __slots__ = (
        "_attributes",
        "_delete_header",
        "_events",
        "_lifetime",
        "_max_age",
        "_name",
        "_prefix",
        "_save_every_request",
        "_store",
        "_suffix",
        "config",
    )

    def __init__(self, config: SessionConfig, store: SessionStore) -> None:
        self.config = config
        self._store = store
        self._name = config.cookie_name
        self._max_age = config.cookie_max_age
        self._prefix = config.cookie_name + "="
        self._save_every_request = config.save_every_request
        # Asked once, here: with no plugin observing events, sessions report nothing.
        self._events = default_registry().event_emitter(store)
        attributes = [f"Path={config.cookie_path}"]
        if config.cookie_domain:
            attributes.append(f"Domain={config.cookie_domain}")
        flags = []
        if config.cookie_secure:
            flags.append("Secure")
        if config.cookie_http_only:
            flags.append("HttpOnly")
        flags.append(f"SameSite={config.cookie_same_site}")
        if config.cookie_partitioned:
            flags.append("Partitioned")
        self._suffix = "; " + "; ".join(flags)
        self._attributes = "; " + "; ".join(attributes)
        self._delete_header = (
            f"{self._prefix}{self._attributes}; Max-Age=0; Expires={_EPOCH}{self._suffix}"
        )
        # (second, max_age, what follows the value): most cookies of a second share it.
        self._lifetime: tuple[int, int, str] = (-1, -1, "")

    # ------------------------------------------------------------------ requests

    @overload
    def new_session(
        self,
        cookie_header: str | None = None,
        *,
        key_source: Callable[[], str | None] | None = None,
    ) -> Session: ...

    @overload
    def new_session(
        self,
        cookie_header: str | None = None,
        *,
        key_source: Callable[[], str | None] | None = None,
        session_class: type[_S],
    ) -> _S: ...

    def new_session(
        self,
        cookie_header: str | None = None,
        *,
        key_source: Callable[[], str | None] | None = None,
        session_class: type[Session] = Session,
    ) -> Session:
        """A session for a request with this ``Cookie`` header, parsed only when the session is
        first used; or, given ``key_source``, one whose key that callable finds (the ASGI
        middleware's, which looks through the request's headers only then). ``session_class``
        builds a subclass (Flask's session).

        The key source holds the header (or the header list), never the request's environ or
        scope: those hold the session, and the cycle would leave every request for the garbage
        collector to free.
        """
        if key_source is None:
            if cookie_header is None:  # a first visit
                return session_class(self._store, max_age=self._max_age)
            key_source = partial(parse_cookie_value, cookie_header, self._name)
        return session_class(self._store, max_age=self._max_age, key_source=key_source)

    # ------------------------------------------------------------------ responses

    def set_cookie_header(self, value: str, max_age: int | None) -> str:
        """The ``Set-Cookie`` value for a session cookie holding ``value``.

        ``max_age=None`` makes a browser-session cookie (no Max-Age, no Expires); a longer one
        than :data:`~session_core.config.MAX_COOKIE_AGE` is capped to it, as browsers cap it.

        Raises:
            CookieTooLargeError: the whole ``Set-Cookie`` line is over 4096 bytes.
        """
        if max_age is None:
            header = f"{self._prefix}{value}{self._attributes}{self._suffix}"
        else:
            # Browsers cap a cookie's lifetime so; a datetime expiry may be further away.
            max_age = min(max_age, MAX_COOKIE_AGE)
            now = int(time.time())
            lifetime = self._lifetime
            if lifetime[0] != now or lifetime[1] != max_age:
                tail = (
                    f"{self._attributes}; Max-Age={max_age}; "
                    f"Expires={_http_date(now + max_age)}{self._suffix}"
                )
                lifetime = self._lifetime = (now, max_age, tail)
            header = self._prefix + value + lifetime[2]
        size = _SET_COOKIE_PREFIX + len(header)
        if size > MAX_COOKIE_BYTES:
            raise CookieTooLargeError(size, MAX_COOKIE_BYTES, self._store.name)
        return header

    @property
    def events(self) -> EventEmitter | None:
        """What reports the store calls of this middleware's sessions to the plugins observing
        session events; ``None`` when none does."""
        return self._events

    def observe(self, session: Session) -> None:
        """Have ``session`` report its store calls (when a plugin observes events); the
        middleware does so before each save it makes."""
        if self._events is not None:
            session.observe(self._events)

    @property
    def delete_header(self) -> str:
        """The ``Set-Cookie`` value that removes the session cookie (same Path, Domain, Secure,
        HttpOnly and SameSite as the cookie it removes)."""
        return self._delete_header

    def _headers(self, session: Session, key: str | None) -> list[tuple[str, str]]:
        if key is not None:
            if not session.lifetime_written and key == session.incoming_key():
                return [_VARY_HEADER]  # a write-only save kept the key and the expiry
            return [
                _VARY_HEADER,
                ("Set-Cookie", self.set_cookie_header(key, session.cookie_max_age)),
            ]
        if session.incoming_key() is not None:
            return [_VARY_HEADER, ("Set-Cookie", self._delete_header)]
        return [_VARY_HEADER]

    def finish(self, session: Session, status: int) -> list[tuple[str, str]]:
        """Save what the request changed and return the headers to add to the response.

        Nothing at all for a session the request never touched (unless ``save_every_request``
        and the visitor has a session). On a 5xx response nothing is saved, but a sign-out's
        deletion still happens.
        """
        action = session.response_action(self._save_every_request, status)
        if action is _SAVE:
            if self._events is not None:
                session.observe(self._events)
            return self._headers(session, session.save())
        if action is _DROP_FLUSHED:
            if self._events is not None:
                session.observe(self._events)
            session.drop_flushed()
        return self._respond(session, action)

    async def afinish(self, session: Session, status: int) -> list[tuple[str, str]]:
        """Async twin of :meth:`finish`, saving through the store's async methods."""
        action = session.response_action(self._save_every_request, status)
        if action is _SAVE:
            if self._events is not None:
                session.observe(self._events)
            return self._headers(session, await session.asave())
        if action is _DROP_FLUSHED:
            if self._events is not None:
                session.observe(self._events)
            await session.adrop_flushed()
        return self._respond(session, action)

    def _respond(self, session: Session, action: ResponseAction) -> list[tuple[str, str]]:
        if action is _NOTHING:
            return []
        if action is _VARY:
            return [_VARY_HEADER]
        return self._headers(session, None)


def resolve_config(config: SessionConfig | None, settings: dict[str, Any]) -> SessionConfig:
    """The configuration a middleware runs with: ``config`` with ``settings`` applied, or, with
    no ``config``, one built from ``settings``, ``SESSION_CORE_*`` variables and the TOML file
    named by ``SESSION_CORE_CONFIG``."""
    if config is None:
        # Not SessionConfig.load(**settings): its own parameters (path, environ) would take
        # settings of those names (Starlette's path=) instead of rejecting them as unknown.
        return SessionConfig.from_mapping({**layered_settings(), **settings})
    if not isinstance(config, SessionConfig):
        raise ConfigurationError(
            None, f"config must be a SessionConfig, not {type(config).__name__}"
        )
    return config.replace(**settings) if settings else config


def store_unavailable(error: StoreUnreachableError) -> tuple[int, list[tuple[str, str]], bytes]:
    """The response for a request that failed because the session store is down: status 503,
    headers (``Retry-After``, a plain-text ``Content-Type``, ``Cache-Control: no-store``) and
    body. Logs one warning with the store's message (no traceback: the cause is the store's
    server, not the app).

    Every middleware and integration answers so when the app lets a
    :class:`~session_core.StoreUnreachableError` through; an app that wants its own page catches
    the error itself (a Flask error handler, a Starlette exception handler, a Django middleware).
    """
    logger.warning("session store unavailable, answering 503: %s", error)
    body = b"Service Unavailable: the session store cannot be reached; try again shortly.\n"
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Retry-After", str(RETRY_AFTER_SECONDS)),
        ("Cache-Control", "no-store"),
    ]
    return 503, headers, body
