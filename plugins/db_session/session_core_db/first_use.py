"""What the store does on its first call: create (or look for) the table, read the size limit."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .errors import MissingTableError, OutdatedTableError
from .limits import read_limit
from .plans import Plans
from .schema import ensure_table, missing_columns, table_exists, upgrade_sql

__all__ = ["FirstUse"]


class FirstUse:
    """Prepares the database once, on whichever driver (sync or async) gets there first."""

    def __init__(self, table: sa.Table, create_table: bool, target: str, plans: Plans) -> None:
        self.table = table
        self.create_table = create_table
        self.target = target
        self.plans = plans
        self.ready = False

    def prepare(self, connection: Connection, operation: str) -> None:
        """Create or upgrade the table (or check it is there and current) and read the
        database's size limit, on ``connection``; for ``operation``, as named in errors."""
        name = self.table.name
        if self.create_table:
            ensure_table(connection, self.table)
        elif not table_exists(connection, name):
            raise MissingTableError(name, self.target, operation)
        else:
            missing = missing_columns(connection, name)
            if missing:
                sql = upgrade_sql(connection.dialect, name, missing)
                raise OutdatedTableError(name, self.target, operation, missing, sql)
        self.plans.set_limit(read_limit(connection))
        self.ready = True
