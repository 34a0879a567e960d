"""The code samples of the docs run as written.

A fenced block right under ``<!-- docs-test: run -->`` is run: a ``python`` block as a program,
a ``console`` block line by line in bash (each ``$`` line is a command; the lines under it are
its output, where ``...`` stands for any text), the last command exiting with 0 or with the code
the marker gives (``<!-- docs-test: run, exit 2 -->``). A ``python`` block that defines a web
app is marked with the requests to send it (``<!-- docs-test: run, requests GET /, POST /login
name=Ada -->``): the block is imported as a module (so an ``if __name__ == "__main__":`` server
start is not run), and each request goes through its ``app`` (WSGI or ASGI, told apart by
``app.__call__``) with httpx, cookies kept from one to the next; each must answer below 400.

The runnable blocks of a page run in order in one empty directory, with the ``session-core`` of
this environment first on PATH, no ``SESSION_CORE_*`` setting from outside, and ``SECRET_KEY``
set to a fresh random key (the pages tell the reader to set it), as a reader following the page
would. A sample's Redis URL ``redis://127.0.0.1:6379/0`` is replaced by
``SESSION_CORE_TEST_REDIS_URL`` when that is set, so the tests use the server the run was given.

A block under ``<!-- docs-test: skip (reason) -->`` is not run, and the reason says why (it
serves until stopped, needs a server named in it, is a fragment of a larger file, ...); the
skipped samples are listed as skipped tests with their reasons (``pytest -rs``). On the README
and every page of ``docs/``, every python, console and shell block says which it is.

Every ``session-core`` command anywhere in the docs (console and sh blocks of every page,
README.md and the plugins' READMEs included) is also parsed by the command's real argument
parser, so a renamed subcommand or option fails here.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "_ext"))

import docs_pages

from session_core import cli

PAGES = docs_pages.markdown_files()
RUNNABLE = [p for p in PAGES if any(s.marker == "run" for s in docs_pages.samples(p))]
TIMEOUT = 60  # seconds per block: each runs in well under one


def _page_id(page: Path) -> str:
    return str(page.relative_to(docs_pages.REPO) if page.is_relative_to(docs_pages.REPO) else page)


def _environment() -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SESSION_CORE_") or name.startswith("SESSION_CORE_TEST_")
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["SECRET_KEY"] = secrets.token_urlsafe(48)
    return env


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _as_tested(code: str) -> str:
    """The sample's code, pointed at the test run's Redis server (see the module docstring)."""
    return code.replace(
        DEFAULT_REDIS_URL, os.environ.get("SESSION_CORE_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    )


DRIVER = """\
import asyncio, importlib, inspect, sys
import httpx

sys.path.insert(0, ".")
app = importlib.import_module(sys.argv[1]).app
is_asgi = inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(
    getattr(type(app), "__call__", None)
)


def send(client, request):
    method, path, *form = request.split(" ")
    data = dict(pair.split("=", 1) for pair in form[0].split("&")) if form else None
    return client.request(method, path, data=data)


def report(request, response):
    print(f"{request} -> {response.status_code} {response.text[:300]!r}")
    if response.status_code >= 400:
        sys.exit(f"{request} answered {response.status_code}")


async def run_asgi():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        for request in sys.argv[2:]:
            report(request, await send(client, request))


if is_asgi:
    asyncio.run(run_asgi())
else:
    transport = httpx.WSGITransport(app=app)
    with httpx.Client(transport=transport, base_url="https://testserver") as client:
        for request in sys.argv[2:]:
            report(request, send(client, request))
"""
"""Imports a sample (``argv[1]``, run in the sample's directory) and sends its ``app`` the
requests that follow, printing each answer."""


def _run_in(workdir: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=workdir,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _run_python(sample: docs_pages.Sample, workdir: Path) -> None:
    program = workdir / f"sample_{sample.line}.py"
    program.write_text(_as_tested(sample.code), encoding="utf-8")
    if sample.requests:
        driver = workdir / "docs_test_driver.py"
        driver.write_text(DRIVER, encoding="utf-8")
        argv = [sys.executable, driver.name, program.stem, *sample.requests]
    else:
        argv = [sys.executable, program.name]
    done = _run_in(workdir, argv)
    assert done.returncode == 0, (
        f"{_page_id(sample.path)}:{sample.line}:\n{done.stdout}\n{done.stderr}"
    )


def _run_console(sample: docs_pages.Sample, workdir: Path) -> None:
    commands = docs_pages.console_commands(sample.code)
    assert commands, f"{_page_id(sample.path)}:{sample.line}: no $ line in a console block"
    # One bash for the block, so that `export` carries over as in a terminal; a line between
    # the commands' outputs tells them apart.
    script = []
    for index, command in enumerate(commands):
        script += [command.command, f'echo "@@docs-test {index} $?@@"']
    done = _run_in(workdir, ["bash", "-c", "\n".join(script)])
    # stderr holds the one-line errors; it is checked with stdout, as a terminal shows both.
    outputs = re.split(r"@@docs-test \d+ (\d+)@@\n?", done.stdout)
    codes = [int(code) for code in outputs[1::2]]
    where = f"{_page_id(sample.path)}:{sample.line}"
    assert len(codes) == len(commands), f"{where}: the block stopped early:\n{done.stderr}"
    for index, (command, code) in enumerate(zip(commands, codes, strict=True)):
        wanted = sample.exit_code if index == len(commands) - 1 else 0
        shown = outputs[2 * index] + (done.stderr if index == len(commands) - 1 else "")
        assert code == wanted, f"{where}: `{command.command}` exited {code}:\n{shown}"
        _assert_shows(shown.splitlines(), command, where)


def _assert_shows(lines: list[str], command: docs_pages.Command, where: str) -> None:
    position = 0
    for expected in command.expected:
        pattern = docs_pages.output_pattern(expected)
        while position < len(lines) and not pattern.search(lines[position]):
            position += 1
        assert position < len(lines), (
            f"{where}: `{command.command}` did not print {expected!r}; it printed:\n"
            + "\n".join(lines)
        )
        position += 1


@pytest.mark.parametrize("page", RUNNABLE, ids=_page_id)
def test_the_runnable_samples_run_as_written(page: Path, tmp_path: Path) -> None:
    for sample in docs_pages.samples(page):
        if sample.marker != "run":
            continue
        if sample.language == "python":
            _run_python(sample, tmp_path)
        elif sample.language == "console":
            _run_console(sample, tmp_path)
        else:
            pytest.fail(f"{_page_id(page)}:{sample.line}: cannot run a {sample.language} block")


def test_some_samples_are_run() -> None:
    assert {p.name for p in RUNNABLE} >= {
        "quickstart.md",
        "cli.md",
        "README.md",
        "integrations.md",
        "writing-a-store.md",
    }


SKIPPED = [
    (f"{_page_id(page)}:{sample.line}", sample.reason or "")
    for page in PAGES
    for sample in docs_pages.samples(page)
    if sample.marker == "skip"
]


@pytest.mark.parametrize(("where", "reason"), SKIPPED, ids=[where for where, _ in SKIPPED])
def test_a_sample_that_is_not_run_says_why(where: str, reason: str) -> None:
    assert reason.strip(), f"{where}: a skip marker needs a reason: <!-- docs-test: skip (why) -->"
    pytest.skip(f"{where} is not run: {reason}")


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_marker_is_right_above_a_code_block(page: Path) -> None:
    assert docs_pages.dangling_markers(page) == []


@pytest.mark.parametrize("name", docs_pages.MARKED_PAGES)
def test_every_code_sample_of_the_site_s_pages_says_whether_it_runs(name: str) -> None:
    unmarked = [
        s.line
        for s in docs_pages.samples(docs_pages.REPO / name)
        if s.language in ("python", "console", "sh", "bash") and s.marker is None
    ]
    assert unmarked == []


def test_a_failing_console_sample_fails(tmp_path: Path) -> None:
    wrong_output = docs_pages.Sample(tmp_path, 1, "console", "$ echo one\ntwo\n", "run", 0)
    with pytest.raises(AssertionError, match="did not print 'two'"):
        _run_console(wrong_output, tmp_path)
    wrong_code = docs_pages.Sample(tmp_path, 1, "console", "$ session-core nope\n", "run", 0)
    with pytest.raises(AssertionError, match="exited 2"):
        _run_console(wrong_code, tmp_path)
    expected_code = docs_pages.Sample(tmp_path, 1, "console", "$ false\n", "run", 1)
    _run_console(expected_code, tmp_path)


def test_a_failing_python_sample_fails(tmp_path: Path) -> None:
    sample = docs_pages.Sample(tmp_path, 1, "python", "raise SystemExit(3)\n", "run", 0)
    with pytest.raises(AssertionError):
        _run_python(sample, tmp_path)


WSGI_APP = """\
import os
from session_core.wsgi import SessionMiddleware

def app(environ, start_response):
    session = environ["session_core.session"]
    if environ["PATH_INFO"] == "/missing":
        start_response("404 Not Found", [])
        return [b""]
    if environ["REQUEST_METHOD"] == "POST":
        session["name"] = environ["wsgi.input"].read().decode().partition("=")[2]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {session.get('name', 'stranger')}".encode()]

app = SessionMiddleware(app, secret_key=os.environ["SECRET_KEY"])
"""

ASGI_APP = """\
import os
from session_core.asgi import SessionMiddleware

async def app(scope, receive, send):
    status = 404 if scope["path"] == "/missing" else 200
    scope["session"]["seen"] = scope["session"].get("seen", 0) + 1
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": str(scope["session"]["seen"]).encode()})

app = SessionMiddleware(app, secret_key=os.environ["SECRET_KEY"])
"""


@pytest.mark.parametrize("code", [WSGI_APP, ASGI_APP], ids=["wsgi", "asgi"])
def test_the_requests_go_through_the_sample_s_app(tmp_path: Path, code: str) -> None:
    requests = ("POST /login name=Ada", "GET /")
    sample = docs_pages.Sample(tmp_path, 7, "python", code, "run", 0, requests)
    _run_python(sample, tmp_path)
    missing = docs_pages.Sample(tmp_path, 8, "python", code, "run", 0, ("GET /", "GET /missing"))
    with pytest.raises(AssertionError, match="GET /missing answered 404"):
        _run_python(missing, tmp_path)


def test_the_cookie_is_kept_between_requests(tmp_path: Path) -> None:
    # The WSGI app says the name the first request saved: the session came back.
    program = tmp_path / "sample_1.py"
    program.write_text(WSGI_APP, encoding="utf-8")
    (tmp_path / "docs_test_driver.py").write_text(DRIVER, encoding="utf-8")
    argv = [sys.executable, "docs_test_driver.py", "sample_1", "POST /login name=Ada", "GET /"]
    done = _run_in(tmp_path, argv)
    assert done.returncode == 0, done.stderr
    assert "GET / -> 200 'hello Ada'" in done.stdout


def test_a_marker_s_requests_are_checked() -> None:
    assert docs_pages.parse_requests("GET /, POST /login name=Ada&remember=on") == (
        "GET /",
        "POST /login name=Ada&remember=on",
    )
    with pytest.raises(ValueError, match="not a request: 'FETCH /'"):
        docs_pages.parse_requests("GET /, FETCH /")


# ------------------------------------------------------------------ every session-core command


def _documented_commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for sample in docs_pages.samples(page):
            if sample.language == "console":
                lines = [c.command for c in docs_pages.console_commands(sample.code)]
            elif sample.language in ("sh", "bash"):
                lines = [line for line in docs_pages.joined_lines(sample.code) if line.strip()]
            else:
                continue
            for line in lines:
                for words in _simple_commands(line):
                    while words and re.match(r"^\w+=", words[0]):
                        words.pop(0)  # VAR=value before the command
                    if words and Path(words[0]).name == "session-core":
                        found.append((f"{_page_id(page)}:{sample.line}", shlex.join(words[1:])))
    return found


def _simple_commands(line: str) -> list[list[str]]:
    """The words of each command of a shell line (split at ``&&``, ``;``, ``|``, ...)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set("();<>|&"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [words for words in commands if words]


COMMANDS = _documented_commands()

PLUGIN_COMMANDS = {"db": "session_core_db", "rotate-secret": "session_core_rotate"}
"""The commands the docs show that plugins add, by the package that adds each. The core and
docs envs install every one of them (tox.ini), so a missing one fails rather than skips."""


def _parser() -> tuple[argparse.ArgumentParser, set[str]]:
    parser, commands = cli._parser()
    cli._add_plugin_commands(commands)
    return parser, set(commands.choices)


@pytest.mark.parametrize(("where", "arguments"), COMMANDS, ids=[f"{w} {a}" for w, a in COMMANDS])
def test_every_documented_command_parses(where: str, arguments: str) -> None:
    parser, choices = _parser()
    argv = shlex.split(arguments)
    subcommand = next((word for word in argv if not word.startswith("-")), None)
    if subcommand not in choices:
        provider = PLUGIN_COMMANDS.get(subcommand or "")
        assert provider, f"{where}: `session-core {arguments}`: no such command"
        if importlib.util.find_spec(provider) is None:
            pytest.fail(
                f"{where}: `{subcommand}` comes from {provider}, which is not installed here: "
                f"install it as tox.ini's core and docs envs do"
            )
        pytest.fail(f"{where}: {provider} is installed but adds no `{subcommand}` command")
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{where}: `session-core {arguments}` is refused (exit {exc.code})")


def test_the_docs_show_session_core_commands() -> None:
    assert len(COMMANDS) >= 10
