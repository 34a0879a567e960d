"""Database store: session-core's ``db`` store against Django's database session backend and
Flask-Session's SQLAlchemy backend, on SQLite and PostgreSQL, and against the floor: the bare
driver's ``SELECT`` by primary key, and one upsert.

Cases: ``untouched``, ``read``, ``write`` (set one key), ``update`` (read a key and set it).
On PostgreSQL the store's async load (``aload``, on asyncpg) is also measured against
asyncpg's own ``fetchrow`` of the same ``SELECT``, on one event loop.
PostgreSQL is ``BENCH_POSTGRESQL_URL`` (default ``postgresql://127.0.0.1:5432/test``); every
contender works in a schema of this run's own, dropped at the end. SQLite is a file in a
temporary folder with the settings the ``db`` store gives its own connections (WAL,
``synchronous=NORMAL``) for every contender.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from session_core import Changes

from . import cookie, redis_store
from .harness import SECRET, AreaResult, Batch, Settings, Stat, Target, measure

CASES = ("untouched", "read", "write", "update")
PG_URL = os.environ.get("BENCH_POSTGRESQL_URL", "postgresql://127.0.0.1:5432/test")
TABLE = "bench_sessions"
PAYLOAD = '{"user":"alice","visits":1}'
_ALL = Changes(frozenset({"user"}))


@dataclass
class Database:
    """One database the area runs on: how each contender reaches it."""

    name: str
    sqlalchemy_url: str  # for the db store and Flask-SQLAlchemy
    django: dict[str, Any]  # Django's DATABASES entry
    connect: Callable[[], Any]  # a bare DB-API connection in autocommit mode
    placeholder: str


def pg_reachable() -> str:
    """Why PostgreSQL cannot be used, or ``""``."""
    try:
        import psycopg

        psycopg.connect(PG_URL, connect_timeout=2).close()
    except Exception as exc:
        return f"no PostgreSQL at {PG_URL} ({type(exc).__name__}: {exc})"
    return ""


@contextmanager
def sqlite_database() -> Iterator[Database]:
    """A fresh SQLite file, removed afterwards."""
    folder = tempfile.mkdtemp(prefix="session-core-bench-")
    path = os.path.join(folder, "bench.sqlite3")

    def connect() -> Any:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    connect().close()
    try:
        yield Database(
            "SQLite",
            f"sqlite:///{path}",
            {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": path,
                "OPTIONS": {"init_command": "PRAGMA synchronous=NORMAL"},
                "CONN_MAX_AGE": None,
            },
            connect,
            "?",
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgresql_database() -> Iterator[Database]:
    """A schema of this run's own in the PostgreSQL database, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    schema = f"session_core_bench_{os.getpid()}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    options = f"-csearch_path={schema}"
    url = make_url(PG_URL)

    def connect() -> Any:
        return psycopg.connect(PG_URL, autocommit=True, options=options)

    try:
        yield Database(
            "PostgreSQL",
            url.set(drivername="postgresql+psycopg", query={"options": options}).render_as_string(
                hide_password=False
            ),
            {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": url.database,
                "HOST": url.host,
                "PORT": url.port or 5432,
                "USER": url.username or "",
                "PASSWORD": url.password or "",
                "OPTIONS": {"options": options},
                "CONN_MAX_AGE": None,
            },
            connect,
            "%s",
        )
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


# ---------------------------------------------------------------------- Django


class _Router:
    """Sends Django's queries to the database of the contender being measured."""

    alias = "default"

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return self.alias

    db_for_write = db_for_read

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return True


def _django_settings(databases: list[Database]) -> None:
    import django
    from django.conf import settings

    aliases: dict[str, Any] = {"default": {"ENGINE": "django.db.backends.dummy"}}
    aliases.update({database.name: database.django for database in databases})
    settings.configure(
        CACHES=_django_caches(),
        DEBUG=False,
        SECRET_KEY=SECRET,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.sessions"],
        DATABASES=aliases,
        DATABASE_ROUTERS=[f"{__name__}._Router"],
        MIDDLEWARE=[],
        USE_TZ=True,
        SESSION_SERIALIZER="django.contrib.sessions.serializers.JSONSerializer",
    )
    django.setup()


def _django_caches() -> dict[str, Any]:
    """Django's own Redis cache (``RedisCache``) on the Redis the redis area uses, under this
    run's key prefix: the cache of the ``cached_db`` contender."""
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_store.URL,
            "KEY_PREFIX": redis_store.prefix() + "django-cache",
        }
    }


def _django_view(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(
        cookie.session_view(request.session, request.path), content_type="text/plain"
    )


def _urlpatterns() -> list[Any]:
    try:
        from django.urls import path
    except ImportError:  # pragma: no cover - Django is a benchmark requirement
        return []
    return [path(p.lstrip("/"), _django_view) for p in cookie.PATHS]


class PlainDjangoSession:
    """Django middleware giving the bare app a plain dict where the session would be."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        request.session = dict(cookie.SEED)
        return self.get_response(request)


def django_app(engine: str | None, **session_core: Any) -> Any:
    """A Django WSGI handler; ``engine`` is the ``SESSION_ENGINE``, ``None`` for the bare app."""
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    if engine is None:
        settings.MIDDLEWARE = [f"{__name__}.PlainDjangoSession"]
    else:
        settings.MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
        settings.SESSION_ENGINE = engine
        settings.SESSION_CORE = session_core
    return WSGIHandler()


def _django_session_core_backend(store_options: dict[str, Any], store: str = "db") -> Any:
    from session_core import SessionConfig
    from session_core.integrations import django as integration

    config = SessionConfig(
        secret_key=SECRET, store=store, store_options=store_options, cookie_same_site="Lax"
    )
    return integration.Backend(config)


def _tiered_options(database: Database, db_options: dict[str, Any]) -> dict[str, Any]:
    """The tiered store as the cached_db contender is set up: Redis in front of this database."""
    space = f"{redis_store.prefix()}tiered-{database.name}:"
    front = {"store": "redis", "url": redis_store.URL, "key_prefix": space}
    return {"front": front, "back": {"store": "db", **db_options}}


def _on(alias: str, backend: Any, batch: Batch) -> Batch:
    """``batch`` with Django pointed at ``alias`` (and session-core's Django backend)."""

    def run(n: int) -> None:
        _Router.alias = alias
        _set_backend(backend)  # one backend per database, in one process
        batch(n)

    return run


# ---------------------------------------------------------------------- contenders


def floors(database: Database) -> dict[str, Batch]:
    """The bare driver: ``SELECT`` by primary key, and one upsert, on the store's table."""
    connection = database.connect()
    p = database.placeholder
    key_hash = "f" * 64
    connection.execute(
        f"INSERT INTO {TABLE} (key_hash, data, expiry, expires_at, version) "
        f"VALUES ({p}, {p}, NULL, {p}, 1)",
        (key_hash, PAYLOAD, time.time() + 1e6),
    )
    cursor = connection.cursor()
    select = (
        f"SELECT data, expiry, expires_at, version FROM {TABLE} "
        f"WHERE key_hash = {p} AND expires_at > {p}"
    )
    upsert = (
        f"INSERT INTO {TABLE} (key_hash, data, expiry, expires_at, version) "
        f"VALUES ({p}, {p}, NULL, {p}, 1) ON CONFLICT (key_hash) DO UPDATE SET "
        f"data = excluded.data, expires_at = excluded.expires_at, "
        f"version = {TABLE}.version + 1"
    )

    def get(n: int) -> None:
        for _ in range(n):
            cursor.execute(select, (key_hash, time.time()))
            cursor.fetchone()

    def get_upsert(n: int) -> None:
        for _ in range(n):
            cursor.execute(select, (key_hash, time.time()))
            cursor.fetchone()
            cursor.execute(upsert, (key_hash, PAYLOAD, time.time() + 1e6))

    return {
        f"floor|{database.name} SELECT by key|": get,
        f"floor|{database.name} SELECT + upsert|": get_upsert,
    }


UNKEPT = "session-core, keep_connections = false"
ASYNC_FLOOR = "PostgreSQL async SELECT by key (asyncpg)"
ASYNC_OURS = "PostgreSQL async load (db store, asyncpg)"


def async_loads(loop: asyncio.AbstractEventLoop) -> tuple[dict[str, Batch], Callable[[], None]]:
    """Bare asyncpg's ``fetchrow`` of the store's ``SELECT``, and the store's ``aload`` of a
    session, on ``loop``, in a table of this run's own (in the default schema: asyncpg takes no
    ``options``), dropped by the function returned with them."""
    import asyncpg
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from session_core import SessionRecord, hash_key
    from session_core_db import DbStore

    url = make_url(PG_URL)
    table = f"bench_async_{os.getpid()}"
    store = DbStore(
        url=url.set(drivername="postgresql+psycopg"),
        async_url=url.set(drivername="postgresql+asyncpg"),
        table_name=table,
    )
    key = store.save(None, SessionRecord({"user": "alice"}, time.time() + 1e6), _ALL)
    assert key is not None
    connection = loop.run_until_complete(
        asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    )
    select = (
        f"SELECT data, expiry, expires_at, version FROM {table} "
        f"WHERE key_hash = $1 AND expires_at > $2"
    )
    h = hash_key(key)

    async def bare(n: int) -> None:
        for _ in range(n):
            await connection.fetchrow(select, h, time.time())

    async def ours(n: int) -> None:
        for _ in range(n):
            await store.aload(key)

    async def aclose() -> None:
        await connection.close()
        await store.aclose()

    def close() -> None:
        loop.run_until_complete(aclose())
        with store.engine.begin() as sync:
            sync.execute(sa.text(f"DROP TABLE {table}"))
        store.close()

    assert loop.run_until_complete(connection.fetchrow(select, h, time.time())) is not None
    assert loop.run_until_complete(store.aload(key)) is not None  # self-check
    batches: dict[str, Batch] = {
        f"floor|{ASYNC_FLOOR}|": lambda n: loop.run_until_complete(bare(n)),
        f"floor|{ASYNC_OURS}|": lambda n: loop.run_until_complete(ours(n)),
    }
    return batches, close


def build(
    loop: asyncio.AbstractEventLoop, databases: list[Database], with_cache: bool = False
) -> tuple[cookie.Contenders, list[Any]]:
    """Every contender on every database; returns them and what to close afterwards. With
    ``with_cache`` (Redis is reachable) Django's ``cached_db`` and the tiered store too."""
    from session_core.wsgi import SessionMiddleware as WsgiSessions

    _django_settings(databases)
    c = cookie.Contenders(loop)
    closers: list[Any] = []
    for database in databases:
        ours = {
            "store": "db",
            "store_options": {"url": database.sqlalchemy_url, "table_name": TABLE},
        }
        group = f"{database.name}: plain WSGI"
        c.add_wsgi(group, "bare", cookie.wsgi_app, CASES, **{cookie.ENVIRON_KEY: dict(cookie.SEED)})
        middleware = WsgiSessions(cookie.wsgi_app, secret_key=SECRET, **ours)
        closers.append(middleware.store)
        c.add_wsgi(group, "session-core", middleware, CASES)
        # The same without the kept connections: each call checks one out of SQLAlchemy's pool.
        unkept = {**ours, "store_options": {**ours["store_options"], "keep_connections": False}}
        middleware = WsgiSessions(cookie.wsgi_app, secret_key=SECRET, **unkept)
        closers.append(middleware.store)
        c.add_wsgi(group, UNKEPT, middleware, CASES)

        group = f"{database.name}: Flask app"
        c.add_wsgi(group, "bare", cookie.flask_app(cookie.flask_bare), CASES)
        c.add_wsgi(group, "Flask-Session", cookie.flask_app(_flask_session(database)), CASES)
        c.add_wsgi(
            group, "session-core", cookie.flask_app(cookie.flask_session_core(**ours)), CASES
        )

        group = f"{database.name}: Django app"
        backend = _django_session_core_backend(ours["store_options"])
        closers.append(backend.store)
        contenders: list[tuple[str, Any, Any, tuple[str, ...]]] = [
            ("bare", django_app(None), backend, CASES),
            ("Django", django_app("django.contrib.sessions.backends.db"), backend, CASES),
            (
                "session-core",
                django_app("session_core.integrations.django", **ours),
                backend,
                CASES,
            ),
        ]
        if with_cache:
            # A cache in front of the database: Django's cached_db (Django's RedisCache) against
            # the tiered store (redis over the same database). Each gets one session for the
            # reads and another for the writes, as a site's many readers and few writers do.
            tiered = _django_session_core_backend(
                _tiered_options(database, ours["store_options"]), "tiered"
            )
            closers.append(tiered.store)
            cached_db = django_app("django.contrib.sessions.backends.cached_db")
            tiered_app = django_app("session_core.integrations.django", **ours)
            for cases in (("untouched", "read"), ("write", "update")):
                contenders.append(("Django cached_db", cached_db, backend, cases))
                contenders.append(("session-core tiered", tiered_app, tiered, cases))
        for name, app, chosen, cases in contenders:
            _Router.alias = database.name
            _migrate(database.name)
            before = len(c.batches)
            _set_backend(chosen)
            c.add_wsgi(group, name, app, cases)
            for key in list(c.batches)[before:]:
                c.batches[key] = _on(database.name, chosen, c.batches[key])
    return c, closers


def _set_backend(backend: Any) -> None:
    from session_core.integrations import django as integration

    integration._backend = backend


_migrated: set[str] = set()


def _migrate(alias: str) -> None:
    if alias in _migrated:
        return
    from django.contrib.sessions.models import Session
    from django.db import connections

    with connections[alias].schema_editor() as editor:
        editor.create_model(Session)
    _migrated.add(alias)


def _flask_session(database: Database) -> Callable[[Any], None]:
    def setup(app: Any) -> None:
        from flask_session import Session
        from flask_sqlalchemy import SQLAlchemy

        app.config.update(
            SESSION_TYPE="sqlalchemy",
            SQLALCHEMY_DATABASE_URI=database.sqlalchemy_url,
            SESSION_SQLALCHEMY_TABLE="flask_sessions",
            SESSION_SERIALIZATION_FORMAT="json",
        )
        db = SQLAlchemy(app)
        app.config["SESSION_SQLALCHEMY"] = db
        Session(app)

    return setup


def run(settings: Settings) -> AreaResult:
    """Measure every contender and the floors on SQLite and (if reachable) PostgreSQL."""
    result = AreaResult("db")
    why = pg_reachable()
    loop = asyncio.new_event_loop()
    closers: list[Any] = []
    close_async: Callable[[], None] | None = None
    no_redis = redis_store.reachable()
    with sqlite_database() as sqlite_db, _maybe_postgresql(not why) as pg_db:
        databases = [d for d in (sqlite_db, pg_db) if d is not None]
        try:
            contenders, closers = build(loop, databases, with_cache=not no_redis)
            batches = dict(contenders.batches)
            for database in databases:
                batches.update(floors(database))
            if pg_db is not None:
                async_batches, close_async = async_loads(loop)
                batches.update(async_batches)
            # As in the redis area, each target's two sides run close together in every round;
            # the store's async load and asyncpg's SELECT are the one set of other floors.
            together = cookie.side_by_side(batches, floor_cases([d.name for d in databases]))
            stats = measure(batches, settings, together)
        finally:
            if close_async is not None:
                close_async()
            for store in closers:
                store.close()
            _close_django()
            loop.close()
            if not no_redis:
                redis_store.cleanup(redis_store.prefix())
    skipped = [f"PostgreSQL part: {why}"] * bool(why)
    skipped += [f"Django cached_db and tiered: {no_redis}"] * bool(no_redis)
    if skipped:
        result.skipped = "; ".join(skipped)
    result.tables, result.data = cookie.report("Database store", contenders, stats, CASES)
    title = "Database floor: the bare driver, µs per operation"
    result.tables.append(cookie.floor_table(title, stats, result.data))
    result.targets += targets(stats, [d.name for d in databases])
    return result


@contextmanager
def _maybe_postgresql(available: bool) -> Iterator[Database | None]:
    if not available:
        yield None
        return
    with postgresql_database() as database:
        yield database


def _close_django() -> None:
    from django.db import connections

    connections.close_all()


def floor_cases(databases: list[str]) -> list[tuple[str, str, str]]:
    """Each ``(app, case, floor operation)`` whose session cost is compared with that floor."""
    return [
        (f"{name}: plain WSGI", case, f"{name} {floor}")
        for name in databases
        for case, floor in (("read", "SELECT by key"), ("update", "SELECT + upsert"))
    ]


def targets(stats: dict[str, Stat], databases: list[str]) -> list[Target]:
    """Ours against the floor (≤ 1.3x) and against the peers (≥ 2x faster)."""
    peers = [
        (f"{name}: {app}", peer, case)
        for name in databases
        for app, peer in (("Flask app", "Flask-Session"), ("Django app", "Django"))
        for case in ("read", "update")
    ]
    found = cookie.store_targets("db", stats, floor_cases(databases), peers, 1.3, 2)
    for name in databases:
        group = f"{name}: Django app"
        if f"{group}|Django cached_db|read" not in stats:
            continue  # no Redis
        found.append(
            cookie.ratio_target(
                f"tiered read, {group}: Django cached_db cost / tiered (redis over db)",
                "≥ 1x",
                cookie.cost(stats, group, "Django cached_db", "read"),
                cookie.cost(stats, group, "session-core tiered", "read"),
                lambda r: r >= 1,
            )
        )
    if f"floor|{ASYNC_OURS}|" in stats:
        found.append(
            cookie.ratio_target(
                "db async load, PostgreSQL: store aload vs asyncpg SELECT by key",
                "≤ 1.3x",
                stats[f"floor|{ASYNC_OURS}|"],
                stats[f"floor|{ASYNC_FLOOR}|"],
                lambda r: r <= 1.3,
            )
        )
    return found


urlpatterns = _urlpatterns()
