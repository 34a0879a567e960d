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
mapping of JSON values, saved only when changed) that Flask can use. Flask's attributes map as
follows:

- ``session.modified``: true when there is something to save. Setting it to ``True`` (after
  changing a list or dict in place) rewrites every key; setting ``False`` does nothing.
- ``session.permanent``: true unless the session ends when the browser closes. Sessions last
  ``cookie_max_age`` (two weeks) by default, so they start out permanent; ``session.permanent =
  False`` is ``set_expiry(0)`` and ``True`` is ``set_expiry(None)``.
- ``session.new``: true when the visitor brought no live session.
- Tuples are stored as lists (JSON has no tuple), so ``flask.flash()`` works.
- ``session.accessed``: true when the request read or wrote the session (it then varies by
  cookie). Flask sets it when the ``session`` proxy is touched; that is ignored, since only real
  reads and writes count.

The cookie is written exactly as by the WSGI and ASGI middlewares, from session-core's settings;
Flask's ``SESSION_COOKIE_*``, ``PERMANENT_SESSION_LIFETIME`` and ``SESSION_REFRESH_EACH_REQUEST``
settings are not read (their session-core names are ``cookie_*``, ``cookie_max_age`` and
``save_every_request``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask.sessions import SessionInterface, SessionMixin

from .._http import SessionCookie, resolve_config
from ..config import SessionConfig
from ..registry import create_store
from ..session import Session
from . import framework_config

if TYPE_CHECKING:
    from flask import Flask
    from flask.wrappers import Request, Response

__all__ = ["EXTENSION_KEY", "FlaskSession", "SessionCoreInterface", "init_app"]

EXTENSION_KEY = "session_core"
"""Where :func:`init_app` keeps the interface, in ``app.extensions``."""


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


class FlaskSession(Session, SessionMixin):
    """The session Flask hands out as ``flask.session``: a :class:`~session_core.Session` with
    Flask's ``permanent``, ``new``, ``modified`` and ``accessed`` attributes.

    Tuples are stored as lists, as JSON has no tuples; so ``flask.flash()``, which stores
    ``(category, message)`` pairs, works.
    """

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, _untuple(value))

    @property
    def permanent(self) -> bool:
        """Whether the session outlives the browser (see the module's notes)."""
        self.load()
        return not self.expire_at_browser_close

    @permanent.setter
    def permanent(self, value: bool) -> None:
        if bool(value) != self.permanent:
            self.set_expiry(None if value else 0)

    @property
    def new(self) -> bool:  # type: ignore[override]
        """Whether the visitor brought no live session (nothing saved yet)."""
        self.load()
        return self.key is None

    @property
    def modified(self) -> bool:
        """Whether there are changes to save; set it to ``True`` to save every key."""
        return super().modified

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


class SessionCoreInterface(SessionInterface):
    """A Flask session interface that keeps sessions in a session-core store.

    Install it with :func:`init_app`, or yourself: ``app.session_interface =
    SessionCoreInterface(config)``. The store is built once, here.

    Args:
        config: the configuration; ``None`` builds one from ``settings`` and the environment.
        **settings: configuration keys, overriding ``config``.
    """

    pickle_based = False

    def __init__(self, config: SessionConfig | None = None, **settings: Any) -> None:
        self.config = resolve_config(config, settings)
        self.store = create_store(self.config)
        self.cookie = SessionCookie(self.config, self.store)

    def open_session(self, app: Flask, request: Request) -> FlaskSession:
        """A lazy session for this request: nothing is read until the app uses it."""
        return self.cookie.new_session(
            request.environ.get("HTTP_COOKIE"), session_class=FlaskSession
        )

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Save what the request changed and add ``Set-Cookie`` and ``Vary`` to the response."""
        if not isinstance(session, Session):
            return
        for name, value in self.cookie.finish(session, response.status_code):
            if name != "Vary":
                response.headers.add(name, value)
            elif "Vary" in response.headers:
                response.vary.add("Cookie")  # merged with the app's, once
            else:
                # What response.vary.add would give, for a hundredth of its cost (it parses
                # and rebuilds the header through a callback set).
                response.headers["Vary"] = "Cookie"


def init_app(
    app: Flask, config: SessionConfig | None = None, **settings: Any
) -> SessionCoreInterface:
    """Make ``flask.session`` use session-core; returns the installed interface.

    Without ``config``, settings are read from the TOML file named by ``SESSION_CORE_CONFIG``,
    ``SESSION_CORE_*`` environment variables, the mapping ``app.config["SESSION_CORE"]`` and
    ``settings``, each overriding the one before; with no ``secret_key`` in any of them,
    ``app.secret_key`` is used if it has at least 32 bytes.

    Raises:
        ConfigurationError: the configuration is invalid (at start-up, not at a request).
    """
    if config is None:
        from_app: Mapping[str, Any] = app.config.get("SESSION_CORE") or {}
        config = framework_config(
            {**from_app, **settings},
            framework="Flask",
            setting_name='app.config["SESSION_CORE"]',
            framework_secret=app.secret_key,
        )
    else:
        config = resolve_config(config, settings)
    interface = SessionCoreInterface(config)
    app.session_interface = interface
    app.extensions[EXTENSION_KEY] = interface
    return interface
