"""session-core-db: the ``db`` session store, sessions in a SQL table through SQLAlchemy Core.

Select it with ``store = "db"`` and configure it with ``store_options`` (``url``,
``table_name``, pool settings, ``create_table``, ...); see :class:`Settings`.
"""

from .errors import (
    MissingTableError,
    OutdatedTableError,
    SessionTooLargeError,
    StoreConflictError,
    UserIdTooLongError,
)
from .options import DEFAULT_SQLITE_FILE, DEFAULT_TIMEOUT, DEFAULT_URL, Settings
from .schema import (
    DEFAULT_TABLE_NAME,
    add_user_columns,
    create_session_table,
    create_sql,
    drop_session_table,
    schema_sql,
    session_table,
    upgrade_sql,
)
from .store import DbStore

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SQLITE_FILE",
    "DEFAULT_TABLE_NAME",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "DbStore",
    "MissingTableError",
    "OutdatedTableError",
    "SessionTooLargeError",
    "Settings",
    "StoreConflictError",
    "UserIdTooLongError",
    "__version__",
    "add_user_columns",
    "create_session_table",
    "create_sql",
    "drop_session_table",
    "schema_sql",
    "session_table",
    "upgrade_sql",
]
