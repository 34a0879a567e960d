"""The db store's settings: validation of ``store_options`` and the choice of drivers.

Every problem is a :class:`session_core.ConfigurationError` raised when the store is built, at
start-up, never at the first request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from session_core import ConfigurationError
from session_core.hints import unknown_option

from .drivers import (
    CONNECT_TIMEOUTS,
    async_url_for,
    backend,
    check_connect_args,
    install_hint,
    loaded_dialect,
    queue_pooled,
    sync_url_for,
)
from .schema import DEFAULT_TABLE_NAME

if TYPE_CHECKING:  # SQLAlchemy's asyncio extension imports only with greenlet installed
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "DEFAULT_SQLITE_FILE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "Settings",
    "async_url_for",
    "sync_url_for",
]

DEFAULT_SQLITE_FILE = "session_core_sessions.sqlite3"
"""The SQLite file used when no ``url`` is given, relative to the working directory."""

DEFAULT_URL = f"sqlite:///{DEFAULT_SQLITE_FILE}"
"""The database URL used when no ``url`` (and no ``engine``) is given."""

DEFAULT_TIMEOUT = 10.0
"""Seconds a statement may take by default (the ``timeout`` option)."""

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,48}$")
"""49 characters at most: the index is ``ix_<table>_expires_at``, and PostgreSQL cuts names at
63 characters (MySQL and MariaDB refuse those over 64)."""

_MOST_ROWS = 2**31 - 1
"""The largest LIMIT every database takes."""

_NOT_SQL = {"redis", "rediss", "valkey", "valkeys", "unix", "memcached", "mongodb", "http", "https"}


def _check(key: str, value: Any, kinds: tuple[type, ...], wanted: str) -> None:
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise ConfigurationError("store_options", f"{key} must be {wanted}, not {value!r}")


_EXAMPLE = "write it like 'postgresql+psycopg://user:password@host:5432/dbname'"


def _parse_url(key: str, value: str | URL) -> URL:
    try:
        url = sa.make_url(value)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(
            "store_options", f"{key} is not a database URL ({exc}); {_EXAMPLE}"
        ) from None
    _checkbackend(key, url)
    return url


def _checkbackend(key: str, url: URL) -> None:
    """Refuse a URL of something that is not a SQL database SQLAlchemy knows (a Redis URL, say),
    which would otherwise read as a missing driver. A known database with a driver that is not
    installed is left to the engine's creation, which names the pip command."""
    backend = url.get_backend_name()
    try:
        sa.make_url(f"{backend}://").get_dialect()
    except sa.exc.NoSuchModuleError:
        shown = url.render_as_string(hide_password=True)
        hint = ""
        if backend in _NOT_SQL:
            hint = "; for Redis, use store = 'redis' (pip install session-core-redis)"
            hint = hint if backend.startswith(("redis", "valkey")) else ""
        raise ConfigurationError(
            "store_options",
            f"{key} {shown!r} is not the URL of a SQL database SQLAlchemy knows (no dialect "
            f"{backend!r}); {_EXAMPLE}{hint}",
        ) from None


def _check_number(key: str, value: float | None, ok: Callable[[float], bool], wanted: str) -> None:
    if value is not None and not (math.isfinite(value) and ok(value)):
        raise ConfigurationError("store_options", f"{key} must be {wanted}, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The db store's validated settings; each field is a ``store_options`` key.

    Attributes:
        url: the database URL (a SQLAlchemy URL); SQLite file :data:`DEFAULT_SQLITE_FILE` when
            neither it nor ``engine`` is given.
        async_url: the URL for native async access; by default ``url`` with an installed async
            driver (asyncpg or psycopg for PostgreSQL, aiosqlite, aiomysql or asyncmy).
        native_async: ``None`` (default) uses an async driver when one is installed, ``True``
            requires one, ``False`` runs the sync driver in worker threads for async calls.
        table_name: the sessions table.
        create_table: create the table and its index on first use when missing.
        pool_size, max_overflow, pool_timeout, pool_recycle, pool_pre_ping: the connection pool's
            settings, as in :func:`sqlalchemy.create_engine` (``None``: SQLAlchemy's default).
        connect_args: extra keyword arguments for the driver's ``connect()``.
        keep_connections: keep up to ``pool_size`` pooled connections checked out between
            calls (saves the pool's checkout and checkin, 8 µs of CPU per SQLite load and
            about 20 per PostgreSQL load); never for an engine handed over, with
            ``pool_pre_ping`` or without overflow (``max_overflow = 0``).
        sql_events: run the statements through SQLAlchemy's ``Connection``, where the engine's
            ``before_cursor_execute``/``after_cursor_execute`` listeners see them, at several
            times the store's CPU per call (connections are not kept); while the engine's
            ``echo`` is on they go that way regardless.
        prepare_statements: on asyncpg, prepare each statement once per connection, unless its
            statement cache is off (asyncpg's ``statement_cache_size`` or SQLAlchemy's
            ``prepared_statement_cache_size`` is 0); ``False``: never, and the engines the store
            builds prepare none either (asyncpg's ``statement_cache_size=0``, psycopg's
            ``prepare_threshold=None``): for PgBouncer's transaction pooling.
        cleanup_batch_size: rows deleted per statement by ``clear_expired``.
        cleanup_pause: seconds to wait between two cleanup batches.
        timeout: seconds a statement (or opening a connection) may take before it fails with
            :class:`~session_core.StoreUnreachableError`, so a server that stops answering
            cannot block callers; ``None`` or ``0`` waits forever.
        engine: an existing :class:`sqlalchemy.engine.Engine` to use instead of ``url`` (in code
            only); the store does not dispose of it.
        async_engine: an existing :class:`~sqlalchemy.ext.asyncio.AsyncEngine` for the async
            methods (in code only).
    """

    url: str | URL | None = None
    async_url: str | URL | None = None
    native_async: bool | None = None
    table_name: str = DEFAULT_TABLE_NAME
    create_table: bool = True
    pool_size: int | None = None
    max_overflow: int | None = None
    pool_timeout: float | None = None
    pool_recycle: float | None = None
    pool_pre_ping: bool = False
    connect_args: Mapping[str, Any] = field(default_factory=dict)
    keep_connections: bool = True
    sql_events: bool = False
    prepare_statements: bool = True
    cleanup_batch_size: int = 1000
    cleanup_pause: float = 0.0
    timeout: float | None = DEFAULT_TIMEOUT
    engine: Engine | None = None
    async_engine: AsyncEngine | None = None

    def __post_init__(self) -> None:
        _check("url", self.url, (str, URL, type(None)), "a database URL")
        _check("async_url", self.async_url, (str, URL, type(None)), "a database URL")
        _check("native_async", self.native_async, (bool, type(None)), "true, false or absent")
        _check("table_name", self.table_name, (str,), "a table name")
        if not _TABLE_NAME.match(self.table_name):
            raise ConfigurationError(
                "store_options",
                f"table_name {self.table_name!r} must be letters, digits and underscores "
                f"(49 at most, so that its index's name fits every database), not starting "
                f"with a digit",
            )
        _check("create_table", self.create_table, (bool,), "true or false")
        for key in ("pool_size", "max_overflow"):
            _check(key, getattr(self, key), (int, type(None)), "a whole number")
        for key in ("pool_timeout", "pool_recycle"):
            _check(key, getattr(self, key), (int, float, type(None)), "a number of seconds")
        # Each of these passed SQLAlchemy's create_engine and failed at the first request (a
        # negative max_overflow recursed until RecursionError; a negative pool_timeout was a
        # ValueError from the pool's queue once it was full).
        _check_number("pool_size", self.pool_size, lambda v: v >= 0, "0 (no limit) or more")
        _check_number(
            "max_overflow", self.max_overflow, lambda v: v >= -1, "-1 (no limit), 0 or more"
        )
        _check_number("pool_timeout", self.pool_timeout, lambda v: v > 0, "seconds above 0")
        _check_number(
            "pool_recycle",
            self.pool_recycle,
            lambda v: v == -1 or v > 0,
            "-1 (never) or seconds above 0",
        )
        _check("pool_pre_ping", self.pool_pre_ping, (bool,), "true or false")
        _check("connect_args", self.connect_args, (Mapping,), "a mapping")
        _check("keep_connections", self.keep_connections, (bool,), "true or false")
        _check("sql_events", self.sql_events, (bool,), "true or false")
        _check("prepare_statements", self.prepare_statements, (bool,), "true or false")
        _check("cleanup_batch_size", self.cleanup_batch_size, (int,), "a whole number")
        _check_number(
            "cleanup_batch_size",
            self.cleanup_batch_size,
            lambda v: 1 <= v <= _MOST_ROWS,
            f"from 1 to {_MOST_ROWS}",
        )
        _check("cleanup_pause", self.cleanup_pause, (int, float), "a number of seconds")
        _check_number("cleanup_pause", self.cleanup_pause, lambda v: v >= 0, "0 or more seconds")
        _check("timeout", self.timeout, (int, float, type(None)), "a number of seconds")
        if self.timeout is not None and not (0 <= self.timeout < math.inf):
            raise ConfigurationError(
                "store_options", "timeout must be a number of seconds, 0 or more (0: no timeout)"
            )
        _check("engine", self.engine, (Engine, type(None)), "a sqlalchemy Engine")
        if self.async_engine is not None:
            from sqlalchemy.ext.asyncio import AsyncEngine

            _check("async_engine", self.async_engine, (AsyncEngine,), "an AsyncEngine")
        if self.engine is not None:
            self._check_engine_given()
        if self.async_engine is not None:
            self._check_async_engine_given()
        if self.native_async and self.async_engine is None and self.async_target() is None:
            name = backend(self.sync_target())
            raise ConfigurationError(
                "store_options",
                f"native_async is true but no async driver for {name} is installed; "
                f"install one with: pip install 'session-core-db[async]'",
            )

    def _check_engine_given(self) -> None:
        clashing = [
            f.name
            for f in fields(self)
            if f.name in _ENGINE_SETTINGS and getattr(self, f.name) != f.default
        ]
        if self.connect_args:
            clashing.append("connect_args")
        if clashing:
            raise ConfigurationError(
                "store_options",
                f"{', '.join(clashing)} cannot be used with engine: they configure the engine "
                f"the store builds; set them on your engine instead",
            )
        if self.url is not None:
            raise ConfigurationError(
                "store_options",
                "url cannot be used with engine: the store would use the engine and ignore the "
                "url; give one of them",
            )

    def _check_async_engine_given(self) -> None:
        if self.async_url is not None:
            raise ConfigurationError(
                "store_options",
                "async_url cannot be used with async_engine: the store would use the engine "
                "and ignore the url; give one of them",
            )
        if self.native_async is False:
            raise ConfigurationError(
                "store_options",
                "native_async = false contradicts async_engine (which is only used for native "
                "async calls); drop one of them",
            )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Settings:
        """Validate a ``store_options`` mapping; an unknown key is an error."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigurationError("store_options", unknown_option("db", unknown[0], known))
        return cls(**options)

    def sync_target(self) -> URL:
        """The URL of the sync engine (the given engine's, if any)."""
        if self.engine is not None:
            return self.engine.url
        url = _parse_url("url", self.url if self.url is not None else DEFAULT_URL)
        if backend(url) == "sqlite" and url.database in (None, "", ":memory:"):
            raise ConfigurationError(
                "store_options",
                "an in-memory SQLite database is private to one connection, so sessions would "
                "vanish; give a file, such as 'sqlite:///sessions.sqlite3'",
            )
        return sync_url_for(url)

    def async_target(self) -> URL | None:
        """The URL for native async access, or ``None`` for the thread fallback."""
        if self.native_async is False:
            return None
        if self.async_url is not None:
            url = _parse_url("async_url", self.async_url)
            dialect = loaded_dialect(url)
            if dialect is None:
                raise ConfigurationError(
                    "store_options",
                    f"async_url: SQLAlchemy knows no driver {url.get_driver_name()!r} for "
                    f"{url.get_backend_name()}; name an async driver (asyncpg, psycopg_async, "
                    f"aiosqlite, aiomysql, asyncmy)",
                )
            if not dialect.is_async:
                raise ConfigurationError(
                    "store_options",
                    f"async_url must name an async driver (asyncpg, psycopg_async, aiosqlite, "
                    f"aiomysql, asyncmy), not {url.drivername!r}; for example "
                    f"'postgresql+asyncpg://user:password@host/dbname'",
                )
            try:
                dialect.import_dbapi()
            except ImportError as exc:
                raise ConfigurationError(
                    "store_options",
                    f"async_url: cannot load the driver {url.get_driver_name()!r} ({exc}); "
                    f"install it, for example: pip install 'session-core-db[async]'",
                ) from exc
            return url
        return async_url_for(self.sync_target())

    def check_connect_args(self, *urls: URL | None) -> None:
        """Refuse ``connect_args`` that the driver of any of ``urls`` does not take (as the
        engine for that url gets them: asyncpg's ``connect_timeout`` is renamed, say)."""
        for url in urls:
            if url is not None and self.connect_args:
                given = self.engine_arguments(url).get("connect_args", {})
                check_connect_args(url, given)

    @property
    def seconds(self) -> float | None:
        """The ``timeout`` in seconds, or ``None`` when there is none."""
        return float(self.timeout) if self.timeout else None

    def engine_arguments(self, url: URL | None = None) -> dict[str, Any]:
        """Keyword arguments for ``create_engine`` and ``create_async_engine``; with the
        engine's ``url``, the driver's connect timeout defaults to ``timeout``."""
        arguments: dict[str, Any] = {
            # Each statement commits by itself: a read costs one round trip, with no BEGIN
            # before it and no ROLLBACK when its connection goes back to the pool.
            "isolation_level": "AUTOCOMMIT",
            "pool_reset_on_return": None,
            "pool_pre_ping": self.pool_pre_ping,
        }
        if url is not None and queue_pooled(url):
            # The most recently used connection first: its kept cursor is warm, and the
            # connections beyond what the load needs stay idle until pool_recycle drops them.
            arguments["pool_use_lifo"] = True
        for key in _ENGINE_SETTINGS - {"pool_pre_ping"}:
            value = getattr(self, key)
            if value is not None:
                arguments[key] = value
        connect_args = dict(self.connect_args)
        driver = url.get_driver_name() if url is not None else None
        if driver == "asyncpg" and "connect_timeout" in connect_args:
            # asyncpg names it ``timeout``; the sync drivers' name would fail every connect.
            connect_args.setdefault("timeout", connect_args.pop("connect_timeout"))
        if not self.prepare_statements:  # no named statement (PgBouncer's transaction pooling)
            if driver == "asyncpg":
                connect_args.setdefault("statement_cache_size", 0)
            elif driver in ("psycopg", "psycopg_async"):
                connect_args.setdefault("prepare_threshold", None)
        seconds = self.seconds
        if seconds is not None and driver in CONNECT_TIMEOUTS:
            name = CONNECT_TIMEOUTS[driver]
            # asyncpg takes a float; libpq and the MySQL drivers whole seconds.
            value = seconds if driver == "asyncpg" else max(1, math.ceil(seconds))
            connect_args.setdefault(name, value)
            if driver == "pymysql":
                # Bounds every socket read and write: a server that stops answering fails the
                # statement after ``timeout`` (PyMySQL takes fractions of a second here).
                connect_args.setdefault("read_timeout", seconds)
                connect_args.setdefault("write_timeout", seconds)
        if connect_args:
            arguments["connect_args"] = connect_args
        return arguments

    def install_hint(self) -> str:
        """The pip command that installs the driver for the configured database."""
        return install_hint(self.sync_target())


_ENGINE_SETTINGS = frozenset(
    {"pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping"}
)
