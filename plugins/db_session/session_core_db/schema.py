"""The sessions table: its definition, its DDL for any database, and Alembic helpers.

One row per session::

    key_hash    CHAR/VARCHAR(64)  primary key: hash_key(session key), never the key itself
    data        TEXT              the session's contents, as JSON text
    expiry      TEXT, nullable    the session's own expiry setting, as JSON text
    expires_at  DOUBLE            Unix time after which the row is dead (indexed)
    version     BIGINT            row version for optimistic concurrency, 1 on creation
    user_id     VARCHAR(255), nullable  the user the session is bound to, as text
                                  (``user_index_name``; indexed); NULL for anonymous sessions
    user_id_int BOOLEAN, nullable whether the app's user id was an int (so ``7`` comes back
                                  as ``7``, not ``"7"``)
    created_at  DOUBLE, nullable  Unix time the row was created (the login, for a user's session)
    seen_at     DOUBLE, nullable  Unix time of the last save
    client      TEXT, nullable    what the app recorded of the device (JSON text), else NULL

The last five came with sessions per user. A table made before them lacks
them: the store adds them at first use when ``create_table`` is true, and
``session-core db upgrade`` prints the ``ALTER TABLE`` statements otherwise.

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
    "add_user_columns",
    "create_session_table",
    "create_sql",
    "drop_session_table",
    "ensure_table",
    "missing_columns",
    "schema_sql",
    "session_table",
    "table_exists",
    "upgrade_sql",
]

DEFAULT_TABLE_NAME = "session_core_sessions"
"""The table's name unless ``table_name`` says otherwise."""

_KEY_HASH = sa.String(64).with_variant(mysql.CHAR(64, charset="ascii"), "mysql", "mariadb")
# 255 characters: a utf8mb4 index key of 1020 bytes fits InnoDB's 3072-byte limit.
USER_ID_LENGTH = 255
"""The longest user id (as text) the ``user_id`` column holds."""
_USER_ID = sa.String(USER_ID_LENGTH)
_DATA = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def _columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("key_hash", _KEY_HASH, primary_key=True),
        sa.Column("data", _DATA, nullable=False),
        sa.Column("expiry", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        *_user_columns(),
    ]


def _user_columns() -> list[sa.Column[Any]]:
    """The columns of sessions per user: all nullable, so that ``ALTER TABLE ... ADD COLUMN``
    adds them to a table that already holds rows, without a default or a rewrite."""
    return [
        sa.Column("user_id", _USER_ID, nullable=True),
        sa.Column("user_id_int", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=True),
        sa.Column("seen_at", sa.Double(), nullable=True),
        sa.Column("client", sa.Text(), nullable=True),
    ]


USER_COLUMNS = tuple(column.name for column in _user_columns())
"""The names of the columns that sessions per user added to the table."""


def index_name(table_name: str) -> str:
    """The name of the index on ``expires_at``."""
    return f"ix_{table_name}_expires_at"


# A partial index where the database has them (PostgreSQL, SQLite): anonymous sessions, most
# rows, are left out, so creating one costs no index entry. `user_id = ?` implies the condition,
# so the planners use it for every lookup by user. MariaDB and MySQL index the NULLs too.
_SIGNED_IN_ONLY: dict[str, Any] = {
    "postgresql_where": sa.text("user_id IS NOT NULL"),
    "sqlite_where": sa.text("user_id IS NOT NULL"),
}


def user_index_name(table_name: str) -> str:
    """The name of the index on ``user_id``."""
    return f"ix_{table_name}_user_id"


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
        sa.Index(user_index_name(name), "user_id", **_SIGNED_IN_ONLY),
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
    op.create_index(user_index_name(table_name), table_name, ["user_id"], **_SIGNED_IN_ONLY)


def add_user_columns(op: Any, table_name: str = DEFAULT_TABLE_NAME) -> None:
    """Add the columns and the index of sessions per user to a table made before them, from an
    Alembic migration's ``upgrade()``::

        from alembic import op
        from session_core_db import add_user_columns

        def upgrade() -> None:
            add_user_columns(op)

    The columns are nullable, so existing rows (anonymous sessions, to the store) stay valid.
    """
    for column in _user_columns():
        op.add_column(table_name, column)
    op.create_index(user_index_name(table_name), table_name, ["user_id"], **_SIGNED_IN_ONLY)


def drop_session_table(op: Any, table_name: str = DEFAULT_TABLE_NAME) -> None:
    """Drop the table (and its indexes) from an Alembic migration's ``downgrade()``."""
    op.drop_index(user_index_name(table_name), table_name=table_name)
    op.drop_index(index_name(table_name), table_name=table_name)
    op.drop_table(table_name)


def create_sql(dialect: Dialect, table_name: str = DEFAULT_TABLE_NAME) -> str:
    """The ``CREATE TABLE`` and ``CREATE INDEX`` statements for ``dialect``, as SQL text."""
    table = session_table(sa.MetaData(), table_name)
    statements = [CreateTable(table, if_not_exists=True)] + [
        # table.indexes is a set: sorted, the text is the same in every process
        CreateIndex(index, if_not_exists=dialect.name != "mysql")
        for index in sorted(table.indexes, key=lambda index: str(index.name))
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


def upgrade_sql(
    dialect: Dialect, table_name: str = DEFAULT_TABLE_NAME, missing: tuple[str, ...] = USER_COLUMNS
) -> str:
    """The ``ALTER TABLE`` statements that add the ``missing`` columns of sessions per user (and
    their index) to a table made by an earlier version, as SQL text for ``dialect``.

    PostgreSQL and MariaDB get ``IF NOT EXISTS``, so the text can be run twice; SQLite and
    MySQL have no such clause for columns, so run each statement once.
    """
    return "".join(
        f"{statement};\n" for statement in _upgrade_statements(dialect, table_name, missing)
    )


def _upgrade_statements(dialect: Dialect, table_name: str, missing: tuple[str, ...]) -> list[str]:
    table = session_table(sa.MetaData(), table_name)
    quote = dialect.identifier_preparer.quote
    guard = "IF NOT EXISTS " if dialect.name == "postgresql" or _is_mariadb(dialect) else ""
    statements = [
        f"ALTER TABLE {quote(table_name)} ADD COLUMN {guard}{quote(name)} "
        f"{table.c[name].type.compile(dialect=dialect)}"
        for name in USER_COLUMNS
        if name in missing
    ]
    index = next(ix for ix in table.indexes if ix.name == user_index_name(table_name))
    create = CreateIndex(index, if_not_exists=dialect.name != "mysql" or _is_mariadb(dialect))
    statements.append(str(create.compile(dialect=dialect)).strip())
    return statements


def _is_mariadb(dialect: Dialect) -> bool:
    return bool(getattr(dialect, "is_mariadb", False))


def missing_columns(connection: Connection, table_name: str) -> tuple[str, ...]:
    """The columns of sessions per user that the existing table ``table_name`` lacks."""
    present = {column["name"] for column in sa.inspect(connection).get_columns(table_name)}
    return tuple(name for name in USER_COLUMNS if name not in present)


def table_exists(connection: Connection, table_name: str) -> bool:
    """Whether ``table_name`` exists in the database ``connection`` is connected to."""
    return sa.inspect(connection).has_table(table_name)


def ensure_table(connection: Connection, table: sa.Table, attempts: int = 5) -> None:
    """Create ``table`` and its indexes unless they exist, and add the columns a table made by
    an earlier version lacks; safe when processes race to do it.

    ``IF NOT EXISTS`` covers most races; a database that still reports a clash (PostgreSQL does
    when two sessions create one table at the same instant; SQLite, which has no ``ADD COLUMN IF
    NOT EXISTS``, when two processes add one column) is checked again and retried, and the
    second look finds the work done.
    """
    for attempt in range(attempts):
        try:
            if not table_exists(connection, table.name):
                connection.execute(CreateTable(table, if_not_exists=True))
            else:
                _add_columns(connection, table.name)
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


def _add_columns(connection: Connection, table_name: str) -> None:
    missing = missing_columns(connection, table_name)
    if missing:
        for statement in _upgrade_statements(connection.dialect, table_name, missing)[:-1]:
            connection.execute(sa.text(statement))  # the index is created with the others


def _create_index(connection: Connection, index: sa.Index) -> None:
    if connection.dialect.name == "mysql":  # MySQL (not MariaDB) has no CREATE INDEX IF NOT EXISTS
        connection.execute(CreateIndex(index))
    else:
        connection.execute(CreateIndex(index, if_not_exists=True))
