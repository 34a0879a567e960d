"""Fixtures: one real database per kind, and a unique table per test session.

PostgreSQL and MariaDB must be running (``bash .ci/services`` starts them), each with a database
named ``test`` (see CONTRIBUTING.md, "Running the tests"); a test that needs one fails when it is
missing, with a message that says whether the server did not answer, refused the user or has no
such database, and what to do. Override their URLs with ``SESSION_CORE_TEST_POSTGRESQL_URL`` and
``SESSION_CORE_TEST_MARIADB_URL``. Tables get a random suffix so that several runs can share a
server, and are dropped at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from session_core import Changes
from session_core.testing import make_record
from session_core_db import DbStore

SERVER_URLS = {
    "postgresql": os.environ.get(
        "SESSION_CORE_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get(
        "SESSION_CORE_TEST_MARIADB_URL", "mariadb+pymysql://root@127.0.0.1:3306/test"
    ),
}

RUN_ID = f"{os.getpid()}_{secrets.token_hex(3)}"


@dataclass
class Database:
    """A database the tests may use, and the tables they made in it."""

    kind: str
    url: str
    engine: sa.Engine
    tables: list[str] = field(default_factory=list)

    def table(self, purpose: str = "s") -> str:
        """A fresh table name, dropped at the end of the test session."""
        name = f"t_{RUN_ID}_{purpose}_{len(self.tables)}"
        self.tables.append(name)
        return name

    def drop(self, name: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))

    def rows(self, name: str) -> list[tuple[object, ...]]:
        with self.engine.connect() as connection:
            return [tuple(r) for r in connection.execute(sa.text(f"SELECT * FROM {name}"))]

    def count(self, name: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one())


def unreachable_message(kind: str, url: str, error: BaseException) -> str:
    """What went wrong opening the test database at ``url``, and what to do about it: a server
    that does not answer, a database that does not exist, or a user the server refuses."""
    where = sa.make_url(url)
    variable = f"SESSION_CORE_TEST_{kind.upper()}_URL"
    shown = where.render_as_string(hide_password=True)
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if where.password:
        first_line = first_line.replace(str(where.password), "***")
    text = str(error).lower()
    if "refused" in text or "can't connect" in text or "could not connect" in text:
        found = f"nothing answers at {where.host}:{where.port}"
        todo = (
            "start the server (as root on Debian, `bash .ci/services` starts PostgreSQL, "
            f"MariaDB and Redis), or set {variable} to one that runs"
        )
    elif (
        "password authentication failed" in text
        or "access denied" in text
        or ("role" in text and "does not exist" in text)
    ):
        found = f"the server answers but refuses the user {where.username!r}"
        todo = (
            "the tests expect that user with no password on 127.0.0.1 (PostgreSQL: trust "
            f"for postgres; MariaDB: root with an empty password), or put a user and password "
            f"that work in {variable}"
        )
    elif "does not exist" in text or "unknown database" in text:
        create = (
            f"createdb -h {where.host} -U {where.username} {where.database}"
            if kind == "postgresql"
            else f"mariadb -u{where.username} -h{where.host} -e 'CREATE DATABASE {where.database}'"
        )
        found = f"the server answers but has no database {where.database!r}"
        todo = f"create it (`{create}`), or set {variable} to a database that exists"
    else:
        found = "it failed"
        todo = f"check that the server runs and that {variable} points at it"
    return f"{kind} test database {shown}: {found} ({first_line}); {todo}"


def _open(kind: str, url: str) -> Iterator[Database]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.fail(unreachable_message(kind, url, exc.orig or exc), pytrace=False)
    database = Database(kind, url, engine)
    try:
        yield database
    finally:
        for name in database.tables:
            database.drop(name)
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    path: Path = tmp_path_factory.mktemp("sqlite") / "sessions.sqlite3"
    yield from _open("sqlite", f"sqlite:///{path}")


@pytest.fixture(scope="session")
def postgresql_db() -> Iterator[Database]:
    yield from _open("postgresql", SERVER_URLS["postgresql"])


@pytest.fixture(scope="session")
def mariadb_db() -> Iterator[Database]:
    yield from _open("mariadb", SERVER_URLS["mariadb"])


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def db(request: pytest.FixtureRequest) -> Database:
    """Each database in turn."""
    database: Database = request.getfixturevalue(f"{request.param}_db")
    return database


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def server(request: pytest.FixtureRequest) -> Database:
    """Each database server (not SQLite) in turn."""
    database: Database = request.getfixturevalue(f"{request.param}_db")
    return database


def create(store: DbStore, data: dict[str, Any], ttl: float = 3600) -> str:
    """Save a new session holding ``data`` and return its key."""
    record = make_record(data, ttl=ttl)
    key = store.save(None, record, Changes.everything(record))
    assert key is not None
    return key
