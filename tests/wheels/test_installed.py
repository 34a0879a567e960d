"""Every distribution of this repository, installed from its built wheel (tox -e wheel), as users
get it: real metadata, ``py.typed`` shipped, entry points found, the command on PATH."""

import json
import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from session_core import available_stores

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = [
    ROOT,
    *sorted(p for p in (ROOT / "plugins").iterdir() if p.is_dir()),
    ROOT / "tests" / "example_store",
    ROOT / "tests" / "example_extension",
    ROOT / "tests" / "example_metrics",
    ROOT / "tests" / "example_audit",
]


def project(folder):
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


DISTRIBUTIONS = {project(f)["name"]: f for f in FOLDERS}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_installed_from_a_wheel_not_editable(name):
    dist = metadata.distribution(name)
    assert dist.version == project(DISTRIBUTIONS[name])["version"]
    origin = json.loads(dist.read_text("direct_url.json") or "{}")
    assert origin.get("url", "").endswith(".whl"), (
        f"{name} was not installed from a wheel: {origin}"
    )
    assert not origin.get("dir_info", {}).get("editable"), f"{name} is an editable install"


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_ships_py_typed(name):
    files = [str(f) for f in metadata.distribution(name).files or ()]
    assert any(f.endswith("/py.typed") for f in files), f"{name} does not ship py.typed"


def test_every_store_is_found_through_its_entry_point():
    found = {s.name: s for s in available_stores()}
    for name, folder in DISTRIBUTIONS.items():
        entry_points = project(folder).get("entry-points", {}).get("session_core.stores", {})
        for store in entry_points:
            info = found[store]
            assert info.ok, info.error
            assert (info.distribution, info.version) == (name, project(folder)["version"])
    assert found["cookie"].distribution == "session-core"


def test_console_script_is_installed():
    command = shutil.which("session-core")
    assert command, "the session-core command is not on PATH"
    result = subprocess.run(
        [command, "stores", "--json"], capture_output=True, text=True, check=True
    )
    names = {row["name"] for row in json.loads(result.stdout)}
    assert {"cookie", "files"} <= names
