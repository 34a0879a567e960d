"""The store's SQL statements, built once with SQLAlchemy Core.

Each statement is built when the store is, and compiled once for the database's dialect, so a
request pays neither for building nor for compiling SQL: the sync path hands the compiled text
straight to the driver's cursor, the async path executes the cached construct.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

Statement = sa.Select[Any] | sa.Insert | sa.Update | sa.Delete
"""A statement the store runs."""

__all__ = ["CompiledStatement", "Statement", "Statements"]


@dataclass(frozen=True, slots=True)
class CompiledStatement:
    """A statement compiled for one dialect, ready for a DB-API cursor.

    Attributes:
        sql: the SQL text in the driver's parameter style.
        order: parameter names in order, for positional parameter styles; ``None`` for named.
        defaults: values of parameters the statement fixes itself (such as a LIMIT).
    """

    sql: str
    order: tuple[str, ...] | None
    defaults: Mapping[str, Any]

    @classmethod
    def of(cls, statement: Statement, dialect: Dialect) -> CompiledStatement:
        """Compile ``statement`` for ``dialect``."""
        compiled = statement.compile(dialect=dialect)
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        return cls(compiled.string, order, dict(compiled.params))

    def parameters(self, values: Mapping[str, Any]) -> Any:
        """The cursor parameters for ``values`` (a tuple or a dict, as the driver wants)."""
        merged = {**self.defaults, **values} if self.defaults else values
        if self.order is None:
            return merged
        return tuple(merged[name] for name in self.order)


class Statements:
    """Every statement the store runs against ``table``, by name.

    Parameters: ``h`` the key hash, ``now`` and ``cutoff`` Unix times, ``p_data`` and
    ``p_expiry`` JSON text, ``p_expires_at`` a Unix time, ``p_version`` the version a write sets
    and ``expected`` the version an update expects to find.
    """

    def __init__(self, table: sa.Table, dialect: Dialect, batch_size: int) -> None:
        c = table.c
        h = sa.bindparam("h", type_=c.key_hash.type)
        now: sa.BindParameter[float] = sa.bindparam("now", type_=sa.Double())
        values = {
            "data": sa.bindparam("p_data", type_=c.data.type),
            "expiry": sa.bindparam("p_expiry", type_=c.expiry.type),
            "expires_at": sa.bindparam("p_expires_at", type_=sa.Double()),
            "version": sa.bindparam("p_version", type_=sa.BigInteger()),
        }
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
            "load": sa.select(c.data, c.expiry, c.expires_at, c.version).where(
                c.key_hash == h, c.expires_at > now
            ),
            "insert": sa.insert(table).values(key_hash=h, **values),
            "update": sa.update(table)
            .where(
                c.key_hash == h,
                c.version == sa.bindparam("expected", type_=sa.BigInteger()),
                c.expires_at > now,
            )
            .values(**values),
            "delete": sa.delete(table).where(c.key_hash == h),
            "clear": clear,
        }
        self.compiled = {
            name: CompiledStatement.of(statement, dialect)
            for name, statement in self.by_name.items()
        }
