"""The extension built in docs/writing-an-extension.md: the doc's code is the code in
tests/example_extension/, and that distribution, installed for real (tox installs it), is found
through its entry point, listed, and its command works through the session-core command."""

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from session_core.registry import StoreRegistry

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "tests" / "example_extension"
DOC = ROOT / "docs" / "writing-an-extension.md"
SECRET = "r" * 40


def test_doc_shows_every_file_of_the_example_verbatim():
    blocks = dict(re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", DOC.read_text(), re.S))
    assert set(blocks) == {
        "pyproject.toml",
        "session_core_rotate/__init__.py",
        "tests/test_rotate.py",
    }
    for relative, shown in blocks.items():
        assert shown == (EXAMPLE / relative).read_text(), f"{relative} differs from the doc"


def test_doc_shows_every_file_of_the_event_examples_verbatim():
    pattern = r"<!-- (example_\w+) file: (\S+) -->\n```\w*\n(.*?)```"
    blocks = {(dist, rel): text for dist, rel, text in re.findall(pattern, DOC.read_text(), re.S)}
    assert set(blocks) == {
        ("example_metrics", "pyproject.toml"),
        ("example_metrics", "session_core_prometheus/__init__.py"),
        ("example_metrics", "tests/test_prometheus.py"),
        ("example_audit", "pyproject.toml"),
        ("example_audit", "session_core_audit/__init__.py"),
        ("example_audit", "tests/test_audit.py"),
    }
    for (dist, relative), shown in blocks.items():
        assert shown == (ROOT / "tests" / dist / relative).read_text(), f"{dist}/{relative}"


@pytest.mark.parametrize(
    ("dist", "name", "module"),
    [
        ("session-core-prometheus", "prometheus", "session_core_prometheus"),
        ("session-core-audit", "audit", "session_core_audit"),
    ],
)
def test_the_event_examples_are_installed_and_observe_events(dist, name, module, monkeypatch):
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{dist} is not installed; run the tests through tox, or pip install it")
    monkeypatch.delenv("SESSION_CORE_DISABLE_PLUGINS", raising=False)
    registry = StoreRegistry()
    found = {e.name: e for e in registry.extensions()}
    assert (found[name].status, found[name].module) == ("ok", module)
    assert found[name].hooks == ("session_core_session_event",)
    assert registry.observes_events


@pytest.fixture
def installed():
    try:
        return metadata.distribution("session-core-rotate")
    except metadata.PackageNotFoundError:
        pytest.fail(
            "session-core-rotate is not installed; run the tests through tox, "
            "or pip install ./tests/example_extension"
        )


def test_installed_as_a_real_distribution(installed):
    import session_core_rotate

    assert installed.version == "0.1.0"
    assert EXAMPLE not in Path(session_core_rotate.__file__).resolve().parents


def test_listed_as_an_extension_with_its_hook(installed):
    found = {e.name: e for e in StoreRegistry().extensions()}
    rotate = found["rotate"]
    assert rotate.ok
    assert (rotate.distribution, rotate.version, rotate.module) == (
        "session-core-rotate",
        "0.1.0",
        "session_core_rotate",
    )
    assert rotate.hooks == ("session_core_add_commands",)


def _session_core(*args, **env):
    script = Path(sys.executable).with_name("session-core")
    return subprocess.run(
        [script, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_the_command_through_the_console_script(installed, tmp_path, live_clean_env):
    env = live_clean_env(SESSION_CORE_SECRET_KEY=SECRET)
    listed = json.loads(_session_core("stores", "--json", **env).stdout)
    row = next(r for r in listed if r["name"] == "rotate")
    assert (row["kind"], row["status"], row["hooks"]) == (
        "extension",
        "ok",
        ["session_core_add_commands"],
    )
    assert "rotate-secret" in _session_core("--help", **env).stdout
    result = _session_core("rotate-secret", **env)
    assert result.returncode == 0, result.stderr
    rotated = tomllib.loads(result.stdout)
    assert rotated["fallback_secret_keys"] == [SECRET]
    assert rotated["secret_key"] != SECRET


def test_the_command_without_a_secret_is_one_line(installed, live_clean_env):
    result = _session_core("rotate-secret", **live_clean_env())
    assert result.returncode == 2
    assert result.stderr.startswith("session-core: error: ")
    assert "secret_key" in result.stderr
    assert result.stderr.count("\n") == 1


def test_disabled_by_the_switch(installed, live_clean_env):
    env = live_clean_env(SESSION_CORE_DISABLE_PLUGINS="rotate")
    assert "rotate-secret" not in _session_core("--help", **env).stdout
