"""Flask integration: ``flask.session`` backed by any session-core store.

Example::

    from flask import Flask, session
    from session_core.integrations.flask import init_app

    app = Flask(__name__)
    app.config["SESSION_CORE"] = {"store": "redis", "store_options": {"url": "redis://..."}}
    init_app(app)  # secret_key: SESSION_CORE's, SESSION_CORE_SECRET_KEY, or app.secret_key

    @app.get("/")
    def index():
        session["visits"] = session.get("visits", 0) + 1
        return f"{session['visits']} visits"

``flask.session`` is then a :class:`FlaskSession`: a :class:`session_core.Session` (a dict-like
mapping of JSON values, saved only when changed) that behaves as Flask's own session:

- Flask's settings are read: ``SESSION_COOKIE_NAME``, ``_DOMAIN``, ``_PATH`` (or
  ``APPLICATION_ROOT``), ``_HTTPONLY``, ``_SECURE``, ``_SAMESITE``, ``_PARTITIONED``,
  ``PERMANENT_SESSION_LIFETIME`` (session-core's ``cookie_*`` and ``cookie_max_age``),
  ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``. A Flask setting the app changed from Flask's
  default must not disagree with ``SESSION_CORE`` (an error at start-up); one left at Flask's
  default yields to ``SESSION_CORE``. They are read at :func:`init_app` (so mistakes stop the
  app there) and again when the app serves its first request (so settings made after
  :func:`init_app` count), and then kept. ``SESSION_REFRESH_EACH_REQUEST`` is read at each
  request, as Flask does.
- ``session.permanent`` is Flask's: ``False`` by default (the cookie ends with the browser
  session; the server keeps the record ``PERMANENT_SESSION_LIFETIME`` after its last save);
  ``True`` gives the cookie that lifetime. As in Flask, it is kept in the session as
  ``"_permanent"``. With ``SESSION_REFRESH_EACH_REQUEST`` (the default), a permanent session is
  saved again, and its cookie re-sent, on each request that uses it.
- ``session.modified``: true when the request changed the session (it stays true after the
  save). Setting it to ``True`` (after changing a list or dict in place) rewrites every key;
  setting ``False`` does nothing.
- ``session.new``: true when the visitor brought no live session.
- ``session.accessed``: true when the request read or wrote the session (it then varies by
  cookie). Flask sets it when the ``session`` proxy is touched; that is ignored, since only real
  reads and writes count.
- Values are JSON. Tuples are stored as lists, and ``Markup`` as a string; the flashed messages
  come back as Flask gives them (``(category, message)`` tuples, ``Markup`` kept). ``bytes``,
  ``UUID`` and ``datetime`` values are refused at assignment (Flask's tagged serializer keeps
  them): store ``str(value)`` or ``value.isoformat()``.
- Sessions per user: set ``session.user_id`` at login (it cycles the key), and on a store with
  ``indexes_users`` (redis) :func:`sign_out_user` signs the user out of their other sessions (a
  password change) or of all of them (a compromised account).
- A store that cannot be reached answers ``503 Service Unavailable`` with ``Retry-After``
  (logged once), unless the app registered an error handler for
  :class:`~session_core.StoreUnreachableError` or one of its base classes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask.sessions import SessionInterface, SessionMixin
from markupsafe import Markup

from .._http import SessionCookie, resolve_config, store_unavailable
from ..config import SessionConfig
from ..errors import ConfigurationError, StoreUnreachableError
from ..registry import create_store
from ..session import Session
from ..store import UserId
from ..users import sign_out
from . import framework_config

if TYPE_CHECKING:
    from flask import Flask
    from flask.typing import ResponseReturnValue
    from flask.wrappers import Request, Response

__all__ = ["EXTENSION_KEY", "FlaskSession", "SessionCoreInterface", "init_app", "sign_out_user"]

EXTENSION_KEY = "session_core"
"""Where :func:`init_app` keeps the interface, in ``app.extensions``."""

PERMANENT_KEY = "_permanent"
"""The session key that holds ``session.permanent`` (Flask's own name for it)."""

FLASHES_KEY = "_flashes"
"""The session key where ``flask.flash()`` keeps the messages (Flask's own name for it)."""

_HTML = "html"  # third item of a stored flash whose message is Markup

# Flask's cookie settings and the session-core setting each one is.
_COOKIE_SETTINGS = (
    ("SESSION_COOKIE_NAME", "cookie_name"),
    ("SESSION_COOKIE_DOMAIN", "cookie_domain"),
    ("SESSION_COOKIE_HTTPONLY", "cookie_http_only"),
    ("SESSION_COOKIE_SECURE", "cookie_secure"),
    ("SESSION_COOKIE_SAMESITE", "cookie_same_site"),
    ("SESSION_COOKIE_PARTITIONED", "cookie_partitioned"),
)


def _untuple(value: Any) -> Any:
    """``value`` with every tuple in it turned into a list (the same object if it has none)."""
    kind = type(value)
    if kind is tuple:
        return [_untuple(item) for item in value]
    if kind is list:
        items = [_untuple(item) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if kind is dict:
        pairs = {key: _untuple(item) for key, item in value.items()}
        return pairs if any(pairs[k] is not value[k] for k in value) else value
    return value


def _flash_to_json(flash: Any) -> Any:
    """A ``(category, message)`` pair as stored: a list, with a marker when it is Markup."""
    if type(flash) is tuple and len(flash) == 2:
        category, message = flash
        if isinstance(message, Markup):
            return [category, str(message), _HTML]
        return [category, message]
    return _untuple(flash)


def _flash_from_json(flash: Any) -> Any:
    """A stored flash back as Flask gives it: a tuple, its message Markup again if it was."""
    if type(flash) is not list:
        return flash
    if len(flash) == 3 and flash[2] == _HTML:
        # Only _flash_to_json writes the marker, for a message that was Markup; and what a
        # session holds is the server's (a signed cookie or a server-side record).
        return (flash[0], Markup(flash[1]))  # noqa: S704
    return tuple(flash)


class FlaskSession(Session, SessionMixin):
    """The session Flask hands out as ``flask.session``: a :class:`~session_core.Session` with
    Flask's ``permanent``, ``new``, ``modified`` and ``accessed`` attributes.

    Tuples are stored as lists, as JSON has no tuples; flashed messages come back from
    ``session.pop("_flashes")`` (what ``flask.get_flashed_messages()`` calls) as Flask's
    ``(category, message)`` tuples, a ``Markup`` message still ``Markup``.
    """

    _changed = False  # set by the interface: the request changed the session

    def __setitem__(self, key: str, value: Any) -> None:
        if key == FLASHES_KEY and type(value) is list:
            value = [_flash_to_json(flash) for flash in value]
        super().__setitem__(key, _untuple(value))

    def pop(self, key: str, *default: Any) -> Any:
        """Remove ``key`` and return its value (or ``default``); flashes come back as tuples."""
        value = super().pop(key, *default)
        if key == FLASHES_KEY and type(value) is list:
            return [_flash_from_json(flash) for flash in value]
        return value

    @property
    def permanent(self) -> bool:
        """Whether the cookie outlives the browser session (Flask's rule: ``False`` unless set;
        kept in the session as ``"_permanent"``)."""
        return self.get(PERMANENT_KEY) is True

    @permanent.setter
    def permanent(self, value: bool) -> None:
        if value:
            if not self.permanent:
                self[PERMANENT_KEY] = True
        elif PERMANENT_KEY in self:
            del self[PERMANENT_KEY]

    def set_expiry(self, value: int | timedelta | datetime | None) -> None:
        """:meth:`Session.set_expiry`, which also sets :attr:`permanent`: ``0`` makes the
        session end with the browser, a lifetime or a moment makes it permanent, ``None``
        only restores the default lifetime."""
        super().set_expiry(value)
        if value is not None:
            self.permanent = not super().expire_at_browser_close

    @property
    def expire_at_browser_close(self) -> bool:
        """Whether the cookie ends with the browser session: the session is not permanent."""
        return super().expire_at_browser_close or not self.permanent

    @property
    def cookie_max_age(self) -> int | None:
        """The cookie's Max-Age: ``None`` (a browser-session cookie) unless permanent."""
        age = super().cookie_max_age
        return age if age is not None and self.permanent else None

    @property
    def new(self) -> bool:  # type: ignore[override]
        """Whether the visitor brought no live session (nothing saved yet)."""
        self.load()
        return self.key is None

    @property
    def modified(self) -> bool:
        """Whether the request changed the session; set it to ``True`` to save every key."""
        return self._changed or super().modified

    @modified.setter
    def modified(self, value: bool) -> None:
        if value:
            self.mark_modified()

    @property
    def accessed(self) -> bool:
        """Whether the request read or wrote the session."""
        return super().accessed

    @accessed.setter
    def accessed(self, value: bool) -> None:
        pass  # Flask sets it on any touch of the proxy; real reads and writes are tracked


def _seconds(lifetime: timedelta | int) -> int:
    """``PERMANENT_SESSION_LIFETIME`` (a timedelta or seconds, as Flask allows) in seconds."""
    if isinstance(lifetime, timedelta):
        return math.ceil(lifetime.total_seconds())
    return int(lifetime)


def _flask_settings(app: Flask) -> tuple[dict[str, tuple[str, Any]], dict[str, Any]]:
    """Flask's session settings as session-core settings: those the app set (owned: nothing
    may disagree) and those left at Flask's default (used where nothing else sets them)."""
    config, defaults = app.config, type(app).default_config
    owned: dict[str, tuple[str, Any]] = {}
    given: dict[str, Any] = {}

    def take(key: str, name: str, value: Any, is_default: bool) -> None:
        if is_default:
            given[key] = value
        else:
            owned[key] = (name, value)

    for name, key in _COOKIE_SETTINGS:
        value: Any = config.get(name, defaults.get(name))
        # As Werkzeug writes them: SameSite in title case, no leading dot (browsers ignore it).
        if key == "cookie_same_site":
            if not value:
                continue  # Flask's None sends no SameSite; session-core always sends one (Lax)
            value = value.title() if isinstance(value, str) else value
        elif key == "cookie_domain" and isinstance(value, str):
            value = value.lstrip(".")
        take(key, name, value, value == defaults.get(name))
    path = config.get("SESSION_COOKIE_PATH") or config.get("APPLICATION_ROOT") or "/"
    default_path = defaults.get("SESSION_COOKIE_PATH") or defaults.get("APPLICATION_ROOT") or "/"
    take("cookie_path", "SESSION_COOKIE_PATH (or APPLICATION_ROOT)", path, path == default_path)
    lifetime = _seconds(config.get("PERMANENT_SESSION_LIFETIME", app.permanent_session_lifetime))
    default_lifetime = _seconds(defaults["PERMANENT_SESSION_LIFETIME"])
    take("cookie_max_age", "PERMANENT_SESSION_LIFETIME", lifetime, lifetime == default_lifetime)
    return owned, given


def _config_from_app(app: Flask, settings: Mapping[str, Any]) -> SessionConfig:
    """The configuration for ``app``: ``SESSION_CORE`` and ``settings`` over Flask's settings."""
    from_app: Mapping[str, Any] = app.config.get("SESSION_CORE") or {}
    owned, given = _flask_settings(app)
    return framework_config(
        {**from_app, **settings},
        framework="Flask",
        setting_name='app.config["SESSION_CORE"]',
        framework_secret=app.secret_key,
        owned=owned,
        framework_defaults=given,
        framework_fallbacks=app.config.get("SECRET_KEY_FALLBACKS") or (),
    )


def _base_class_handler(app: Flask, error: Exception) -> Callable[[Any], Any] | None:
    """The handler the app registered (app-wide) for a base class of ``error``'s class.

    Flask looks for a handler class by class from the error's own, so the handler registered
    here for :class:`StoreUnreachableError` would hide one the app registered for a base class
    (``Exception``, ``ConnectionError``); this finds that one, through ``error_handler_spec``
    ({blueprint: {code: {class: handler}}}: a documented attribute, whose layout Flask's docs
    call internal; tests/test_flask.py's handler tests fail if it changes).
    """
    handlers = app.error_handler_spec.get(None, {}).get(None, {})
    for cls in type(error).__mro__[1:]:
        handler = handlers.get(cls)
        if handler is not None:
            return handler
    return None


class SessionCoreInterface(SessionInterface):
    """A Flask session interface that keeps sessions in a session-core store.

    Install it with :func:`init_app` (which also reads Flask's own settings), or yourself:
    ``app.session_interface = SessionCoreInterface(config)``. The store is built once, here.

    Args:
        config: the configuration; ``None`` builds one from ``settings`` and the environment.
        **settings: configuration keys, overriding ``config``.
    """

    pickle_based = False

    def __init__(self, config: SessionConfig | None = None, **settings: Any) -> None:
        self.config = resolve_config(config, settings)
        self.store = create_store(self.config)
        self.cookie = SessionCookie(self.config, self.store)
        # Set by init_app: re-reads the app's settings when it serves its first request.
        self._reread: Callable[[Flask], SessionConfig] | None = None
        self._lock = threading.Lock()

    def open_session(self, app: Flask, request: Request) -> FlaskSession:
        """A lazy session for this request: nothing is read until the app uses it."""
        if self._reread is not None:
            self._first_request(app)
        return self.cookie.new_session(
            request.environ.get("HTTP_COOKIE"), session_class=FlaskSession
        )

    def _first_request(self, app: Flask) -> None:
        """Take the settings the app has when it starts serving (an app may configure Flask
        after :func:`init_app`, as Flask's own session interface reads them per request)."""
        with self._lock:
            reread = self._reread
            if reread is None:
                return
            config = reread(app)
            if config != self.config:
                if _store_settings(config) != _store_settings(self.config):
                    old, self.store = self.store, create_store(config)
                    old.close()  # no request has used it yet
                self.config = config
                self.cookie = SessionCookie(config, self.store)
            self._reread = None

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Save what the request changed and add ``Set-Cookie`` and ``Vary`` to the response;
        a store that cannot be reached turns the response into the app's error response for
        it (by default ``503 Service Unavailable``)."""
        if not isinstance(session, FlaskSession):
            return
        try:
            headers = self._finish(app, session, response.status_code)
        except StoreUnreachableError as error:
            _replace(response, app.make_response(app.handle_user_exception(error)))
            return
        for name, value in headers:
            if name != "Vary":
                response.headers.add(name, value)
            elif "Vary" in response.headers:
                response.vary.add("Cookie")  # merged with the app's, once
            else:
                # What response.vary.add would give, for a hundredth of its cost (it parses
                # and rebuilds the header through a callback set).
                response.headers["Vary"] = "Cookie"

    def _finish(self, app: Flask, session: FlaskSession, status: int) -> list[tuple[str, str]]:
        if session.modified:
            session._changed = True
        elif (
            session.key is not None  # loaded, and live: checking costs no store call
            and status < 500
            and app.config.get("SESSION_REFRESH_EACH_REQUEST", True)
            and session.permanent
        ):
            # Flask re-sends a permanent session's cookie on each request; so that the server's
            # record lives as long as the cookie, the session is saved again (one write).
            session.mark_modified()
        return self.cookie.finish(session, status)

    def store_unreachable(self, error: StoreUnreachableError) -> ResponseReturnValue:
        """The error handler :func:`init_app` registers for
        :class:`~session_core.StoreUnreachableError`: the app's handler for a base class if it
        has one, else ``503 Service Unavailable`` with ``Retry-After`` (logged once)."""
        handler = _base_class_handler(current_app, error)
        if handler is not None:
            return current_app.ensure_sync(handler)(error)  # type: ignore[no-any-return]
        status, headers, body = store_unavailable(error)
        return current_app.response_class(body, status=status, headers=headers)


def _store_settings(config: SessionConfig) -> tuple[Any, ...]:
    """What the store is built from (the rest of the configuration is the cookie's)."""
    return (config.store, config.store_options, config.secret_keys)


def _replace(response: Response, replacement: Response) -> None:
    """Make ``response`` (which Flask will send) the ``replacement`` response instead."""
    response.status = replacement.status
    response.headers.clear()
    response.headers.extend(replacement.headers)
    response.set_data(replacement.get_data())


def init_app(
    app: Flask, config: SessionConfig | None = None, **settings: Any
) -> SessionCoreInterface:
    """Make ``flask.session`` use session-core; returns the installed interface.

    Without ``config``, settings are read from Flask's own session settings (see the module's
    notes), the TOML file named by ``SESSION_CORE_CONFIG``, ``SESSION_CORE_*`` environment
    variables, the mapping ``app.config["SESSION_CORE"]`` and ``settings``, each overriding the
    one before; a Flask setting the app changed must agree with them. With no ``secret_key`` in
    any of them, ``app.secret_key`` (at least 32 bytes) and ``SECRET_KEY_FALLBACKS`` are used.
    They are read now, and again when the app serves its first request. With ``config``, only
    ``config`` and ``settings`` are used.

    Also registers the error handler that answers ``503`` while the store is down, unless the
    app already has one for :class:`~session_core.StoreUnreachableError`.

    Raises:
        ConfigurationError: the configuration is invalid (at start-up, not at a request).
    """
    if config is None:
        interface = SessionCoreInterface(_config_from_app(app, settings))
        interface._reread = lambda app: _config_from_app(app, settings)
    else:
        interface = SessionCoreInterface(config, **settings)
    app.session_interface = interface
    app.extensions[EXTENSION_KEY] = interface
    if StoreUnreachableError not in app.error_handler_spec.get(None, {}).get(None, {}):
        app.register_error_handler(StoreUnreachableError, interface.store_unreachable)
    return interface


def sign_out_user(user_id: UserId, *, keep_current: bool = False) -> int:
    """Delete every session of ``user_id`` in the app's store and return how many went; with
    ``keep_current``, all but the current request's session (after a password change).

    Call it in a request of an app set up with :func:`init_app`. Without ``keep_current`` the
    current session is flushed too when it belongs to that user, so its cookie goes.

    Raises:
        ConfigurationError: the app's session interface is not session-core's.
        UserIndexUnsupportedError: the store keeps no index of sessions by user (the cookie
            store).
    """
    from flask import session

    interface = current_app.session_interface
    if not isinstance(interface, SessionCoreInterface):
        raise ConfigurationError(
            None, "sign_out_user() needs session-core's Flask session: call init_app(app) first"
        )
    current = session  # the proxy passes isinstance and attribute access through
    mine = isinstance(current, Session) and current.user_id is not None
    mine = mine and str(current.user_id) == str(user_id)  # type: ignore[attr-defined]
    keep = current.key if keep_current and mine else None  # type: ignore[attr-defined]
    revoked = sign_out(interface.store, user_id, keep=keep)
    if mine and not keep_current:
        current.flush()  # type: ignore[attr-defined]
    return revoked
