"""The third-party store built in docs/writing-a-store.md: the doc's code is the code in
tests/example_store/, and that distribution, installed for real (tox installs it as a wheel),
is found through its entry point and works behind the middleware."""

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from session_core import SessionConfig, available_stores, create_store
from session_core.registry import refresh
from session_core.wsgi import SessionMiddleware

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "tests" / "example_store"
DOC = ROOT / "docs" / "writing-a-store.md"
SECRET = "s" * 40


def doc_files():
    text = DOC.read_text()
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    return dict(blocks)


def test_doc_shows_every_file_of_the_example_verbatim():
    files = doc_files()
    assert set(files) == {
        "pyproject.toml",
        "session_core_files/__init__.py",
        "tests/test_files_store.py",
    }
    for relative, shown in files.items():
        assert shown == (EXAMPLE / relative).read_text(), f"{relative} differs from the doc"


@pytest.fixture
def installed():
    try:
        dist = metadata.distribution("session-core-files")
    except metadata.PackageNotFoundError:
        pytest.fail(
            "session-core-files is not installed; run the tests through tox, "
            "or pip install ./tests/example_store"
        )
    refresh()
    return dist


def test_installed_as_a_real_distribution(installed):
    import session_core_files

    assert installed.version == "0.1.0"
    assert EXAMPLE not in Path(session_core_files.__file__).resolve().parents, (
        "imported from the source folder, not from the installed distribution"
    )


def test_listed_by_available_stores(installed):
    stores = {s.name: s for s in available_stores()}
    files = stores["files"]
    assert files.ok
    assert (files.distribution, files.version, files.module) == (
        "session-core-files",
        "0.1.0",
        "session_core_files",
    )


def test_listed_by_the_command(installed):
    result = subprocess.run(
        [sys.executable, "-m", "session_core", "stores", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["files"]["status"] == "ok"
    assert rows["files"]["distribution"] == "session-core-files"


def test_bad_option_is_refused_at_start_up(installed):
    with pytest.raises(ValueError, match="no option 'dir'"):
        create_store(SessionConfig(secret_key=SECRET, store="files", store_options={"dir": "x"}))


def test_works_behind_the_middleware(installed, tmp_path):
    def app(environ, start_response):
        session = environ["session_core.session"]
        session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(session["n"]).encode()]

    folder = tmp_path / "sessions"
    wrapped = SessionMiddleware(
        app, secret_key=SECRET, store="files", store_options={"directory": str(folder)}
    )
    transport = httpx.WSGITransport(app=wrapped)
    with httpx.Client(transport=transport, base_url="http://testserver") as client:
        assert [client.get("/").text for _ in range(3)] == ["1", "2", "3"]
        key = client.cookies["sessionid"]
    [stored] = list(folder.glob("*.json"))
    assert key not in stored.name
    assert key not in stored.read_text()


def test_clear_expired_reports_progress_per_hundred_removals(installed, tmp_path):
    from session_core import Changes
    from session_core.testing import make_record
    from session_core_files import FileStore

    store = FileStore(tmp_path / "sessions")
    for n in range(150):
        store.save(None, make_record({"live": n}), Changes(frozenset({"live"})))
    for n in range(250):
        store.save(None, make_record({"dead": n}, ttl=-1), Changes(frozenset({"dead"})))
    seen = []
    assert store.clear_expired(seen.append) == 250
    assert seen == [100, 200, 250], "progress counts removals, once per hundred and at the end"


def test_building_the_store_touches_no_disk(installed, tmp_path):
    folder = tmp_path / "sessions"
    config = SessionConfig(
        secret_key=SECRET, store="files", store_options={"directory": str(folder)}
    )
    store = create_store(config)
    assert not folder.exists(), "the create hook must not do I/O (session-core stores calls it)"
    from session_core import Session

    session = Session(store)
    session["a"] = 1
    assert session.save() is not None
    assert folder.is_dir()
