"""Starlette and FastAPI: a drop-in replacement for ``starlette.middleware.sessions``.

Replacing the import is the whole migration::

    # from starlette.middleware.sessions import SessionMiddleware
    from session_core.integrations.starlette import SessionMiddleware

    app = Starlette(middleware=[Middleware(SessionMiddleware, secret_key=SECRET_KEY)])

It takes Starlette's arguments (``secret_key``, ``session_cookie``, ``max_age``, ``path``,
``same_site``, ``https_only``, ``domain``, ``partitioned``) with Starlette's defaults, writes the
cookie in Starlette's spelling, and takes session-core's settings too (``store="redis"``, ...).
Differences that are decisions, not accidents: the secret must have at least 32 bytes, and
``max_age`` must be positive or ``None`` (a session that expires as it is made is refused at
start-up); see docs/integrations.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from .._http import SessionCookie, resolve_config
from ..asgi import ASGIApp, Scope
from ..asgi import SessionMiddleware as _ASGISessionMiddleware
from ..config import SessionConfig
from ..errors import ConfigurationError, StoreUnreachableError
from ..session import Session
from . import framework_config

__all__ = ["SessionMiddleware"]

_UNSET: Any = object()
_CORE_DEFAULTS = {field.name: field.default for field in dataclasses.fields(SessionConfig)}

# Starlette's argument -> (session-core key, Starlette's default).
_STARLETTE_NAMES: dict[str, tuple[str, Any]] = {
    "secret_key": ("secret_key", None),  # required: never at its default
    "session_cookie": ("cookie_name", "session"),
    "max_age": ("cookie_max_age", 14 * 24 * 60 * 60),
    "path": ("cookie_path", "/"),
    "same_site": ("cookie_same_site", "lax"),
    "https_only": ("cookie_secure", False),
    "domain": ("cookie_domain", None),
    "partitioned": ("cookie_partitioned", False),
}


class SessionMiddleware(_ASGISessionMiddleware):
    """Starlette's ``SessionMiddleware`` signature on session-core's ASGI middleware.

    Each Starlette argument sets the session-core key it names (``session_cookie`` is
    ``cookie_name``, ``max_age`` is ``cookie_max_age``, ``path`` is ``cookie_path``,
    ``same_site`` is ``cookie_same_site``, ``https_only`` is ``cookie_secure``, ``domain`` is
    ``cookie_domain``, ``partitioned`` is ``cookie_partitioned``). Left at Starlette's default,
    it yields to the same key set in ``settings``, ``config``, ``SESSION_CORE_*`` variables or
    the TOML file; given both ways with different values, it is a
    :class:`~session_core.ConfigurationError`.

    A store outage gives a 503 unless the app has an exception handler that would see it: one
    for :class:`~session_core.StoreUnreachableError` or ``ConnectionError`` (Starlette runs it
    inside this middleware), or one for ``Exception`` or 500 (the error is then let through to
    it). The load before the app runs and the save before the response starts happen outside
    the app: those always give the 503.

    Args:
        app: the ASGI application to wrap.
        secret_key: at least 32 bytes (``str`` or Starlette's ``Secret``); ``None`` takes
            ``secret_key`` from ``config``, ``settings`` or the environment.
        session_cookie: the cookie's name.
        max_age: seconds a session lasts; ``None`` for a cookie that ends with the browser
            session (the server keeps the record for two weeks, ``cookie_max_age``'s default).
        path: the cookie's Path.
        same_site: ``"lax"``, ``"strict"`` or ``"none"``.
        https_only: mark the cookie Secure.
        domain: the cookie's Domain.
        partitioned: mark the cookie Partitioned (CHIPS); needs ``https_only``.
        config: a :class:`~session_core.SessionConfig` to start from.
        **settings: session-core configuration keys (``store``, ``store_options``, ...).
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: Any,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,  # 14 days, in seconds
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
        config: SessionConfig | None = None,
        **settings: Any,
    ) -> None:
        self._starlette = {
            "session_cookie": session_cookie,
            "max_age": max_age,
            "path": path,
            "same_site": same_site,
            "https_only": https_only,
            "domain": domain,
            "partitioned": partitioned,
        }
        self._secret_key = secret_key
        self._browser_session = max_age is None
        super().__init__(app, config, **settings)

    def _resolve(self, config: SessionConfig | None, settings: dict[str, Any]) -> SessionConfig:
        given = dict(self._starlette)
        if self._secret_key is not None:
            given["secret_key"] = self._secret_key
        defaults, explicit = _split(given, settings, config)
        if config is None:
            # Starlette's defaults sit beneath the environment and the TOML file; arguments
            # given explicitly sit with the keyword settings, above them.
            return framework_config(
                explicit,
                framework="Starlette",
                setting_name="SessionMiddleware's arguments",
                framework_defaults=defaults,
            )
        return resolve_config(config, explicit)

    def _configure(self, config: SessionConfig) -> None:
        super()._configure(config)
        self.cookie = _StarletteCookie(config, self.store)

    def _session_type(self, base: type[Session]) -> type[Session]:
        attributes: dict[str, Any] = {"__slots__": (), "mark_accessed": _mark_accessed}
        if self._browser_session:
            attributes["_expiry"] = 0  # set_expiry(0) for every session, without a call
        return type(f"Starlette{base.__name__.lstrip('_')}", (base,), attributes)

    def _app_handles(self, scope: Scope, error: StoreUnreachableError) -> bool:
        # Starlette runs the handlers for Exception and 500 outside every middleware (in
        # ServerErrorMiddleware): if the app has one, it should see the error, so it is let
        # through. (Handlers for the error's own classes ran inside, before it got here.)
        handlers = getattr(scope.get("app"), "exception_handlers", None) or {}
        return Exception in handlers or 500 in handlers


def _mark_accessed(self: Session) -> None:
    """Starlette's ``request.session`` calls this on every access: a session-core session
    tracks its own reads and writes, so there is nothing to do."""


def _secret(secret_key: Any) -> str:
    secret = str(secret_key)  # Starlette's Secret gives its value through str()
    if len(secret.encode()) < 32:
        raise ConfigurationError(
            "secret_key",
            f"is {len(secret.encode())} bytes long; Starlette's SessionMiddleware took any "
            f"secret, session-core needs at least 32 random bytes; make one with "
            f'python -c "import secrets; print(secrets.token_urlsafe(48))" and pass it from '
            f"the environment",
        )
    return secret


def _split(
    given: dict[str, Any], settings: dict[str, Any], config: SessionConfig | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Starlette's arguments as session-core settings: those left at Starlette's default, and
    those given (with ``settings``), after checking that nothing says otherwise."""
    defaults: dict[str, Any] = {}
    explicit = dict(settings)
    for name, value in given.items():
        key, default = _STARLETTE_NAMES[name]
        translated = _translate(name, value)
        if name != "secret_key" and type(value) is type(default) and value == default:
            if key not in settings:
                defaults[key] = translated
            continue
        ours = settings.get(key, _UNSET)
        if ours is _UNSET and config is not None and getattr(config, key) != _CORE_DEFAULTS[key]:
            ours = getattr(config, key)  # a config that sets this key
        if ours is not _UNSET and ours != translated:
            shown = "a different secret" if name == "secret_key" else f"{value!r}"
            raise ConfigurationError(
                key,
                f"set twice: as Starlette's {name}={shown} and as {key}="
                f"{'...' if name == 'secret_key' else repr(ours)} (in the keyword settings or "
                f"the config); keep one",
            )
        if translated is not None or name == "domain":
            explicit[key] = translated
    return defaults, explicit


def _translate(name: str, value: Any) -> Any:
    if name == "secret_key":
        return _secret(value)
    if name == "same_site" and isinstance(value, str):
        return value.capitalize()
    if name == "max_age":
        if value is None:
            return None  # a browser-session cookie: the sessions' own expiry (see above)
        if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
            raise ConfigurationError(
                "max_age",
                f"is {value}: a session would expire as it is made; give a positive number of "
                f"seconds, or None for a cookie that ends with the browser session",
            )
    return value


class _StarletteCookie(SessionCookie):
    """The session cookie in Starlette's spelling (``path=/; Max-Age=...; httponly;
    samesite=lax; secure; domain=...; partitioned``), so tools and tests that look for it
    keep working; browsers read attribute names in any case."""

    __slots__ = ()

    def __init__(self, config: SessionConfig, store: Any) -> None:
        super().__init__(config, store)
        flags = ["httponly"] if config.cookie_http_only else []
        flags.append(f"samesite={config.cookie_same_site.lower()}")
        if config.cookie_secure:
            flags.append("secure")
        if config.cookie_domain:
            flags.append(f"domain={config.cookie_domain}")
        if config.cookie_partitioned:
            flags.append("partitioned")
        self._attributes = f"; path={config.cookie_path}"
        self._suffix = "; " + "; ".join(flags)
        self._delete_header = (
            f"{self._prefix}{self._attributes}; Max-Age=0; "
            f"Expires=Thu, 01 Jan 1970 00:00:00 GMT{self._suffix}"
        )
