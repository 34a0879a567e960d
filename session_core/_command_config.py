"""The configuration a ``session-core`` command works on, and where it came from.

A command reads the session settings of an app (``--app module:app``, for Flask, Starlette,
FastAPI or any app wrapped in session-core's middleware), of a Django project (when
``DJANGO_SETTINGS_MODULE`` is set and no ``--config`` is given), or of the TOML file and the
``SESSION_CORE_*`` variables; then ``--store`` and ``--store-option`` change the store. Commands
that only remove records (``clear-expired``, and later ``sign-out``) need no secret key: the
secret signs cookies, which they never write.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .config import SessionConfig, layered_settings
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .store import SessionStore

__all__ = [
    "CommandConfig",
    "add_store_arguments",
    "load_command_config",
    "parse_store_options",
    "redact_url",
    "store_target",
]

_MAX_WRAPPERS = 32  # how deep --app follows ``.app`` through wrapping middleware


@dataclass(frozen=True, slots=True)
class CommandConfig:
    """The configuration a command runs with.

    Attributes:
        config: the validated configuration.
        source: where its settings came from, in words (``"app 'site:app' (Flask)"``).
        secret_given: False when no secret key was configured and a throwaway one stands in (for
            commands that write no cookie).
    """

    config: SessionConfig
    source: str
    secret_given: bool = True


def add_store_arguments(parser: argparse.ArgumentParser, *, what: str) -> None:
    """Add ``--app``, ``--store`` and ``--store-option`` to a command's parser."""
    parser.add_argument(
        "--app",
        metavar="MODULE:NAME",
        help="read the session settings of this app (Flask, Starlette, FastAPI, or an app "
        "wrapped in session-core's middleware), e.g. mysite.web:app; a Django project's "
        "settings are read when DJANGO_SETTINGS_MODULE is set and --config is not given",
    )
    parser.add_argument(
        "--store",
        help=f"the store to {what} (default: the configured one); another store than the "
        f"configured one starts with no store options",
    )
    parser.add_argument(
        "--store-option",
        action="append",
        metavar="NAME=VALUE",
        help="a store option, such as url=redis://127.0.0.1:6379/0 (repeatable); VALUE is "
        "read as JSON when it is JSON (true, 5, [..]), else as text",
    )


def parse_store_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``NAME=VALUE`` pairs as store options; each value is JSON when it parses, else text."""
    options: dict[str, Any] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(
                "store_options", f"--store-option {item!r}: write NAME=VALUE, such as url=..."
            )
        try:
            options[name.strip()] = json.loads(value)
        except ValueError:
            options[name.strip()] = value
    return options


def load_command_config(
    args: argparse.Namespace,
    *,
    needs_secret: bool = True,
    environ: Mapping[str, str] | None = None,
) -> CommandConfig:
    """The configuration for a command's ``args`` (``config``, and ``app``, ``store`` and
    ``store_option`` when the command has them).

    Raises:
        ConfigurationError: the settings are invalid, or ``--app`` names nothing usable.
    """
    env = os.environ if environ is None else environ
    app = getattr(args, "app", None)
    if app:
        settings, source = _settings_of(_app_config(app)), f"app {app!r}"
    elif args.config is None and env.get("DJANGO_SETTINGS_MODULE"):
        module = env["DJANGO_SETTINGS_MODULE"]
        settings, source = _settings_of(_django_config()), f"Django settings {module!r}"
    else:
        settings, source = layered_settings(args.config, env), _file_source(args.config, env)
    store = getattr(args, "store", None)
    if store is not None and store != settings.get("store", "cookie"):
        settings.pop("store_options", None)  # they belong to the configured store
    if store is not None:
        settings["store"] = store
    extra = parse_store_options(getattr(args, "store_option", None))
    if extra:
        settings["store_options"] = {**settings.get("store_options", {}), **extra}
    secret_given = settings.get("secret_key") is not None
    if not secret_given and not needs_secret:
        settings["secret_key"] = secrets.token_urlsafe(48)
    return CommandConfig(SessionConfig.from_mapping(settings), source, secret_given)


def redact_url(url: str) -> str:
    """``url`` without its password (``redis://:***@host``), for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def store_target(store: SessionStore, config: SessionConfig) -> str:
    """Where ``store`` keeps sessions, with no password: its ``target`` attribute (the db and
    redis stores have one), else its url option, else a description."""
    target = getattr(store, "target", None)
    if isinstance(target, str) and target:
        return target
    url = config.store_options.get("url")
    if isinstance(url, str):
        return redact_url(url)
    if store.local:
        return "the cookie itself (this store keeps sessions in the browser, no server)"
    name = store.name or config.store_name
    return f"the {name} store, as its options set it (it names no address)"


def _file_source(path: str | None, env: Mapping[str, str]) -> str:
    file = path or env.get("SESSION_CORE_CONFIG")
    return f"{file} and SESSION_CORE_* variables" if file else "SESSION_CORE_* variables"


def _settings_of(config: SessionConfig) -> dict[str, Any]:
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    settings["store_options"] = dict(config.store_options)
    return settings


# ---------------------------------------------------------------------- apps


def _app_config(spec: str) -> SessionConfig:
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise ConfigurationError(None, f"--app {spec!r}: write MODULE:NAME, such as mysite:app")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `flask --app` and uvicorn find the app's module
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            None,
            f"--app {spec!r}: cannot import {module_name!r} ({exc}); run the command from "
            f"the app's folder, or set PYTHONPATH",
        ) from exc
    name = attribute or "app"
    if not hasattr(module, name):
        raise ConfigurationError(None, f"--app {spec!r}: {module_name} has no {name!r}")
    found = _find_config(getattr(module, name))
    if found is None:
        raise ConfigurationError(
            None,
            f"--app {spec!r}: found no session-core configuration in it; it must use "
            f"session_core.integrations.flask.init_app, or session-core's SessionMiddleware "
            f"(Starlette's add_middleware, or wrapping the app)",
        )
    return found


def _find_config(app: Any) -> SessionConfig | None:
    for _ in range(_MAX_WRAPPERS):
        found = _own_config(app)
        if found is None:
            found = _flask_config(app)
        if found is None:
            found = _starlette_config(app)
        if found is not None or getattr(app, "app", None) is None:
            return found
        app = app.app  # a middleware around the app
    return None


def _own_config(app: Any) -> SessionConfig | None:
    # session_core.wsgi and session_core.asgi middleware, as an app or around one.
    config = getattr(app, "config", None)
    return config if isinstance(config, SessionConfig) else None


def _flask_config(app: Any) -> SessionConfig | None:
    extensions = getattr(app, "extensions", None)
    interface = extensions.get("session_core") if isinstance(extensions, dict) else None
    if interface is None:
        interface = getattr(app, "session_interface", None)
    config = getattr(interface, "config", None)
    return config if isinstance(config, SessionConfig) else None


def _starlette_config(app: Any) -> SessionConfig | None:
    # Starlette builds its middleware stack at the first request; until then the session
    # middleware is only described in user_middleware: build it once to read its settings.
    for middleware in getattr(app, "user_middleware", None) or ():
        cls = getattr(middleware, "cls", None)
        if not isinstance(cls, type) or not cls.__module__.startswith("session_core"):
            continue
        built = cls(_no_app, *middleware.args, **middleware.kwargs)
        store = getattr(built, "store", None)
        if store is not None:
            store.close()
        config = getattr(built, "config", None)
        if isinstance(config, SessionConfig):
            return config
    return None


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    """Stands in for the app under a middleware built only to read its settings."""


def _django_config() -> SessionConfig:
    try:
        import django
    except ImportError:
        raise ConfigurationError(
            None,
            "DJANGO_SETTINGS_MODULE is set but Django is not installed; unset it, or pass "
            "--config FILE",
        ) from None
    django.setup()
    from .integrations import django as integration

    config = integration.backend().config
    integration.reset()  # closes the backend's store: the command builds its own
    return config
