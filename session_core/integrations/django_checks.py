"""Django system checks for session-core: ``manage.py check`` validates ``SESSION_CORE``.

Add the module to ``INSTALLED_APPS`` (it has no models, migrations or templates)::

    INSTALLED_APPS = [..., "session_core.integrations.django_checks"]

``manage.py check`` (and ``runserver``, ``migrate``, every command that runs the checks) then
reports, with session-core's own message instead of a traceback at start-up:

- ``session_core.E001``: ``SESSION_CORE`` or the Django settings it takes are invalid, or the
  store refuses its ``store_options``.
- ``session_core.E002``: the configured store is not installed, or failed to load.
- ``session_core.W001``: ``SESSION_CORE`` is set but ``SESSION_ENGINE`` is not session-core's.
- ``session_core.W002``: ``MIDDLEWARE`` has Django's ``SessionMiddleware`` instead of
  session-core's, so a store outage gives a 500 instead of a 503.
- ``session_core.W003``: ``SESSION_SERIALIZER`` names another serializer than Django's JSON one;
  session-core does not use it (sessions hold JSON values only).

No check connects to the store's server: checks run in build steps and on machines with no
network.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from ..errors import ConfigurationError, SessionCoreError

__all__ = ["ENGINE", "MIDDLEWARE", "check_session_core"]

ENGINE = "session_core.integrations.django"
"""The ``SESSION_ENGINE`` value of the integration."""

MIDDLEWARE = "session_core.integrations.django.SessionMiddleware"
"""The ``MIDDLEWARE`` entry of the integration's session middleware."""

_DJANGO_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
_JSON_SERIALIZER = "django.contrib.sessions.serializers.JSONSerializer"


def check_session_core(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Validate the session-core settings of this Django project: build the configuration and
    the store as the server would (without connecting to it), and look at ``MIDDLEWARE``."""
    if settings.SESSION_ENGINE != ENGINE:
        if getattr(settings, "SESSION_CORE", None) is None:
            return []
        return [
            checks.Warning(
                f"settings.SESSION_CORE is set, but SESSION_ENGINE is "
                f"{settings.SESSION_ENGINE!r}, so it is not used",
                hint=f"set SESSION_ENGINE = {ENGINE!r}",
                id="session_core.W001",
            )
        ]
    return [*_check_backend(), *_check_middleware(), *_check_serializer()]


checks.register(check_session_core, "session_core")


def _check_backend() -> list[checks.CheckMessage]:
    try:
        # Imported here: importing the engine builds the store, which is what is checked.
        from . import django as engine

        engine.backend()
    except ConfigurationError as error:
        return [checks.Error(str(error), id="session_core.E001")]
    except SessionCoreError as error:
        return [checks.Error(str(error), id="session_core.E002")]
    return []


def _check_middleware() -> list[checks.CheckMessage]:
    from .django_middleware import SessionMiddleware

    for entry in settings.MIDDLEWARE:
        try:
            found = import_string(entry)
        except (ImportError, SessionCoreError):  # reported by Django, or by _check_backend
            continue
        if isinstance(found, type) and issubclass(found, SessionMiddleware):
            return []
    if _DJANGO_MIDDLEWARE not in settings.MIDDLEWARE:
        return []  # no session middleware: Django's admin and auth checks say so
    return [
        checks.Warning(
            "MIDDLEWARE has Django's SessionMiddleware: while the session store is down, "
            "visitors get a 500 error page instead of a 503 with Retry-After",
            hint=f"replace {_DJANGO_MIDDLEWARE!r} with {MIDDLEWARE!r}",
            id="session_core.W002",
        )
    ]


def _check_serializer() -> list[checks.CheckMessage]:
    if settings.SESSION_SERIALIZER == _JSON_SERIALIZER:
        return []
    return [
        checks.Warning(
            f"SESSION_SERIALIZER is {settings.SESSION_SERIALIZER!r}, which session-core does not "
            f"use: sessions hold JSON values only, and saving any other value raises TypeError",
            hint="store JSON values (convert dates, decimals and the like to strings) and "
            "remove SESSION_SERIALIZER",
            id="session_core.W003",
        )
    ]
