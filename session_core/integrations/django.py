"""Django integration: a session engine, so ``request.session`` uses any session-core store.

In ``settings.py``::

    INSTALLED_APPS = [..., "session_core.integrations.django_checks"]  # manage.py check
    MIDDLEWARE = [..., "session_core.integrations.django.SessionMiddleware", ...]
    SESSION_ENGINE = "session_core.integrations.django"
    SESSION_CORE = {"store": "redis", "store_options": {"url": "redis://127.0.0.1:6379/0"}}

:class:`SessionMiddleware` is Django's own (it reads the cookie, calls this engine's
:class:`SessionStore`, and writes the cookie), plus a ``503`` with ``Retry-After`` while the store
is down; Django's ``django.contrib.sessions.middleware.SessionMiddleware`` works too, with
Django's 500 page then. So that the two always agree, the cookie and lifetime settings are
Django's: session-core's ``cookie_name``, ``cookie_path``, ``cookie_domain``, ``cookie_secure``,
``cookie_http_only``, ``cookie_same_site``, ``cookie_max_age`` and ``save_every_request`` are taken
from ``SESSION_COOKIE_NAME``, ``SESSION_COOKIE_PATH``, ``SESSION_COOKIE_DOMAIN``,
``SESSION_COOKIE_SECURE``, ``SESSION_COOKIE_HTTPONLY``, ``SESSION_COOKIE_SAMESITE``,
``SESSION_COOKIE_AGE`` and ``SESSION_SAVE_EVERY_REQUEST``, and giving a different value for them in
``SESSION_CORE`` (or ``SESSION_CORE_*`` variables) is an error. ``SESSION_EXPIRE_AT_BROWSER_CLOSE``
and ``set_expiry`` work as in Django. Django's middleware cannot write a ``Partitioned`` cookie,
so ``cookie_partitioned`` is refused.

``SESSION_CORE`` holds the other settings (``store``, ``store_options``, ``secret_key``,
``fallback_secret_keys``), over the TOML file named by ``SESSION_CORE_CONFIG`` and
``SESSION_CORE_*`` environment variables. With no ``secret_key``, Django's ``SECRET_KEY`` is used
if it has at least 32 bytes, and then ``SECRET_KEY_FALLBACKS`` are the fallback keys, so rotating
keys the way Django documents keeps everyone signed in. The store is built once per process, when
this module is first imported with settings configured (so a bad configuration stops the server
at start-up; ``manage.py check`` reports it with :mod:`~session_core.integrations.django_checks`),
and again if those settings change (as ``override_settings`` does in tests).

What this engine adds to Django's built-in ones: only the keys a request changed are written, so
concurrent requests that change different keys both keep their change; the server record is
never created for a visitor who writes nothing; keys are kept hashed at rest by server stores; a
cookie-store session that outgrows the 4 KB browser limit is an error instead of a cookie the
browser silently drops. Values must be JSON (Django's default serializer says the same).
``manage.py clearsessions`` calls the store's cleanup.

Sessions per user: a session is bound to the user ``django.contrib.auth.login`` puts in it
(``_auth_user_id``, Django's primary key as text), so a store with ``indexes_users`` (redis) lists
and revokes a user's sessions: ``backend().store.sessions_of(user.pk)``. The login's save then
moves the session to a new key bound to the user (one more store call, at login only). Opt-in
helpers: :func:`update_session_auth_hash`, a drop-in for Django's that also signs the user out of
every other session when their password changes, and :func:`sign_out_user` (a compromised
account: every session, from a view, a shell or an admin action).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import django
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core.signals import setting_changed

from .._http import SessionCookie
from ..config import SessionConfig
from ..errors import ConfigurationError, StoreUnreachableError
from ..events import EventEmitter, EventKind
from ..registry import create_store
from ..session import check_json_value
from ..store import Changes, SessionData, SessionRecord, UserId
from ..store import SessionStore as CoreStore
from ..users import sign_out
from . import framework_config
from .django_middleware import SessionMiddleware

__all__ = [
    "Backend",
    "SessionMiddleware",
    "SessionStore",
    "backend",
    "reset",
    "sign_out_user",
    "update_session_auth_hash",
]

_AUTH_USER = "_auth_user_id"  # django.contrib.auth.SESSION_KEY, without importing auth

_P = ParamSpec("_P")
_T = TypeVar("_T")

_OWN_SETTINGS = frozenset(
    {
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "SESSION_CORE",
        "SESSION_COOKIE_NAME",
        "SESSION_COOKIE_PATH",
        "SESSION_COOKIE_DOMAIN",
        "SESSION_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE",
        "SESSION_COOKIE_AGE",
        "SESSION_SAVE_EVERY_REQUEST",
    }
)


class Backend:
    """The configuration, store and cookie writer shared by every request of the process.

    Attributes:
        config: the session-core configuration, with Django's cookie settings in it.
        store: the session-core store.
        cookie: the cookie writer, used to check the size of cookie-store cookies.
        events: what reports store calls to plugins observing session events (``None`` when
            none does).
    """

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.store: CoreStore = create_store(config)
        self.cookie = SessionCookie(config, self.store)
        self.events = self.cookie.events


def _config_from_settings() -> SessionConfig:
    same_site = settings.SESSION_COOKIE_SAMESITE
    owned: dict[str, tuple[str, Any]] = {
        "cookie_name": ("SESSION_COOKIE_NAME", settings.SESSION_COOKIE_NAME),
        "cookie_path": ("SESSION_COOKIE_PATH", settings.SESSION_COOKIE_PATH),
        "cookie_domain": ("SESSION_COOKIE_DOMAIN", settings.SESSION_COOKIE_DOMAIN),
        "cookie_secure": ("SESSION_COOKIE_SECURE", bool(settings.SESSION_COOKIE_SECURE)),
        "cookie_http_only": ("SESSION_COOKIE_HTTPONLY", bool(settings.SESSION_COOKIE_HTTPONLY)),
        "cookie_max_age": ("SESSION_COOKIE_AGE", settings.SESSION_COOKIE_AGE),
        "save_every_request": (
            "SESSION_SAVE_EVERY_REQUEST",
            bool(settings.SESSION_SAVE_EVERY_REQUEST),
        ),
    }
    if same_site:  # Django allows no SameSite attribute at all (False or None)
        owned["cookie_same_site"] = ("SESSION_COOKIE_SAMESITE", same_site)
    given = getattr(settings, "SESSION_CORE", None) or {}
    if isinstance(given, SessionConfig) or not isinstance(given, Mapping):
        raise ConfigurationError(
            None,
            "settings.SESSION_CORE must be a dict of session-core settings, such as "
            "{'store': 'redis', 'store_options': {'url': 'redis://127.0.0.1:6379/0'}}",
        )
    if given.get("cookie_partitioned"):
        raise ConfigurationError(
            "cookie_partitioned",
            "under Django, its SessionMiddleware writes the session cookie, and Django "
            f"{django.get_version()} cannot add the Partitioned attribute to it; remove "
            "cookie_partitioned from settings.SESSION_CORE",
        )
    return framework_config(
        given,
        framework="Django",
        setting_name="settings.SESSION_CORE",
        framework_secret=getattr(settings, "SECRET_KEY", None),
        framework_fallbacks=getattr(settings, "SECRET_KEY_FALLBACKS", ()),
        owned=owned,
    )


_backend: Backend | None = None
_lock = threading.Lock()


def backend() -> Backend:
    """The process's :class:`Backend`, built from Django's settings on first use.

    Raises:
        ConfigurationError: the settings are invalid.
        StoreNotFoundError: no installed store has the configured name.
    """
    global _backend
    current = _backend
    if current is None:
        with _lock:
            if _backend is None:
                _backend = Backend(_config_from_settings())
            current = _backend
    return current


def reset() -> None:
    """Close the store and forget the backend, so the next request builds it from the current
    settings. Called when a setting it depends on changes."""
    global _backend
    with _lock:
        old, _backend = _backend, None
    if old is not None:
        old.store.close()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in _OWN_SETTINGS:
        reset()


setting_changed.connect(_on_setting_changed, dispatch_uid="session_core.integrations.django")


def _dumps(value: object, key: str) -> str:
    """``value`` as JSON text, or the core's TypeError for a value no store can keep.

    ``json.dumps`` judges first, as Django's JSONSerializer does (so a tuple is kept as a list
    and an int dict key as text); what it refuses, or what UTF-8 cannot encode, gets the core's
    own check and message (:func:`session_core.session.check_json_value`).
    """
    try:
        text = json.dumps(
            value, separators=(",", ":"), sort_keys=True, allow_nan=False, ensure_ascii=False
        )
    except (TypeError, ValueError) as exc:
        with contextlib.suppress(RecursionError):  # a value that holds itself
            check_json_value(value, key, name="request.session")
        raise TypeError(f"request.session[{key!r}]: {exc}") from None
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): the core says where
        check_json_value(json.loads(text), key, name="request.session")
        raise  # not reached: the check refuses what UTF-8 cannot encode
    return text


class SessionStore(SessionBase):  # type: ignore[misc]
    """Django's session API (``request.session``) over the configured session-core store.

    Django's expiry setting (``set_expiry``) is kept in the data, as in Django's own engines, and
    also decides how long the store keeps the record.
    """

    _session_key: str | None  # Django's validating property, declared for the type checker

    def __init__(self, session_key: str | None = None) -> None:
        self._backend = backend()
        self._snapshot: dict[str, str] = {}
        self._version: object = None
        super().__init__(session_key)

    # ------------------------------------------------------------------ reading

    def load(self) -> SessionData:
        """The stored data for this key; an unknown or expired key is dropped, never adopted."""
        key = self.session_key
        record = self._backend.store.load(key) if key else None
        if record is None:
            self._session_key = None
            self._snapshot = {}
            self._version = None
            return {}
        self._version = record.version
        self._snapshot = {k: _dumps(v, k) for k, v in record.data.items()}
        return record.data

    def exists(self, session_key: str) -> bool:
        """Whether a live record is stored under ``session_key``; always false for the cookie
        store, which stores nothing on the server (as Django's ``signed_cookies`` engine)."""
        store = self._backend.store
        return bool(session_key) and not store.local and store.load(session_key) is not None

    # ------------------------------------------------------------------ writing

    def _record(self, data: SessionData) -> tuple[SessionRecord, dict[str, str]]:
        dumped = {k: _dumps(v, k) for k, v in data.items()}
        # Django's set_expiry(0) ends the cookie at browser close; the record then lives
        # SESSION_COOKIE_AGE, as get_expiry_age() says.
        age: int = self.get_expiry_age(expiry=data.get("_session_expiry"))
        user = data.get(_AUTH_USER)
        record = SessionRecord(
            data={k: json.loads(v) for k, v in dumped.items()},
            expires_at=time.time() + age,
            version=self._version,
            user_id=user if isinstance(user, str | int) and not isinstance(user, bool) else None,
        )
        return record, dumped

    def _adopt(self, key: str, record: SessionRecord, dumped: dict[str, str]) -> None:
        self._check_cookie_size(key)
        self._session_key = key
        self._version = record.version
        self._snapshot = dumped

    def _check_cookie_size(self, key: str) -> None:
        if self._backend.store.local:  # the key is the data: it must fit in a cookie
            expire_at_close = self.get_expire_at_browser_close()
            max_age = None if expire_at_close else self.get_expiry_age()
            self._backend.cookie.set_cookie_header(key, max_age)

    def save(self, must_create: bool = False) -> None:
        """Write the session. With no key yet, or ``must_create``, a new record is made under a
        fresh key (as :meth:`create` does, so Django's middleware then sends its cookie);
        otherwise only the keys this request changed are merged into the stored ones.

        Raises:
            UpdateError: the session was deleted meanwhile (a sign-out in another request); it
                is not brought back, and Django's ``SessionMiddleware`` answers
                ``SessionInterrupted`` (400).
            CookieTooLargeError: a cookie-store session outgrew the browser's cookie limit.
        """
        key = self.session_key
        if key is None or must_create:
            self.create()
            return
        data = self._get_session()
        record, dumped = self._record(data)
        if record.user_id is not None and self._snapshot.get(_AUTH_USER) != dumped[_AUTH_USER]:
            # Signed in by this request: a session is bound to its user when it gets a key
            # (the store indexes it then), so it moves to a new one, as login's cycle_key did.
            self._adopt(self._backend.store.cycle_key(key, record), record, dumped)
            self.modified = True
            return
        changes = Changes(
            updated=frozenset(k for k, v in dumped.items() if self._snapshot.get(k) != v),
            deleted=frozenset(self._snapshot.keys() - dumped.keys()),
        )
        store, events = self._backend.store, self._backend.events
        if events is None:
            new_key = store.save(key, record, changes)
        else:
            new_key = self._observed(events, EventKind.SAVED, key, store.save, key, record, changes)
        if new_key is None:
            raise UpdateError
        self._adopt(new_key, record, dumped)

    def create(self) -> None:
        """Save the current data under a new key, and mark the session modified so that the
        key reaches the browser (what Django's own engines do)."""
        data = self._get_session(no_load=True)
        record, dumped = self._record(data)
        store, events, changes = (
            self._backend.store,
            self._backend.events,
            Changes.everything(record),
        )
        if events is None:
            new_key = store.save(None, record, changes)
        else:
            new_key = self._observed(
                events, EventKind.CREATED, None, store.save, None, record, changes
            )
        if new_key is None:  # pragma: no cover - a create always returns a key
            raise CreateError
        self._adopt(new_key, record, dumped)
        self.modified = True

    def cycle_key(self) -> None:
        """Move the data to a new key and delete the old record at once (call it at login;
        ``django.contrib.auth.login`` does)."""
        data = self._session
        old = self.session_key
        if old is None:  # nothing stored yet: the first save makes a fresh key anyway
            self.modified = True
            return
        record, dumped = self._record(data)
        store, events = self._backend.store, self._backend.events
        if events is None:
            new_key = store.cycle_key(old, record)
        else:
            new_key = self._observed(events, EventKind.CYCLED, old, store.cycle_key, old, record)
        self._adopt(new_key, record, dumped)
        self.modified = True

    def delete(self, session_key: str | None = None) -> None:
        """Delete the record under ``session_key`` (default: this session's)."""
        key = session_key if session_key is not None else self.session_key
        if key:
            store, events = self._backend.store, self._backend.events
            if events is None:
                store.delete(key)
            else:
                self._observed(events, EventKind.FLUSHED, key, store.delete, key)
        if key is not None and key == self.session_key:
            self._snapshot = {}
            self._version = None

    def _observed(
        self,
        events: EventEmitter,
        kind: EventKind,
        key: str | None,
        call: Callable[_P, _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """``call(*args)``, the store call on ``key``, reported to ``events`` as ``kind`` (a
        ``created``, ``saved`` or ``cycled`` event names the key it returned; a save that
        found the session deleted reports nothing), or as ``store_error`` if the store is
        unreachable."""
        user_id: str | int | None = getattr(self, "user_id", None)
        started = time.perf_counter()
        try:
            result = call(*args, **kwargs)
        except StoreUnreachableError:
            events.emit(EventKind.STORE_ERROR, key, user_id, started)
            raise
        if kind is EventKind.FLUSHED:
            events.emit(kind, key, user_id, started)
        elif isinstance(result, str):
            events.emit(kind, result, user_id, started)
        return result

    async def acycle_key(self) -> None:
        """Async twin of :meth:`cycle_key`."""
        await sync_to_async(self.cycle_key)()

    @classmethod
    def clear_expired(cls) -> None:
        """Remove expired records from the store (``manage.py clearsessions``); nothing to do
        for stores whose records expire by themselves."""
        backend().store.clear_expired()


def _build_at_import() -> None:
    # A bad configuration stops the server when Django's SessionMiddleware imports this engine.
    if settings.configured:
        backend()


_build_at_import()


# ---------------------------------------------------------------------- sessions per user


def sign_out_user(user_id: UserId, *, keep: str | None = None) -> int:
    """Delete every session of the user with primary key ``user_id`` (``user.pk``) but the one
    whose key is ``keep`` (``request.session.session_key`` to keep the current one), and return
    how many went. Their next request is anonymous.

    Raises:
        UserIndexUnsupportedError: the configured store keeps no index of sessions by user (the
            cookie store).
    """
    return sign_out(backend().store, user_id, keep=keep)


def update_session_auth_hash(request: Any, user: Any) -> int:
    """Django's ``update_session_auth_hash`` (call it after a password change, so the current
    session stays signed in), which also deletes every other session of the user, as people
    expect when they change a password. Returns how many sessions went.

    Django's own only invalidates the other sessions when they are next used; this removes them
    from the store at once. Opt-in: import this one instead of Django's.

    Raises:
        UserIndexUnsupportedError: the configured store keeps no index of sessions by user.
    """
    from django.contrib.auth import update_session_auth_hash as update

    update(request, user)  # cycles the current session's key, still bound to the user
    return sign_out_user(user.pk, keep=request.session.session_key)
