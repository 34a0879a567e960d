"""The ``db`` store: sessions in one SQL table, through SQLAlchemy Core.

Each operation is a plan (:mod:`.plans`) run by the sync driver (:mod:`.sync_driver`) or the
async one (:mod:`.async_driver`); the module's notes in :mod:`.plans` explain concurrency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine

from session_core import (
    Changes,
    ConfigurationError,
    SessionConfig,
    SessionInfo,
    SessionRecord,
    SessionStore,
    UserId,
    hash_key,
    is_plausible_key,
)
from session_core.store import Progress, RecordPage

from . import forks, listing
from .async_connections import AsyncConnections
from .async_driver import AsyncDriver
from .connections import Connections
from .first_use import FirstUse
from .limits import default_limit
from .merge_locks import MergeLocks
from .options import Settings
from .plans import (
    Plans,
    check_user,
    delete_step,
    infos_of,
    is_current,
    load_step,
    record_of,
    revoke_step,
    revoked,
    sessions_step,
    updated,
)
from .schema import session_table
from .statements import Statements
from .sync_driver import SyncDriver
from .timeouts import WATCHED_DRIVERS, Watchdog

if TYPE_CHECKING:  # SQLAlchemy's asyncio extension imports only with greenlet installed
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["DbStore"]

T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers never wait for a writer (nor for clear_expired); NORMAL is safe with WAL.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=15000")
    finally:
        cursor.close()


class DbStore(SessionStore):
    """Sessions in a SQL table, on any database SQLAlchemy supports.

    The table holds ``hash_key(key)``, never the key. Reads are one indexed ``SELECT`` that also
    filters out expired rows; a save is one ``INSERT`` (new session) or one ``UPDATE`` (existing
    one) unless a concurrent request saved the same session meanwhile; a delete is one
    ``DELETE``. No transaction stays open across a request.

    Takes the keyword arguments of :class:`~session_core_db.options.Settings` (the
    ``store_options`` keys). Without a ``url`` or an ``engine`` it uses the SQLite file
    :data:`~session_core_db.DEFAULT_SQLITE_FILE`.
    """

    name = "db"
    needs_cleanup = True
    indexes_users = True
    lists_records = True

    def __init__(self, **options: Any) -> None:
        settings = Settings.from_options(options)
        self.settings = settings
        """The validated settings."""
        owned = settings.engine is None
        self._owns_engine = owned
        url = settings.sync_target()
        self._url = url
        engine = settings.engine or self._build(sa.create_engine, url)
        self._engine = engine
        self.target = url.render_as_string(hide_password=True)
        """The database URL without its password, as named in errors."""
        self.table = session_table(sa.MetaData(), settings.table_name)
        """The sessions table."""
        self._sql = Statements(self.table, engine.dialect, settings.cleanup_batch_size)
        self._plans = Plans(
            default_limit(engine.dialect.name),  # until the database's own is read
            self.target,
            self.generate_key,
            settings.cleanup_batch_size,
            settings.cleanup_pause,
        )
        self._first_use = FirstUse(self.table, settings.create_table, self.target, self._plans)
        seconds = settings.seconds
        self._watchdog = (
            Watchdog(seconds)
            if seconds is not None and url.get_driver_name() in WATCHED_DRIVERS
            else None
        )
        self._sync = SyncDriver(
            engine,
            url,
            owned,
            self._sql.compiled,
            Connections(engine, settings, owned),
            self._watchdog,
            self._first_use,
            seconds,
        )
        async_url = None if settings.async_engine else settings.async_target()
        if owned:
            settings.check_connect_args(url, async_url)
        self._async = AsyncDriver(
            AsyncConnections(
                async_url,
                settings.async_engine,
                self._build_async,
                settings.keep_connections
                and settings.max_overflow != 0
                and not settings.pool_pre_ping,
                settings.pool_recycle
                if settings.pool_recycle and settings.pool_recycle > 0
                else None,
                seconds,
                settings.prepare_statements,
            ),
            self.table,
            settings.cleanup_batch_size,
            self._first_use,
            seconds,
        )
        self._merge_locks = MergeLocks()
        forks.register(self)

    @classmethod
    def from_config(cls, config: SessionConfig) -> DbStore:
        """Build from a configuration's ``store_options``; bad options raise
        :class:`~session_core.ConfigurationError`."""
        return cls(**config.store_options)

    def _build(self, factory: Callable[..., T], url: URL) -> T:
        try:
            engine = factory(url, **self.settings.engine_arguments(url))
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise ConfigurationError(
                "store_options",
                f"cannot load the database driver for {url.drivername} ({exc}); install it, "
                f"for example: {self.settings.install_hint()}",
            ) from exc
        except (TypeError, sa.exc.ArgumentError) as exc:
            raise ConfigurationError("store_options", f"bad engine settings: {exc}") from exc
        if url.get_backend_name() == "sqlite":
            event.listen(getattr(engine, "sync_engine", engine), "connect", _sqlite_pragmas)
        return engine

    def _build_async(self, url: URL) -> AsyncEngine:
        from sqlalchemy.ext.asyncio import create_async_engine

        return self._build(create_async_engine, url)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of the sync methods (with ``keep_connections``, the store
        keeps up to ``pool_size`` of its pooled connections checked out between calls)."""
        return self._engine

    @property
    def async_driver(self) -> str | None:
        """The async driver's name (``"asyncpg"``, ``"aiosqlite"``, ...), or ``None`` when the
        async methods run the sync driver in worker threads."""
        connections = self._async.connections
        if connections.url is not None:
            return connections.url.get_driver_name()
        if connections.engine is not None:
            return str(connections.engine.dialect.driver)
        return None

    @property
    def native_async(self) -> bool:
        """Whether the async methods use an async driver (else they run in worker threads)."""
        return self.async_driver is not None

    # ------------------------------------------------------------------ sync

    def load(self, key: str) -> SessionRecord | None:
        """The live session saved under ``key``: one indexed ``SELECT``."""
        if not is_plausible_key(key):  # before checking a connection out of the pool
            return None
        return record_of(self._sync.run("load", load_step(key)))

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Create (``key=None``) or update a session; see :mod:`.plans` on concurrency."""
        if key is None:
            check_user(record)
            return self._sync.run("save", self._plans.create(record))
        if not is_plausible_key(key):
            return None
        if not self._first_use.ready:  # the size limit is read before building the update
            self._sync.ensure_ready("save")
        h = hash_key(key)
        # The usual update is one statement; only a row changed meanwhile needs a merge.
        current = is_current(record, changes)
        if current:
            count = self._sync.run("save", self._plans.update_step(h, record))
            if updated(key, record, count):
                return key
        with self._merge_locks.for_key(key):
            return self._sync.run("save", self._plans.merge(key, h, record, changes, current))

    def delete(self, key: str) -> None:
        """Delete the session saved under ``key``: one ``DELETE``."""
        if is_plausible_key(key):
            self._sync.run("delete", delete_step(key))

    def cycle_key(self, key: str, record: SessionRecord) -> str:
        """Save ``record`` under a fresh key, then delete the row of ``key``."""
        check_user(record)
        return self._sync.run("cycle the key", self._plans.cycle(key, record))

    def clear_expired(self, progress: Progress | None = None) -> int | None:
        """Delete expired rows in batches of ``cleanup_batch_size``, each its own statement, so
        live traffic is never blocked for long; ``progress`` gets the running total."""
        return self._sync.run("clear expired sessions", self._plans.clear(progress))

    def sessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """The live sessions of ``user_id``, last seen first: one ``SELECT`` on the ``user_id``
        index. See :meth:`SessionStore.sessions_of`."""
        return infos_of(self._sync.run("list the sessions of a user", sessions_step(user_id)))

    def revoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """Delete the sessions of ``user_id`` but ``keep``'s: one ``DELETE``, which also removes
        the user's expired rows; returns how many live sessions went. See
        :meth:`SessionStore.revoke_user`."""
        step = revoke_step(user_id, keep, self._sql.revoke_returns)
        result = self._sync.run("revoke the sessions of a user", step)
        return revoked(result, step.params["now"])

    # ------------------------------------------------------------ listing (session-core migrate)

    def scan_records(self, cursor: str | None = None, count: int = 500) -> RecordPage:
        """One page of live records by key hash, in key-hash order (see
        :mod:`session_core_db.listing`)."""
        return listing.scan_records(self, cursor, count)

    def load_record(self, key_hash: str) -> SessionRecord | None:
        """The live record stored under ``key_hash``, if any."""
        return listing.load_record(self, key_hash)

    def insert_record(self, key_hash: str, record: SessionRecord) -> bool:
        """Store ``record`` under ``key_hash`` unless a row is there already; whether it was."""
        return listing.insert_record(self, key_hash, record)

    def delete_record(self, key_hash: str) -> None:
        """Delete the row stored under ``key_hash``, if any."""
        listing.delete_record(self, key_hash)

    def close(self) -> None:
        """Close the pools the store made (an engine handed over is left to its owner).

        Async connections are closed when their event loop shuts down (``asyncio.run`` and
        ASGI servers do that), or by :meth:`aclose`; ``close`` only forgets those still open.
        """
        self._async.connections.forget()
        self._close_sync_side()

    # ------------------------------------------------------------------ async

    async def aload(self, key: str) -> SessionRecord | None:
        """Async twin of :meth:`load`, on the async driver when there is one."""
        if not is_plausible_key(key):
            return None
        connections = self._async.connections
        loop_engine = connections.current() or await connections.for_loop()
        if loop_engine is None:
            return await super().aload(key)
        return record_of(await self._async.run("load", load_step(key), loop_engine))

    async def asave(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Async twin of :meth:`save`."""
        connections = self._async.connections
        loop_engine = connections.current() or await connections.for_loop()
        if loop_engine is None:
            return await super().asave(key, record, changes)
        if key is None:
            check_user(record)
            return await self._async.run("save", self._plans.create(record), loop_engine)
        if not is_plausible_key(key):
            return None
        if not self._first_use.ready:  # the size limit is read before building the update
            await self._async.ensure_ready("save", loop_engine)
        h = hash_key(key)
        current = is_current(record, changes)
        if current:
            count = await self._async.run("save", self._plans.update_step(h, record), loop_engine)
            if updated(key, record, count):
                return key
        async with self._merge_locks.for_key_async(key):
            plan = self._plans.merge(key, h, record, changes, current)
            return await self._async.run("save", plan, loop_engine)

    async def adelete(self, key: str) -> None:
        """Async twin of :meth:`delete`."""
        if not is_plausible_key(key):
            return
        loop_engine = await self._async.connections.for_loop()
        if loop_engine is None:
            await super().adelete(key)
        else:
            await self._async.run("delete", delete_step(key), loop_engine)

    async def acycle_key(self, key: str, record: SessionRecord) -> str:
        """Async twin of :meth:`cycle_key`."""
        loop_engine = await self._async.connections.for_loop()
        if loop_engine is None:
            return await super().acycle_key(key, record)
        check_user(record)
        plan = self._plans.cycle(key, record)
        return await self._async.run("cycle the key", plan, loop_engine)

    async def aclear_expired(self, progress: Progress | None = None) -> int | None:
        """Async twin of :meth:`clear_expired`."""
        loop_engine = await self._async.connections.for_loop()
        if loop_engine is None:
            return await super().aclear_expired(progress)
        return await self._async.run(
            "clear expired sessions", self._plans.clear(progress), loop_engine
        )

    async def asessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """Async twin of :meth:`sessions_of`."""
        loop_engine = await self._async.connections.for_loop()
        if loop_engine is None:
            return await super().asessions_of(user_id)
        step = sessions_step(user_id)
        return infos_of(await self._async.run("list the sessions of a user", step, loop_engine))

    async def arevoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """Async twin of :meth:`revoke_user`."""
        loop_engine = await self._async.connections.for_loop()
        if loop_engine is None:
            return await super().arevoke_user(user_id, keep)
        step = revoke_step(user_id, keep, self._sql.revoke_returns)
        result = await self._async.run("revoke the sessions of a user", step, loop_engine)
        return revoked(result, step.params["now"])

    async def aclose(self) -> None:
        """Async twin of :meth:`close`: also closes the async connections of this event loop."""
        await self._async.connections.aclose()
        await asyncio.to_thread(self._close_sync_side)

    # ------------------------------------------------------------------ lifecycle

    def _close_sync_side(self) -> None:
        """What :meth:`close` and :meth:`aclose` both do: give back the kept connections, close
        the store's own pool, stop the timeout watchdog."""
        self._sync.connections.close()
        if self._owns_engine:
            self._engine.dispose()
        if self._watchdog is not None:
            self._watchdog.close()

    def _after_fork(self) -> None:
        self._merge_locks = MergeLocks()
        self._sync.after_fork()
        self._async.connections.after_fork()

    def __repr__(self) -> str:
        return f"<DbStore {self.target} table={self.table.name!r}>"
