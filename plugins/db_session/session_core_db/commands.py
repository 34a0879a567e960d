"""The db store's commands: ``session-core db schema`` prints the SQL that creates the sessions
table (``python -m session_core_db`` runs the same command, with the same options), and
``session-core db upgrade`` the SQL that adds the columns of sessions per user to a table made
before them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

if TYPE_CHECKING:
    from session_core.hookspecs import Subparsers

from .schema import DEFAULT_TABLE_NAME, create_sql, upgrade_sql

__all__ = ["add_commands", "main", "print_schema", "print_upgrade"]

_SCHEMA_HELP = "print the SQL that creates the session-core-db sessions table"
_UPGRADE_HELP = (
    "print the SQL that adds the columns of sessions per user to a sessions table made before "
    "them (the store adds them itself at first use when create_table is true)"
)


def add_commands(subparsers: Subparsers) -> None:
    """Add ``session-core db`` and its subcommands to the ``session-core`` command line."""
    db = subparsers.add_parser(
        "db", help="the db store's tools", description="Tools of the db store (session-core-db)."
    )
    tools = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    schema = tools.add_parser("schema", help=_SCHEMA_HELP, description=_SCHEMA_HELP + ".")
    _schema_arguments(schema)
    schema.set_defaults(run=print_schema)
    upgrade = tools.add_parser("upgrade", help=_UPGRADE_HELP, description=_UPGRADE_HELP + ".")
    _schema_arguments(upgrade)
    upgrade.set_defaults(run=print_upgrade)


def _schema_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="a SQLAlchemy database URL (only its dialect is used)")
    where.add_argument(
        "--dialect",
        default="sqlite",
        choices=["postgresql", "sqlite", "mariadb", "mysql"],
        help="the database kind (default: sqlite)",
    )
    parser.add_argument("--table", default=DEFAULT_TABLE_NAME, help="the table name")


def _dialect_for(args: argparse.Namespace) -> Dialect:
    dialect: Dialect = sa.make_url(args.url or f"{args.dialect}://").get_dialect()()
    return dialect


def print_schema(args: argparse.Namespace, out: TextIO) -> int:
    """Write the DDL for the sessions table (``args.url`` or ``args.dialect``, ``args.table``)
    to ``out``; returns the exit code."""
    out.write(create_sql(_dialect_for(args), args.table))
    return 0


def print_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    """Write the ``ALTER TABLE`` statements that upgrade an existing sessions table
    (``args.url`` or ``args.dialect``, ``args.table``) to ``out``; returns the exit code."""
    out.write(upgrade_sql(_dialect_for(args), args.table))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m session_core_db``: the same as ``session-core db schema``."""
    parser = argparse.ArgumentParser(
        prog="python -m session_core_db",
        description=_SCHEMA_HELP[0].upper() + _SCHEMA_HELP[1:] + " (the same as "
        "`session-core db schema`).",
    )
    _schema_arguments(parser)
    return print_schema(parser.parse_args(argv), sys.stdout)
