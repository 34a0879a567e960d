"""The db store's own exception, and how database errors become session-core ones."""

from __future__ import annotations

from sqlalchemy.engine import URL

from session_core import ConfigurationError, StoreUnreachableError

__all__ = ["MissingTableError", "timed_out", "unreachable"]


class MissingTableError(ConfigurationError):
    """The sessions table does not exist and ``create_table`` is false.

    Raised by the first operation that finds it missing, with the ways to create it.

    Attributes:
        table_name: the missing table.
        target: the database URL, without its password.
    """

    def __init__(self, table_name: str, target: str) -> None:
        self.table_name = table_name
        self.target = target
        super().__init__(
            "store_options",
            f"the sessions table {table_name!r} does not exist in {target} and create_table "
            f"is false. Create it with one of: set create_table = true; run the SQL printed by "
            f"`python -m session_core_db --url '{target}' --table {table_name}`; run "
            f"the schema.sql shipped in the session_core_db package; or, with Alembic, call "
            f"session_core_db.create_session_table(op, {table_name!r}) in a migration",
        )


def unreachable(url: URL, operation: str, exc: BaseException) -> StoreUnreachableError:
    """A :class:`~session_core.StoreUnreachableError` for ``exc``, naming the db store and
    ``url`` without its password (also scrubbed from the driver's message).

    Only the first line of the driver's message is kept: SQLAlchemy's own message would add
    the statement's parameters, which hold session data.
    """
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip() or type(original).__name__
    reason = text.splitlines()[0]
    if url.password:
        reason = reason.replace(str(url.password), "***")
    target = url.render_as_string(hide_password=True)
    return StoreUnreachableError("db", target, operation, f"{type(original).__name__}: {reason}")


def timed_out(url: URL, operation: str, seconds: float) -> StoreUnreachableError:
    """A :class:`~session_core.StoreUnreachableError` for a database that did not answer within
    the ``timeout`` option's ``seconds``."""
    target = url.render_as_string(hide_password=True)
    return StoreUnreachableError(
        "db",
        target,
        operation,
        f"timed out after {seconds:g} seconds: the database did not answer (the timeout option)",
    )
