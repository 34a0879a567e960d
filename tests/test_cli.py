"""The ``session-core`` command: run as users run it (a subprocess, ``python -m`` and the console
script), and in-process where a store has to misbehave on purpose."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from session_core import StoreUnreachableError
from session_core.cli import main
from session_core.store import Changes, SessionRecord
from session_core.testing import MemoryStore, make_record

SECRET = "cli-test-secret-" + "k" * 40
SUBCOMMANDS = ("stores", "check", "clear-expired", "demo")


@pytest.fixture
def run_cli(tmp_path, live_clean_env):
    """Run ``python -m session_core ARGS`` in ``tmp_path`` with only the given
    ``SESSION_CORE_*`` variables."""

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "session_core", *args],
            cwd=tmp_path,
            env=live_clean_env(**env),
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def _one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("session-core: error: ")
    return result.stderr


# ---------------------------------------------------------------------- help


def test_help_everywhere(run_cli):
    top = run_cli("--help")
    assert top.returncode == 0
    for name in SUBCOMMANDS:
        assert name in top.stdout
    for name in SUBCOMMANDS:
        result = run_cli(name, "--help")
        assert result.returncode == 0, result.stderr
        assert f"usage: session-core {name}" in result.stdout
        assert "--config FILE" in result.stdout
    demo_help = run_cli("demo", "--help").stdout
    for option in ("--store", "--store-option", "--host", "--port"):
        assert option in demo_help


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("session-core")
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("session-core ")


# ---------------------------------------------------------------------- stores


def test_stores_table_and_json(run_cli):
    table = run_cli("stores")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "DISTRIBUTION", "VERSION", "MODULE", "STATUS"]
    assert any(row.split()[:2] == ["cookie", "session-core"] for row in rows)

    listed = json.loads(run_cli("stores", "--json").stdout)
    cookie = next(item for item in listed if item["name"] == "cookie")
    assert cookie["distribution"] == "session-core"
    assert cookie["status"] == "ok"
    assert cookie["error"] is None


# ---------------------------------------------------------------------- check


def test_check_makes_a_round_trip(run_cli):
    result = run_cli("check", SESSION_CORE_SECRET_KEY=SECRET)
    assert result.returncode == 0, result.stderr
    assert "configuration is valid (store 'cookie')" in result.stdout
    assert "read it back" in result.stdout
    assert result.stdout.rstrip().endswith("all checks passed")


def test_check_reads_the_config_file(run_cli, tmp_path):
    (tmp_path / "session.toml").write_text(
        f'[session_core]\nsecret_key = "{SECRET}"\ncookie_name = "sid"\n'
    )
    assert run_cli("check", "--config", "session.toml").returncode == 0
    assert run_cli("check", SESSION_CORE_CONFIG="session.toml").returncode == 0


def test_missing_secret_says_how_to_make_one(run_cli):
    err = _one_line_error(run_cli("check"), 2)
    assert "secret_key" in err
    assert "SESSION_CORE_SECRET_KEY" in err
    assert "secrets.token_urlsafe" in err


@pytest.mark.parametrize("command", ["check", "clear-expired"])
def test_unknown_store_names_the_choices_and_the_install(run_cli, command):
    err = _one_line_error(run_cli(command, "--store", "nosuch", SESSION_CORE_SECRET_KEY=SECRET), 1)
    assert "'nosuch'" in err
    assert "'cookie'" in err
    assert "pip install session-core-nosuch" in err


def test_unreadable_and_invalid_config_files(run_cli, tmp_path):
    err = _one_line_error(run_cli("check", "--config", "nope.toml"), 2)
    assert "cannot read the configuration file 'nope.toml'" in err
    (tmp_path / "bad.toml").write_text("secret_key = \n")
    assert "is not valid TOML" in _one_line_error(run_cli("check", "--config", "bad.toml"), 2)
    (tmp_path / "typo.toml").write_text(f'secret_key = "{SECRET}"\ncookie_nam = "x"\n')
    assert "did you mean 'cookie_name'" in _one_line_error(
        run_cli("check", "--config", "typo.toml"), 2
    )


def test_bad_environment_variables(run_cli):
    err = _one_line_error(
        run_cli("check", SESSION_CORE_SECRET_KEY=SECRET, SESSION_CORE_NOPE="1"), 2
    )
    assert "SESSION_CORE_NOPE names no setting" in err
    err = _one_line_error(
        run_cli("check", SESSION_CORE_SECRET_KEY=SECRET, SESSION_CORE_COOKIE_SECURE="maybe"), 2
    )
    assert "write true or false" in err


class DownStore(MemoryStore):
    """A store whose server is down."""

    name = "down"

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        raise StoreUnreachableError("down", "127.0.0.1:1", "save", "connection refused")


class ForgetfulStore(MemoryStore):
    """A store that accepts writes and loses them."""

    name = "forgetful"

    def load(self, key: str) -> SessionRecord | None:
        return None


def _run_in_process(monkeypatch, store, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("SESSION_CORE_SECRET_KEY", SECRET)
    monkeypatch.setattr("session_core.cli.create_store", lambda config: store)
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def test_check_with_the_store_down_is_one_line(monkeypatch, capsys):
    code, out = _run_in_process(monkeypatch, DownStore(), "check")
    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        "session-core: error: session store 'down' could not save at 127.0.0.1:1: "
        "connection refused\n"
    )
    assert "all checks passed" not in out


def test_check_fails_when_the_data_does_not_come_back(monkeypatch):
    code, out = _run_in_process(monkeypatch, ForgetfulStore(), "check")
    assert code == 1
    assert "FAIL the probe session did not read back" in out


# ---------------------------------------------------------------------- clear-expired


def test_clear_expired_on_a_store_that_needs_none(run_cli):
    result = run_cli("clear-expired", SESSION_CORE_SECRET_KEY=SECRET)
    assert result.returncode == 0
    assert "needs no cleanup" in result.stdout


def test_clear_expired_counts_what_it_removed(monkeypatch):
    store = MemoryStore()
    for n in range(3):  # already expired when saved: no need to wait for the clock
        store.save(None, make_record({"n": n}, ttl=-1), Changes(frozenset({"n"})))
    live = store.save(None, make_record({"live": True}), Changes(frozenset({"live"})))
    code, out = _run_in_process(monkeypatch, store, "clear-expired")
    assert code == 0
    assert out.startswith("removed 3 expired sessions in ")
    assert live is not None
    assert store.load(live) is not None
    code, out = _run_in_process(monkeypatch, store, "clear-expired")
    assert out.startswith("removed 0 expired sessions")


def test_a_plugin_raising_its_own_exception_is_one_line(tmp_path, monkeypatch, capsys):
    from session_core import cli
    from session_core.testing import MemoryStore

    class Broken(MemoryStore):
        def save(self, key, record, changes):
            raise ConnectionResetError("peer went away")

    monkeypatch.setattr(cli, "create_store", lambda config: Broken())
    monkeypatch.setenv("SESSION_CORE_SECRET_KEY", "s" * 40)
    assert cli.main(["check"]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err == "session-core: error: the check command failed: ConnectionResetError: peer went away"
    )
