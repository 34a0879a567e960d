"""The ``session-core`` command: run as users run it (a subprocess, ``python -m`` and the console
script), and in-process where a store has to misbehave on purpose."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_site import GOOD_STORE, Installer

from session_core.cli import main
from session_core.store import Changes, SessionRecord
from session_core.testing import MemoryStore, OutageStore, make_record

SECRET = "cli-test-secret-" + "k" * 40
SUBCOMMANDS = ("stores", "check", "clear-expired", "sign-out", "demo")


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
    assert "configuration is valid (store 'cookie'; settings from SESSION_CORE_* variables)" in (
        result.stdout
    )
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
    err = _one_line_error(run_cli(command, "--store", "nosuch", SESSION_CORE_SECRET_KEY=SECRET), 2)
    assert "'nosuch'" in err
    assert "'cookie'" in err
    assert "pip install" not in err, (
        "a distribution name made up from the store's invites squatting"
    )
    assert "session-core stores" in err


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
    store = OutageStore()
    store.fail("save")
    code, out = _run_in_process(monkeypatch, store, "check")
    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        "session-core: error: session store 'memory' could not save at 127.0.0.1:1: "
        "connection refused; nothing answers at that address: start the server, or fix the "
        "host and port in the store's url option\n"
    )
    assert "all checks passed" not in out


def test_check_fails_when_the_data_does_not_come_back(monkeypatch):
    code, out = _run_in_process(monkeypatch, ForgetfulStore(), "check")
    assert code == 1
    assert "FAIL the probe session did not read back" in out


# ---------------------------------------------------------------------- sign-out


def test_sign_out_on_the_cookie_store_says_which_stores_can(run_cli):
    result = run_cli("sign-out", "--user", "7", SESSION_CORE_SECRET_KEY=SECRET)
    err = _one_line_error(result, 1)
    assert "session store 'cookie' cannot revoke the sessions of a user" in err
    assert "indexes_users = True" in err
    assert "'redis'" in err


def test_sign_out_needs_a_user(run_cli):
    result = run_cli("sign-out", SESSION_CORE_SECRET_KEY=SECRET)
    assert result.returncode == 2
    assert "--user" in result.stderr


def test_sign_out_deletes_every_session_of_the_user_only(monkeypatch):
    store = MemoryStore()
    mine = []
    for user_id in (7, "7", 8):  # the app's int 7 and str "7" are one user
        record = make_record({"n": 1})
        record.user_id = user_id
        key = store.save(None, record, Changes.everything(record))
        assert key is not None
        mine.append(key)
    code, out = _run_in_process(monkeypatch, store, "sign-out", "--user", "7")
    assert code == 0
    assert out == "signed user '7' out of 2 sessions\n"
    assert store.load(mine[0]) is None
    assert store.load(mine[1]) is None
    assert store.load(mine[2]) is not None
    code, out = _run_in_process(monkeypatch, store, "sign-out", "--user", "7")
    assert out == "signed user '7' out of 0 sessions\n"


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
    assert out.startswith("removed 3 expired sessions from the memory store")
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
    # The driver's own exception is reported with the store and where it points.
    assert err == (
        "session-core: error: session store 'memory' could not save a probe session at "
        "the memory store, as its options set it (it names no address): "
        "ConnectionResetError: peer went away"
    )


# ---------------------------------------------------------------------- plugins


@pytest.fixture
def site(tmp_path):
    """Plugin distributions that the ``session-core`` subprocesses find (on their PYTHONPATH)."""
    folder = tmp_path / "site"
    folder.mkdir()
    return Installer(folder)


@pytest.fixture
def run_with_site(run_cli, site):
    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, PYTHONPATH=str(site.folder), **env)

    return run


HELLO = """
import session_core

def hello(args, out):
    out.write(f"hello {args.name}\\n")
    return 3

def fail(args, out):
    raise RuntimeError("the hello server is down")

@session_core.hookimpl
def session_core_add_commands(subparsers):
    parser = subparsers.add_parser("hello", help="say hello")
    parser.add_argument("--name", default="world")
    parser.set_defaults(run=hello)
    subparsers.add_parser("hello-fail", help="fail").set_defaults(run=fail)
"""

RAISES_IN_HOOK = """
import session_core

@session_core.hookimpl
def session_core_add_commands(subparsers):
    raise KeyError("oops")
"""

TAKES_CHECK = """
import session_core

@session_core.hookimpl
def session_core_add_commands(subparsers):
    subparsers.add_parser("check", help="mine now")
"""


def test_check_of_a_misspelt_store_suggests_the_installed_one(run_with_site, site):
    site.install("session-core-memcached", "1.0", ["memcached"])
    result = run_with_site("check", "--store", "memcache", SESSION_CORE_SECRET_KEY=SECRET)
    err = _one_line_error(result, 2)
    assert "no session store named 'memcache' is installed" in err
    assert "did you mean 'memcached'?" in err
    assert "pip install" not in err
    assert "configuration is valid" not in result.stdout


def test_check_of_a_store_whose_constructor_raises_value_error(run_with_site, site):
    source = GOOD_STORE.format(api=1).replace(
        "    store = type(", "    raise ValueError('servers must be host:port')\n    store = type("
    )
    site.install("session-core-memcached", "1.0", ["memcached"], source)
    result = run_with_site("check", "--store", "memcached", SESSION_CORE_SECRET_KEY=SECRET)
    err = _one_line_error(result, 1)
    assert "'memcached' (distribution session-core-memcached 1.0)" in err
    assert "session_core_create_store hook raised ValueError: servers must be host:port" in err
    assert "the check command failed" not in err


def test_a_plugin_adds_a_command(run_with_site, site):
    site.install("session-core-hello", "0.2", extensions=["hello"], source=HELLO)
    top = run_with_site("--help")
    assert top.returncode == 0
    assert "hello" in top.stdout
    assert "say hello" in top.stdout
    assert "--name NAME" in run_with_site("hello", "--help").stdout
    result = run_with_site("hello", "--name", "Ada")
    assert (result.returncode, result.stdout, result.stderr) == (3, "hello Ada\n", "")


def test_a_failing_plugin_command_is_one_line_naming_its_distribution(run_with_site, site):
    site.install("session-core-hello", "0.2", extensions=["hello"], source=HELLO)
    err = _one_line_error(run_with_site("hello-fail"), 1)
    assert err == (
        "session-core: error: the hello-fail command (from session-core-hello 0.2) failed: "
        "RuntimeError: the hello server is down\n"
    )


def test_broken_plugins_do_not_break_the_command_line(run_with_site, site):
    site.install("session-core-hello", "0.2", extensions=["hello"], source=HELLO)
    site.install("broken-store", "1.0", ["broken"], "raise RuntimeError('store boom')\n")
    site.install("broken-ext", "1.0", extensions=["brokenext"], source="import nowhere_at_all\n")
    site.install("raising-ext", "1.0", extensions=["raising"], source=RAISES_IN_HOOK)
    site.install("greedy-ext", "1.0", extensions=["greedy"], source=TAKES_CHECK)
    top = run_with_site("--help")
    assert top.returncode == 0, top.stderr
    for name in (*SUBCOMMANDS, "hello"):
        assert name in top.stdout
    warnings = top.stderr.splitlines()
    assert all(line.startswith("session-core: warning: ") for line in warnings), warnings
    assert any("'broken'" in w and "store boom" in w for w in warnings)
    assert any("'brokenext'" in w and "nowhere_at_all" in w for w in warnings)
    assert any("'raising'" in w and "KeyError" in w for w in warnings)
    assert any("'greedy'" in w and "conflicting subparser: check" in w for w in warnings)
    assert len(warnings) == 4
    assert run_with_site("hello").stdout == "hello world\n"
    builtin = run_with_site("check", SESSION_CORE_SECRET_KEY=SECRET)
    assert builtin.returncode == 0
    assert builtin.stderr == "", "built-in commands load no plugin"
    assert "all checks passed" in builtin.stdout


def test_stores_lists_extensions_and_the_error_of_a_broken_one(run_with_site, site):
    site.install("session-core-hello", "0.2", extensions=["hello"], source=HELLO)
    site.install("broken-ext", "1.0", extensions=["brokenext"], source="import nowhere_at_all\n")
    table = run_with_site("stores")
    assert table.returncode == 0, table.stderr
    stores, _, extensions = table.stdout.partition("\nEXTENSIONS\n")
    assert "hello" not in stores
    rows = {line.split()[0]: line for line in extensions.splitlines()[1:]}
    assert rows["hello"].split()[1:4] == ["session-core-hello", "0.2", "plug_session_core_hello"]
    assert rows["hello"].endswith("ok")
    assert "error: ModuleNotFoundError: No module named 'nowhere_at_all'" in rows["brokenext"]
    listed = json.loads(run_with_site("stores", "--json").stdout)
    hello = next(row for row in listed if row["name"] == "hello")
    assert hello["kind"] == "extension"
    assert hello["hooks"] == ["session_core_add_commands"]
    assert next(row for row in listed if row["name"] == "cookie")["kind"] == "store"


def test_stores_reports_a_store_whose_create_hook_fails(run_with_site, site):
    source = GOOD_STORE.format(api=1).replace(
        "    store = type(", "    import pymemcache_missing\n    store = type("
    )
    site.install("session-core-memcached", "1.0", ["memcached"], source)
    listed = {row["name"]: row for row in json.loads(run_with_site("stores", "--json").stdout)}
    assert listed["memcached"]["status"] == "error"
    assert "pymemcache_missing" in listed["memcached"]["error"]
