"""The database drivers the db store picks, and what it knows of each: which one a URL gets,
the async driver to pair with it, the argument that bounds connecting, the pip command.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from importlib.util import find_spec
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from session_core import ConfigurationError

__all__ = [
    "CONNECT_TIMEOUTS",
    "async_url_for",
    "backend",
    "check_connect_args",
    "install_hint",
    "loaded_dialect",
    "queue_pooled",
    "sync_url_for",
]

# The driver used for a URL that names none, per backend (SQLAlchemy's own defaults,
# psycopg2 and mysqlclient, need C builds; these install from wheels everywhere).
_SYNC_DRIVERS = {"postgresql": "psycopg", "sqlite": "pysqlite", "mysql": "pymysql"}

# Async drivers, in order of preference, per backend: (URL driver name, module to import).
_ASYNC_DRIVERS = {
    "postgresql": (("asyncpg", "asyncpg"), ("psycopg_async", "psycopg")),
    "sqlite": (("aiosqlite", "aiosqlite"),),
    "mysql": (("aiomysql", "aiomysql"), ("asyncmy", "asyncmy")),
}
_ASYNC_DRIVER_NAMES = frozenset({"asyncpg", "psycopg_async", "aiosqlite", "aiomysql", "asyncmy"})

_HINTS = {
    "postgresql": "pip install 'session-core-db[postgresql]'",
    "mysql": "pip install 'session-core-db[mariadb]'",
}


def backend(url: URL) -> str:
    name = url.get_backend_name()
    return "mysql" if name == "mariadb" else name


def _installed(module: str) -> bool:
    return find_spec(module) is not None


def sync_url_for(url: URL) -> URL:
    """``url`` with a sync driver: the one it names, else the backend's default."""
    driver = url.drivername.partition("+")[2]
    if driver and driver not in _ASYNC_DRIVER_NAMES:
        return url
    default = _SYNC_DRIVERS.get(backend(url))
    return url.set(drivername=f"{url.get_backend_name()}+{default}") if default else url


def async_url_for(url: URL) -> URL | None:
    """``url`` with an installed async driver, or ``None`` when there is none (or no greenlet,
    which SQLAlchemy's asyncio extension needs)."""
    if not _installed("greenlet"):
        return None
    driver = url.drivername.partition("+")[2]
    if driver in _ASYNC_DRIVER_NAMES:
        return url
    for name, module in _ASYNC_DRIVERS.get(backend(url), ()):
        if _installed(module):
            return url.set(drivername=f"{url.get_backend_name()}+{name}")
    return None


def loaded_dialect(url: URL) -> Any:
    try:
        return url.get_dialect()
    except sa.exc.NoSuchModuleError:  # a driver SQLAlchemy does not know: the engine says so
        return None


def _connect_function(url: URL) -> Callable[..., Any] | None:
    """The driver's own ``connect()`` for ``url`` (under SQLAlchemy's adapter, for async
    drivers), or ``None`` when it cannot be loaded (the engine's creation says so)."""
    try:
        dbapi = url.get_dialect().import_dbapi()
    except (ImportError, sa.exc.NoSuchModuleError):
        return None
    for module in ("asyncpg", "aiomysql", "asyncmy", "aiosqlite"):
        adapted = getattr(dbapi, module, None)
        if adapted is not None:
            return getattr(adapted, "connect", None)
    return getattr(dbapi, "connect", None)


def check_connect_args(url: URL, connect_args: Mapping[str, Any]) -> None:
    """Refuse ``connect_args`` the driver of ``url`` does not take: it would fail every connect,
    from the first request on. Drivers that take any keyword (psycopg, aiosqlite) are left to
    check them when connecting."""
    connect = _connect_function(url)
    if connect is None or not connect_args:
        return
    try:
        parameters = inspect.signature(connect).parameters.values()
    except (TypeError, ValueError):  # a builtin (sqlite3.connect) without a signature
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    taken = {p.name for p in parameters}
    unknown = sorted(set(connect_args) - taken)
    if unknown:
        driver = url.get_driver_name()
        raise ConfigurationError(
            "store_options",
            f"connect_args: {driver} does not take {', '.join(map(repr, unknown))}"
            + (
                "; the async engine gets the same connect_args: give it its own with "
                "async_engine, or set native_async = false"
                if url.get_dialect().is_async
                else ""
            ),
        )


CONNECT_TIMEOUTS = {
    "psycopg": "connect_timeout",
    "psycopg2": "connect_timeout",
    "psycopg_async": "connect_timeout",
    "asyncpg": "timeout",
    "pymysql": "connect_timeout",
    "mysqldb": "connect_timeout",
    "aiomysql": "connect_timeout",
    "asyncmy": "connect_timeout",
}
"""The ``connect()`` argument bounding how long connecting may take, per driver."""


def install_hint(url: URL) -> str:
    """The pip command that installs the driver for ``url``'s database."""
    return _HINTS.get(backend(url), "pip install the database's driver")


def queue_pooled(url: URL) -> bool:
    """Whether an engine for ``url`` gets a queue pool by default (the only kind that takes
    ``pool_use_lifo``; SQLAlchemy 2.0 gives aiosqlite files a ``NullPool``)."""
    try:
        dialect: Any = url.get_dialect()
    except (ImportError, sa.exc.NoSuchModuleError):  # the engine's creation says so
        return False
    pool_class = getattr(dialect, "get_pool_class", None)  # DefaultDialect's, so every dialect's
    return pool_class is not None and issubclass(pool_class(url), sa.pool.QueuePool)
