"""The sessions table: its definition, its DDL for any database, and Alembic helpers.

One row per session::

    key_hash    CHAR/VARCHAR(64)  primary key: hash_key(session key), never the key itself
    data        TEXT              the session's contents, as JSON text
    expiry      TEXT, nullable    the session's own expiry setting, as JSON text
    expires_at  DOUBLE            Unix time after which the row is dead (indexed)
    version     BIGINT            row version for optimistic concurrency, 1 on creation

Print the DDL for a database with ``session-core db schema --url URL`` (or
``--dialect postgresql|sqlite|mariadb|mysql``; ``python -m session_core_db`` is the same command);
``schema.sql`` next to this module holds it for PostgreSQL, SQLite and MariaDB with the default
table name.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

__all__ = [
    "DEFAULT_TABLE_NAME",
    "create_session_table",
    "create_sql",
    "drop_session_table",
    "ensure_table",
    "schema_sql",
    "session_table",
    "table_exists",
]

DEFAULT_TABLE_NAME = "session_core_sessions"
"""The table's name unless ``table_name`` says otherwise."""

_KEY_HASH = sa.String(64).with_variant(mysql.CHAR(64, charset="ascii"), "mysql", "mariadb")
_DATA = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def _columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("key_hash", _KEY_HASH, primary_key=True),
        sa.Column("data", _DATA, nullable=False),
        sa.Column("expiry", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
    ]


def index_name(table_name: str) -> str:
    """The name of the index on ``expires_at``."""
    return f"ix_{table_name}_expires_at"


def session_table(metadata: sa.MetaData, name: str = DEFAULT_TABLE_NAME) -> sa.Table:
    """Define the sessions table called ``name`` in ``metadata`` and return it.

    Add it to the ``MetaData`` your Alembic ``env.py`` uses as ``target_metadata`` and
    ``alembic revision --autogenerate`` writes its migration for you.
    """
    return sa.Table(
        name,
        metadata,
        *_columns(),
        sa.Index(index_name(name), "expires_at"),
        mysql_charset="utf8mb4",
        mariadb_charset="utf8mb4",
    )


def create_session_table(op: Any, table_name: str = DEFAULT_TABLE_NAME) -> None:
    """Create the table and its index from an Alembic migration's ``upgrade()``.

    ``op`` is ``alembic.op``::

        from alembic import op
        from session_core_db import create_session_table

        def upgrade() -> None:
            create_session_table(op)
    """
    op.create_table(table_name, *_columns(), mysql_charset="utf8mb4", mariadb_charset="utf8mb4")
    op.create_index(index_name(table_name), table_name, ["expires_at"])


def drop_session_table(op: Any, table_name: str = DEFAULT_TABLE_NAME) -> None:
    """Drop the table (and its index) from an Alembic migration's ``downgrade()``."""
    op.drop_index(index_name(table_name), table_name=table_name)
    op.drop_table(table_name)


def create_sql(dialect: Dialect, table_name: str = DEFAULT_TABLE_NAME) -> str:
    """The ``CREATE TABLE`` and ``CREATE INDEX`` statements for ``dialect``, as SQL text."""
    table = session_table(sa.MetaData(), table_name)
    statements = [CreateTable(table, if_not_exists=True)] + [
        CreateIndex(index, if_not_exists=dialect.name != "mysql") for index in table.indexes
    ]
    return "\n".join(f"{str(s.compile(dialect=dialect)).strip()};\n" for s in statements)


def schema_sql(database: str | None = None) -> str:
    """The shipped ``schema.sql``: all of it, or only the statements for ``database``
    (``"postgresql"``, ``"sqlite"`` or ``"mariadb"``), ready to run."""
    text = resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")
    if database is None:
        return text
    sections = text.split("\n\n-- ")
    for section in sections[1:]:
        title, _, body = section.partition("\n")
        if title.split()[0].lower() == database.lower():
            lines = (line[3:] if line.startswith("-- ") else line for line in body.splitlines())
            return "\n".join(lines).strip() + "\n"
    raise ValueError(f"schema.sql has no section for {database!r}")


def table_exists(connection: Connection, table_name: str) -> bool:
    """Whether ``table_name`` exists in the database ``connection`` is connected to."""
    return sa.inspect(connection).has_table(table_name)


def ensure_table(connection: Connection, table: sa.Table, attempts: int = 5) -> None:
    """Create ``table`` and its index unless they exist; safe when processes race to do it.

    ``IF NOT EXISTS`` covers most races; a database that still reports a clash (PostgreSQL does
    when two sessions create one table at the same instant) is checked again and retried.
    """
    for attempt in range(attempts):
        try:
            if not table_exists(connection, table.name):
                connection.execute(CreateTable(table, if_not_exists=True))
            present = {ix["name"] for ix in sa.inspect(connection).get_indexes(table.name)}
            for index in table.indexes:
                if index.name not in present:
                    _create_index(connection, index)
            connection.commit()
            return
        except sa.exc.DBAPIError:
            connection.rollback()
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _create_index(connection: Connection, index: sa.Index) -> None:
    if connection.dialect.name == "mysql":  # MySQL (not MariaDB) has no CREATE INDEX IF NOT EXISTS
        connection.execute(CreateIndex(index))
    else:
        connection.execute(CreateIndex(index, if_not_exists=True))
