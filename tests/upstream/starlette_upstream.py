"""Starlette's own session tests (tests/middleware/test_session.py of the installed Starlette),
run against session_core.integrations.starlette on the cookie, db (SQLite) and redis stores.

The file comes from Starlette's source distribution on PyPI, for exactly the installed version
(``pip download --no-binary``), with its conftest.py, types.py and pyproject.toml (for its
pytest settings), and runs in a pytest of its own. Two adaptations, each checked to apply:
the import of ``SessionMiddleware`` (Starlette's ``Session`` class stays Starlette's) and
Starlette's 7-byte ``secret_key="example"``, which session-core refuses (32 bytes at least).
The tests that cannot apply are deselected; docs/integrations.md says why for each.

Set ``SESSION_CORE_TEST_UPSTREAM_CACHE`` to a folder to keep the download between runs.
"""

import json
import os
import re
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import pytest

IMPORT = "from starlette.middleware.sessions import Session, SessionMiddleware\n"
SWAPPED_IMPORT = (
    "from starlette.middleware.sessions import Session\n"
    "from session_core.integrations.starlette import SessionMiddleware\n"
)
SHORT_SECRET = 'secret_key="example"'
LONG_SECRET = 'secret_key="starlette-upstream-tests-secret-of-at-least-32-bytes"'

# Each with its reason in docs/integrations.md ("Starlette's own tests").
CANNOT_APPLY = [
    "test_session_tracks_modification",  # builds Starlette's Session class directly
    "test_session_expires",  # max_age=-1: refused at start-up
    "test_session_zero_max_age",  # max_age=0: refused at start-up
]

FILES = (
    "tests/__init__.py",
    "tests/middleware/__init__.py",
    "tests/middleware/test_session.py",
    "tests/conftest.py",
    "tests/types.py",
    "pyproject.toml",
    "LICENSE.md",
)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """A folder holding Starlette's session tests, adapted as the module says."""
    release = version("starlette")
    cache = Path(
        os.environ.get("SESSION_CORE_TEST_UPSTREAM_CACHE") or tmp_path_factory.mktemp("sdist")
    )
    sdist = cache / f"starlette-{release}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", f"starlette=={release}", "--dest", str(cache)],
            check=True,
        )  # fmt: skip
    root = tmp_path_factory.mktemp("starlette-upstream")
    prefix = f"starlette-{release}/"
    with tarfile.open(sdist) as archive:
        for name in FILES:
            member = archive.getmember(prefix + name)
            member.name = name
            archive.extract(member, root, filter="data")
    test_file = root / "tests/middleware/test_session.py"
    source = test_file.read_text()
    assert source.count(IMPORT) == 1, "Starlette's test imports SessionMiddleware differently"
    assert SHORT_SECRET in source, "Starlette's test no longer uses its short secret"
    test_file.write_text(source.replace(IMPORT, SWAPPED_IMPORT).replace(SHORT_SECRET, LONG_SECRET))
    for name in CANNOT_APPLY:
        assert f"def {name}(" in source, f"{name} is gone: update CANNOT_APPLY and the docs"
    return root


def store_environment(store, tmp_path):
    if store == "cookie":
        return {"SESSION_CORE_STORE": "cookie"}
    if store == "db":
        url = f"sqlite:///{tmp_path / 'sessions.db'}"
    else:
        url = os.environ.get("SESSION_CORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    return {"SESSION_CORE_STORE": store, "SESSION_CORE_STORE_OPTIONS": json.dumps({"url": url})}


@pytest.mark.parametrize("store", ["cookie", "db", "redis"])
def test_starlettes_session_tests_pass(upstream, store, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_CORE_")}
    env.update(store_environment(store, tmp_path))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA"]
    command += ["tests/middleware/test_session.py"]
    for name in CANNOT_APPLY:
        command += ["--deselect", f"tests/middleware/test_session.py::{name}"]
    result = subprocess.run(command, cwd=upstream, env=env, capture_output=True, text=True)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    collected = re.search(r"(\d+) passed, (\d+) deselected", report)
    assert collected is not None, report
    assert int(collected[2]) == len(CANNOT_APPLY), report
    assert int(collected[1]) >= 12, report  # every other test of the file ran and passed
