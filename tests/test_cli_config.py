"""What ``session-core check`` and ``clear-expired`` work on: where the settings come from
(``--app``, Django settings, the file and variables), ``--store`` and ``--store-option``, what
the commands print about it, and store errors that say what to do. Real servers: the Redis of
``SESSION_CORE_TEST_REDIS_URL``; the example ``files`` store for a store that needs cleanup."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from session_core._command_config import parse_store_options, redact_url
from session_core.cli import _progress_printer, main
from session_core.store import Changes
from session_core.testing import MemoryStore, make_record

SECRET = "cli-config-test-secret-" + "k" * 40
REDIS_URL = os.environ.get("SESSION_CORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def run_cli(tmp_path, live_clean_env):
    """Run ``python -m session_core ARGS`` in ``tmp_path`` (where the test writes its app
    modules) with only the given ``SESSION_CORE_*`` variables and no DJANGO_SETTINGS_MODULE."""

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environ = live_clean_env(**env)
        if "DJANGO_SETTINGS_MODULE" not in env:
            environ.pop("DJANGO_SETTINGS_MODULE", None)
        environ["PYTHONPATH"] = str(tmp_path)
        return subprocess.run(
            [sys.executable, "-m", "session_core", *args],
            cwd=tmp_path,
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def _refused_port() -> int:
    """A port nothing listens on: bound, then closed, so connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------- --store, --store-option


def test_store_option_values_are_json_when_they_parse():
    assert parse_store_options(["url=redis://h:1/0", "encrypt=true", "n=5", "l=[1]", "s=x y"]) == {
        "url": "redis://h:1/0",
        "encrypt": True,
        "n": 5,
        "l": [1],
        "s": "x y",
    }


def test_a_store_option_without_a_value_is_a_usage_error(run_cli):
    result = run_cli("check", "--store-option", "url", SESSION_CORE_SECRET_KEY=SECRET)
    assert result.returncode == 2
    assert "--store-option 'url': write NAME=VALUE" in result.stderr


def test_another_store_starts_with_no_store_options(run_cli):
    """The configured redis store's url is not handed to the cookie store."""
    result = run_cli(
        "check",
        "--store",
        "cookie",
        SESSION_CORE_SECRET_KEY=SECRET,
        SESSION_CORE_STORE="redis",
        SESSION_CORE_STORE_OPTIONS=json.dumps({"url": REDIS_URL}),
    )
    assert result.returncode == 0, result.stderr
    assert "all checks passed" in result.stdout


def test_store_options_on_the_command_line_reach_the_store_and_are_shown(run_cli):
    result = run_cli(
        "check", "--store", "redis", "--store-option", f"url={REDIS_URL}",
        SESSION_CORE_SECRET_KEY=SECRET,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"probing {REDIS_URL}\n" in result.stdout
    assert "settings from SESSION_CORE_* variables" in result.stdout


def test_the_cookie_store_says_where_its_sessions_are(run_cli):
    result = run_cli("check", SESSION_CORE_SECRET_KEY=SECRET)
    assert "probing the cookie itself" in result.stdout


def test_an_unknown_store_is_a_usage_error(run_cli):
    result = run_cli("check", "--store", "rediss", SESSION_CORE_SECRET_KEY=SECRET)
    assert result.returncode == 2
    assert "did you mean 'redis'?" in result.stderr
    result = run_cli("clear-expired", "--store", "nope")
    assert result.returncode == 2


def test_a_cookie_store_option_typo_gets_a_suggestion(run_cli):
    result = run_cli("check", "--store-option", "encrpyt=true", SESSION_CORE_SECRET_KEY=SECRET)
    assert result.returncode == 2
    assert "did you mean 'encrypt'?" in result.stderr


# ---------------------------------------------------------------------- store errors


def test_a_refused_connection_names_the_url_without_password_and_what_to_do(run_cli):
    url = f"redis://:hunter2hunter2@127.0.0.1:{_refused_port()}/0"
    result = run_cli(
        "check", "--store", "redis", "--store-option", f"url={url}",
        SESSION_CORE_SECRET_KEY=SECRET,
    )  # fmt: skip
    assert result.returncode == 1
    assert "hunter2" not in result.stdout + result.stderr
    assert "probing redis://127.0.0.1:" in result.stdout
    assert "Connection refused" in result.stderr
    assert "start the server, or fix the host and port in the store's url option" in result.stderr


def test_a_redis_database_number_out_of_range_names_the_url_and_what_to_do(run_cli):
    """Refused at start-up, as a usage error, before anything is written anywhere."""
    url = REDIS_URL.rsplit("/", 1)[0] + "/100000"
    result = run_cli(
        "check", "--store", "redis", "--store-option", f"url={url}",
        SESSION_CORE_SECRET_KEY=SECRET,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert url in result.stderr
    assert "write redis://host:6379/0" in result.stderr
    assert "probing" not in result.stdout


def test_redact_url():
    assert redact_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("redis://:secret@h/0") == "redis://:***@h/0"
    assert redact_url("redis://h/0") == "redis://h/0"


# ---------------------------------------------------------------------- clear-expired


def test_clear_expired_needs_no_secret_key(run_cli, tmp_path):
    """A cron job need not carry the app's secret to delete expired records."""
    result = run_cli(
        "clear-expired", "--store", "files", "--store-option", f"directory={tmp_path / 's'}"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed 0 expired sessions from the files store")


def test_check_still_needs_the_secret_key(run_cli):
    result = run_cli("check")
    assert result.returncode == 2
    assert "a secret key is required" in result.stderr


def test_nothing_to_remove_prints_no_progress(monkeypatch, capsys):
    store = MemoryStore()
    store.save(None, make_record({"live": True}), Changes(frozenset({"live"})))
    monkeypatch.setattr("session_core.cli.create_store", lambda config: store)
    out = io.StringIO()
    assert main(["clear-expired", "--store", "memory"], out=out) == 0
    assert "so far" not in capsys.readouterr().err
    assert out.getvalue().startswith("removed 0 expired sessions")


def test_progress_is_printed_once_something_is_removed():
    err = io.StringIO()
    progress = _progress_printer(err, 0.0)
    progress(0)
    assert err.getvalue() == ""
    progress(500)
    assert err.getvalue().startswith("removed 500 so far (")


# ---------------------------------------------------------------------- the app's settings

FLASK_APP = """
from flask import Flask
from session_core.integrations.flask import init_app

app = Flask(__name__)
app.secret_key = {secret!r}
app.config["SESSION_CORE"] = {{"store": "files", "store_options": {{"directory": {where!r}}}}}
init_app(app)
"""

STARLETTE_APP = """
from starlette.applications import Starlette
from session_core.asgi import SessionMiddleware

app = Starlette()
app.add_middleware(
    SessionMiddleware, secret_key={secret!r}, store="redis", store_options={{"url": {url!r}}}
)
"""

DJANGO_SETTINGS = """
SECRET_KEY = {secret!r}
INSTALLED_APPS = []
SESSION_CORE = {{"store": "files", "store_options": {{"directory": {where!r}}}}}
"""


def _write(tmp_path, name: str, text: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))


def _expired_file_session(directory) -> None:
    from session_core_files import FileStore

    FileStore(directory).save(None, make_record({"n": 1}, ttl=-1), Changes(frozenset({"n"})))


def test_clear_expired_reads_a_flask_apps_settings(run_cli, tmp_path):
    where = str(tmp_path / "flask-sessions")
    _expired_file_session(where)
    _write(tmp_path, "flasksite", FLASK_APP.format(secret=SECRET, where=where))
    result = run_cli("clear-expired", "--app", "flasksite:app")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed 1 expired session from the files store")


def test_check_reads_a_starlette_apps_middleware(run_cli, tmp_path):
    _write(tmp_path, "starsite", STARLETTE_APP.format(secret=SECRET, url=REDIS_URL))
    result = run_cli("check", "--app", "starsite:app")
    assert result.returncode == 0, result.stderr
    assert "settings from app 'starsite:app'" in result.stdout
    assert f"probing {REDIS_URL}\n" in result.stdout


def test_clear_expired_reads_django_settings(run_cli, tmp_path):
    where = str(tmp_path / "django-sessions")
    _expired_file_session(where)
    _write(tmp_path, "djsettings", DJANGO_SETTINGS.format(secret=SECRET, where=where))
    result = run_cli("clear-expired", DJANGO_SETTINGS_MODULE="djsettings")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed 1 expired session from the files store")


def test_an_app_without_session_core_says_so(run_cli, tmp_path):
    _write(tmp_path, "plain", "from flask import Flask\napp = Flask(__name__)\n")
    result = run_cli("check", "--app", "plain:app")
    assert result.returncode == 2
    assert "found no session-core configuration" in result.stderr
    result = run_cli("check", "--app", "missing_module:app")
    assert result.returncode == 2
    assert "cannot import 'missing_module'" in result.stderr


def test_the_console_script_finds_the_app_in_the_current_folder(tmp_path, live_clean_env):
    """As `flask --app` and uvicorn do: no PYTHONPATH needed for a module where you stand."""
    _write(tmp_path, "herestar", STARLETTE_APP.format(secret=SECRET, url=REDIS_URL))
    environ = live_clean_env()
    environ.pop("PYTHONPATH", None)
    environ.pop("DJANGO_SETTINGS_MODULE", None)
    script = Path(sys.executable).parent / "session-core"
    result = subprocess.run(
        [str(script), "check", "--app", "herestar:app"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"probing {REDIS_URL}\n" in result.stdout


STARLETTE_INTEGRATION_APP = """
from starlette.applications import Starlette
from session_core.integrations.starlette import SessionMiddleware

app = Starlette()
app.add_middleware(SessionMiddleware, secret_key={secret!r}, session_cookie="sid",
                   store="redis", store_options={{"url": {url!r}}})
"""


def test_check_reads_the_starlette_integrations_arguments(run_cli, tmp_path):
    """Starlette's own signature (session_cookie=...) through session-core's Starlette
    integration: the command builds the middleware as Starlette would, to read its settings."""
    _write(tmp_path, "integ", STARLETTE_INTEGRATION_APP.format(secret=SECRET, url=REDIS_URL))
    result = run_cli("check", "--app", "integ:app")
    assert result.returncode == 0, result.stderr
    assert f"probing {REDIS_URL}\n" in result.stdout
