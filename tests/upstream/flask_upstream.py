"""Run Flask's own session tests against session-core, on the cookie, db and redis stores.

Usage: ``python tests/upstream/flask_upstream.py [--stores cookie,db,redis] [pytest args]``
(the tox env ``flask-upstream`` runs it).

The tests are those of the installed Flask's source distribution, fetched with ``pip download
--no-deps --no-binary :all: flask==<installed version>`` and extracted (once, into
``FLASK_UPSTREAM_DIR``, default the system's temporary folder), then run unchanged with
``flask_plugin.py`` beside this file, which installs session-core on Flask's ``app`` fixture.
Flask's own pytest settings (its pyproject.toml: warnings are errors) apply.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The session tests: their names mention sessions or flashing, in the files that have any.
FILES = (
    "test_basic.py",
    "test_testing.py",
    "test_helpers.py",
    "test_templating.py",
    "test_signals.py",
)
SELECT = "session or flash or standard_context"


def flask_sources(flask_version: str, cache: Path) -> Path:
    """The extracted source distribution of Flask ``flask_version`` (downloaded once)."""
    root = cache / f"flask-{flask_version}"
    if (root / "tests" / "conftest.py").exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"flask=={flask_version}",
            "--dest",
            str(cache),
        ],
        check=True,
    )
    with tarfile.open(cache / f"flask-{flask_version}.tar.gz") as archive:
        members = [
            m
            for m in archive.getmembers()
            if m.name.startswith((f"{root.name}/tests/", f"{root.name}/pyproject.toml"))
        ]
        archive.extractall(cache, members=members, filter="data")
    return root


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="cookie,db,redis")
    options, pytest_args = parser.parse_known_args(argv)
    cache = Path(
        os.environ.get("FLASK_UPSTREAM_DIR", Path(tempfile.gettempdir()) / "flask-upstream")
    )
    root = flask_sources(version("flask"), cache)
    tests = [str(root / "tests" / name) for name in FILES]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    failed = 0
    for store in options.stores.split(","):
        print(f"== Flask {version('flask')} session tests on the {store} store", flush=True)
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "flask_plugin",
            "--rootdir",
            str(root),
            "-p",
            "no:cacheprovider",
            "-k",
            SELECT,
            *tests,
            *pytest_args,
        ]
        result = subprocess.run(
            command, env={**env, "SESSION_CORE_TEST_FLASK_STORE": store}, cwd=root
        )
        failed = failed or result.returncode
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
