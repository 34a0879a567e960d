"""`session-core migrate` copies every live session between two Redis namespaces while
requests move sessions through the migrate store at the same time, prints its progress, and
resumes from its state file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from conftest import SECRET, Options, build

from session_core.migrate import MigrateStore
from session_core.session import Session
from session_core.store import Changes
from session_core.testing import make_record


def _toml(old: Options, new: Options) -> str:
    def table(options: Options) -> str:
        return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in options.items()) + "}"

    return (
        f'secret_key = "{SECRET}"\nstore = "migrate"\n[store_options]\n'
        f"old = {table(old)}\nnew = {table(new)}\n"
    )


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_CORE_")}
    return subprocess.run(
        [sys.executable, "-m", "session_core", "migrate", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_migrate_command_copies_beside_live_traffic(
    place: Callable[[str], Options], tmp_path: Path
) -> None:
    old_table, new_table = place("redis"), place("redis")
    store = build("migrate", old=old_table, new=new_table)
    assert isinstance(store, MigrateStore)
    keys = []
    for n in range(40):
        record = make_record({"n": n})
        key = store.old.save(None, record, Changes.everything(record))
        assert key is not None
        keys.append(key)
    config = tmp_path / "session.toml"
    config.write_text(_toml(old_table, new_table))
    state = tmp_path / "copy.json"
    started = threading.Event()

    def traffic() -> None:
        started.set()
        for key in keys[:10]:
            session = Session(store, key)
            session["moved"] = True
            assert session.save() == key

    requests = threading.Thread(target=traffic)
    requests.start()
    started.wait()
    result = _run("--config", str(config), "--state", str(state), "--batch", "7")
    requests.join()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("done: "), result.stdout
    assert result.stderr.count("listed") >= 2, "no progress was printed"
    for n, key in enumerate(keys):
        record = store.new.load(key)
        assert record is not None, f"session {n} was not copied"
        expected = {"n": n, "moved": True} if n < 10 else {"n": n}
        assert record.data == expected
    assert json.loads(state.read_text())["done"] is True
    again = _run("--config", str(config), "--state", str(state))
    assert again.returncode == 0
    assert "already done" in again.stdout
    store.close()


def test_migrate_command_refuses_a_store_that_is_not_migrate(tmp_path: Path) -> None:
    config = tmp_path / "session.toml"
    config.write_text(f'secret_key = "{SECRET}"\nstore = "cookie"\n')
    result = _run("--config", str(config))
    assert result.returncode == 2
    assert 'set store = "migrate"' in result.stderr
