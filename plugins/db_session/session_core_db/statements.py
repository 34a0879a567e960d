"""The store's SQL statements, built once with SQLAlchemy Core.

Each statement is built when the store is, and compiled once for the database's dialect (and
once for the async engine's), so a request pays neither for building nor for compiling SQL: both
paths hand the compiled text straight to the driver's cursor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from .plans import Kind

Statement = sa.Select[Any] | sa.Insert | sa.Update | sa.Delete | sa.TextClause
"""A statement the store runs."""

__all__ = ["CompiledStatement", "Statement", "Statements", "fetch"]

_FORMAT_TOO = frozenset({"psycopg", "psycopg2", "pymysql", "mysqldb"})
"""Drivers whose dialect compiles ``%(name)s`` (pyformat) and which take ``%s`` (format) as well:
positional parameters spare them matching names to placeholders on every call (with psycopg,
about 7% of the instructions of a whole load)."""

_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s")


@dataclass(frozen=True, slots=True)
class CompiledStatement:
    """A statement compiled for one dialect, ready for a DB-API cursor.

    Attributes:
        sql: the SQL text in a parameter style the driver takes: positional (``?``, ``%s``,
            ``$1``) whenever it takes one, named otherwise.
        order: parameter names in order, for positional parameter styles; ``None`` for named.
        defaults: values of parameters the statement fixes itself (such as a LIMIT).
    """

    sql: str
    order: tuple[str, ...] | None
    defaults: Mapping[str, Any]
    _pick: Callable[[Mapping[str, Any]], Any] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # itemgetter picks the positional values in C; with one name it returns the value
        # itself, not a 1-tuple, so that case is left to parameters().
        if self.order is not None and len(self.order) > 1:
            object.__setattr__(self, "_pick", itemgetter(*self.order))

    @classmethod
    def of(cls, statement: Statement, dialect: Dialect) -> CompiledStatement:
        """Compile ``statement`` for ``dialect``."""
        compiled = statement.compile(dialect=dialect)
        sql = compiled.string
        order: tuple[str, ...] | None = None
        if compiled.positional:
            order = tuple(compiled.positiontup or ())
        elif dialect.paramstyle == "pyformat" and dialect.driver in _FORMAT_TOO:
            names: list[str] = []

            def positional(match: re.Match[str]) -> str:
                if match.group(1) is None:
                    return "%%"  # a literal percent sign, escaped alike in both styles
                names.append(match.group(1))
                return "%s"

            sql = _PLACEHOLDER.sub(positional, sql)
            order = tuple(names)
        # Only what the statement fixes itself (a LIMIT); the others are the caller's to give.
        binds = compiled.binds
        defaults = {
            name: value for name, value in compiled.params.items() if not binds[name].required
        }
        return cls(sql, order, defaults)

    def parameters(self, values: Mapping[str, Any]) -> Any:
        """The cursor parameters for ``values`` (a tuple or a dict, as the driver wants)."""
        merged = {**self.defaults, **values} if self.defaults else values
        if self._pick is not None:
            return self._pick(merged)
        if self.order is None:
            return merged
        return tuple(merged[name] for name in self.order)


class Statements:
    """Every statement the store runs against ``table``, by name.

    Parameters: ``h`` the key hash, ``now`` and ``cutoff`` Unix times, ``p_data`` and
    ``p_expiry`` JSON text, ``p_expires_at`` a Unix time, ``p_version`` the version a write sets
    and ``expected`` the version an update expects to find; for sessions per user, ``p_user``
    the user's id as text, ``p_user_int`` whether it was an int, ``p_client`` JSON text or
    ``None``, and ``keep`` the key hash ``revoke_keeping`` spares.

    A new row takes ``now`` as its ``created_at`` and ``seen_at``; an update sets ``seen_at``
    to its ``now`` (no extra parameter) and ``client`` only when given, and never touches
    ``user_id``: a session is bound to a user when it is created, and ordinary requests pay
    nothing for the binding.

    ``begin``, ``lock``, ``commit`` and ``rollback`` are the locked merge's: a transaction that
    locks the session's row (``SELECT ... FOR UPDATE``; on SQLite, whose locks are per file,
    ``BEGIN IMMEDIATE`` takes the write lock at once) so that no other writer can change it
    before the merge is written.
    """

    def __init__(self, table: sa.Table, dialect: Dialect, batch_size: int) -> None:
        # Statements are compiled before the first connection, and SQLAlchemy 2.0 learns that a
        # MariaDB server takes DELETE ... RETURNING only when it connects (2.1 knows it from the
        # URL): a mariadb:// URL says it already.
        self.revoke_returns: bool = bool(dialect.delete_returning) or (
            getattr(dialect, "is_mariadb", False) is True
        )
        """Whether ``revoke`` returns the ``expires_at`` of each row it deleted (``DELETE ...
        RETURNING``: PostgreSQL, MariaDB, SQLite 3.35+), so it can remove a user's expired rows
        too and still count only the live ones; else (MySQL) it deletes the live rows only and
        returns their count, leaving the expired ones to ``clear_expired``."""
        c = table.c
        h = sa.bindparam("h", type_=c.key_hash.type)
        now: sa.BindParameter[float] = sa.bindparam("now", type_=sa.Double())
        values = {
            "data": sa.bindparam("p_data", type_=c.data.type),
            "expiry": sa.bindparam("p_expiry", type_=c.expiry.type),
            "expires_at": sa.bindparam("p_expires_at", type_=sa.Double()),
            "version": sa.bindparam("p_version", type_=sa.BigInteger()),
        }
        user = sa.bindparam("p_user", type_=c.user_id.type)
        client = sa.bindparam("p_client", type_=c.client.type)
        expired = c.expires_at <= sa.bindparam("cutoff", type_=sa.Double())
        if dialect.name in ("mysql", "mariadb"):
            # MySQL and MariaDB refuse LIMIT in an IN subquery but have DELETE ... LIMIT.
            clear: Statement = (
                sa.delete(table)
                .where(expired)
                .with_dialect_options(mysql_limit=batch_size, mariadb_limit=batch_size)
            )
        else:
            batch = sa.select(c.key_hash).where(expired).limit(batch_size)
            clear = sa.delete(table).where(c.key_hash.in_(batch.scalar_subquery()))
        self.by_name: dict[str, Statement] = {
            "load": sa.select(
                c.data, c.expiry, c.expires_at, c.version, c.user_id, c.user_id_int
            ).where(c.key_hash == h, c.expires_at > now),
            "insert": sa.insert(table).values(
                key_hash=h,
                **values,
                user_id=user,
                user_id_int=sa.bindparam("p_user_int", type_=sa.Boolean()),
                created_at=now,
                seen_at=now,
                client=client,
            ),
            "update": sa.update(table)
            .where(
                c.key_hash == h,
                c.version == sa.bindparam("expected", type_=sa.BigInteger()),
                c.expires_at > now,
            )
            .values(**values, seen_at=now, client=sa.func.coalesce(client, c.client))
            # InnoDB may pick the expires_at index for so small a table: the update would then
            # lock that index's entry before the row, and deadlock against a writer that
            # holds the row (the row lock of a locked merge) and must change that entry.
            .with_hint("FORCE INDEX (PRIMARY)", dialect_name="mysql")
            .with_hint("FORCE INDEX (PRIMARY)", dialect_name="mariadb"),
            "delete": sa.delete(table).where(c.key_hash == h),
            "clear": clear,
            # Only the primary key in the WHERE clause: the row lock is taken through it alone
            # (an index range on expires_at would lock more); the expiry is checked by the store.
            "lock": sa.select(c.data, c.expiry, c.expires_at, c.version)
            .where(c.key_hash == h)
            .with_for_update(),
            "sessions": sa.select(
                c.key_hash,
                c.user_id,
                c.user_id_int,
                c.created_at,
                c.seen_at,
                c.expires_at,
                c.client,
            )
            .where(c.user_id == user, c.expires_at > now)
            .order_by(c.seen_at.desc()),
            "revoke": _revoke(table, c.user_id == user, now, self.revoke_returns),
            "revoke_keeping": _revoke(
                table,
                sa.and_(
                    c.user_id == user, c.key_hash != sa.bindparam("keep", type_=c.key_hash.type)
                ),
                now,
                self.revoke_returns,
            ),
            "begin": sa.text("BEGIN IMMEDIATE" if dialect.name == "sqlite" else "BEGIN"),
            "commit": sa.text("COMMIT"),
            "rollback": sa.text("ROLLBACK"),
        }
        self.compiled = {
            name: CompiledStatement.of(statement, dialect)
            for name, statement in self.by_name.items()
        }


def _revoke(table: sa.Table, whose: Any, now: Any, returning: bool) -> sa.Delete | sa.Update:
    """The one ``DELETE`` of a revocation of the rows ``whose`` picks. (SQLAlchemy's stubs type
    ``delete().returning()`` as a subclass of ``Update``.)"""
    if returning:
        return sa.delete(table).where(whose).returning(table.c.expires_at)
    return sa.delete(table).where(whose, table.c.expires_at > now)


def fetch(cursor: Any, statement: CompiledStatement, kind: Kind, params: Any) -> Any:
    """Run ``statement`` on a DB-API ``cursor``: the first row for a ``ROW`` step, every row
    for a ``ROWS`` step, else the rows written."""
    cursor.execute(statement.sql, statement.parameters(params))
    if kind is Kind.ROW:
        return cursor.fetchone()
    return cursor.fetchall() if kind is Kind.ROWS else cursor.rowcount
