"""``session-core db schema`` (added through the plugin hook) and its alias
``python -m session_core_db``, run as users run them."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from session_core.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_CORE_")}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.mark.parametrize("options", [[], ["--dialect", "mariadb", "--table", "my_sessions"]])
def test_session_core_db_schema_is_the_module_command(options: list[str]) -> None:
    command = _run("-m", "session_core", "db", "schema", *options)
    alias = _run("-m", "session_core_db", *options)
    assert command.returncode == alias.returncode == 0, (command.stderr, alias.stderr)
    assert command.stderr == alias.stderr == ""
    assert command.stdout == alias.stdout
    assert "CREATE TABLE IF NOT EXISTS" in command.stdout


def test_db_command_is_listed_in_the_help() -> None:
    top = _run("-m", "session_core", "--help")
    assert top.returncode == 0
    assert "db" in top.stdout.split("positional arguments:")[1]
    schema_help = _run("-m", "session_core", "db", "schema", "--help")
    assert "usage: session-core db schema" in schema_help.stdout
    for option in ("--url", "--dialect", "--table"):
        assert option in schema_help.stdout


def test_db_schema_in_process_writes_to_the_given_stream() -> None:
    out = io.StringIO()
    assert main(["db", "schema", "--url", "postgresql+psycopg://u@h/d"], out=out) == 0
    assert "CREATE TABLE IF NOT EXISTS session_core_sessions" in out.getvalue()
    assert "VARCHAR(64)" in out.getvalue()


def test_db_upgrade_prints_the_alter_statements() -> None:
    command = _run("-m", "session_core", "db", "upgrade", "--dialect", "postgresql")
    assert command.returncode == 0, command.stderr
    lines = command.stdout.splitlines()
    assert lines[0] == (
        "ALTER TABLE session_core_sessions ADD COLUMN IF NOT EXISTS user_id VARCHAR(255);"
    )
    assert lines[-1] == (
        "CREATE INDEX IF NOT EXISTS ix_session_core_sessions_user_id "
        "ON session_core_sessions (user_id) WHERE user_id IS NOT NULL;"
    )
    out = io.StringIO()
    assert main(["db", "upgrade", "--dialect", "sqlite", "--table", "my_sessions"], out=out) == 0
    # SQLite has no ADD COLUMN IF NOT EXISTS: the statements are run once.
    assert "ALTER TABLE my_sessions ADD COLUMN client TEXT;" in out.getvalue()
    upgrade_help = _run("-m", "session_core", "db", "upgrade", "--help")
    assert "usage: session-core db upgrade" in upgrade_help.stdout
