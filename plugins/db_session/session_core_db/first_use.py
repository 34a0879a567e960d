"""What the store does on its first call: create (or look for) the table, read the size limit."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .errors import MissingTableError
from .limits import read_limit
from .plans import Plans
from .schema import ensure_table, table_exists

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
        """Create the table (or check it exists) and read the database's size limit, on
        ``connection``; for ``operation``, as named in errors."""
        if self.create_table:
            ensure_table(connection, self.table)
        elif not table_exists(connection, self.table.name):
            raise MissingTableError(self.table.name, self.target, operation)
        self.plans.set_limit(read_limit(connection))
        self.ready = True
