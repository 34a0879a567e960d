"""``session-core check`` reports the Redis persistence mode and warns when a crash would lose
sessions; checked against servers started with each mode, and the loss itself shown by kill -9."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from redis_servers import RedisProcess, SentinelSetup, create, new_prefix

from session_core.cli import main
from session_core_redis import RedisStore
from session_core_redis.health import CheckNote

SNAPSHOTS = ("--save", "3600 1 300 100 60 10000")  # redis-server's default schedule
NO_CONFIG = ("--rename-command", "CONFIG", "")  # as managed services do


def check(tmp_path: Path, url: str, **options: object) -> tuple[int, list[str]]:
    """Run ``session-core check`` on a redis store at ``url``; (exit code, output lines)."""
    extra = "".join(f"{name} = {value}\n" for name, value in options.items())
    config = tmp_path / "session.toml"
    config.write_text(
        f'secret_key = "{"k" * 40}"\nstore = "redis"\n'
        f'[store_options]\nurl = "{url}"\nkey_prefix = "{new_prefix()}"\n{extra}'
    )
    out = io.StringIO()
    code = main(["check", "--config", str(config)], out=out)
    return code, out.getvalue().splitlines()


def persistence_line(lines: list[str]) -> str:
    [line] = [line for line in lines if "redis persistence at" in line]
    return line


@pytest.mark.parametrize(
    ("args", "warns", "says"),
    [
        ((), True, "none (no append-only file, no snapshots): a restart loses every session"),
        (SNAPSHOTS, True, "snapshots only (save '3600 1 300 100 60 10000')"),
        (("--appendonly", "yes", "--appendfsync", "everysec"), False, "appendfsync everysec"),
        (("--appendonly", "yes", "--appendfsync", "always"), False, "loses no acknowledged"),
        (("--appendonly", "yes", "--appendfsync", "no"), False, "appendfsync no"),
        ((*SNAPSHOTS, *NO_CONFIG), True, "no append-only file (INFO persistence"),
        (("--appendonly", "yes", *NO_CONFIG), False, "appendfsync unknown"),
    ],
)
def test_check_reports_the_persistence_mode(
    throwaway: Callable[..., RedisProcess],
    tmp_path: Path,
    args: tuple[str, ...],
    warns: bool,
    says: str,
) -> None:
    server = throwaway(*args)
    code, lines = check(tmp_path, server.url)
    assert code == 0, lines
    line = persistence_line(lines)
    assert line.startswith("warn " if warns else "ok   "), lines
    assert f"at {server.url}" in line
    assert says in line, line
    if warns:
        assert "appendonly yes" in line  # the fix
        assert lines[-1] == "all checks passed, 1 warning(s)"
    else:
        assert lines[-1] == "all checks passed"


def test_check_warns_when_it_cannot_read_the_mode(
    throwaway: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    # An ACL that refuses CONFIG and INFO: the store works, and check says what it could not see.
    server = throwaway("--user", "default", "on", "nopass", "~*", "&*", "+@all", "-config", "-info")
    code, lines = check(tmp_path, server.url)
    assert code == 0, lines
    [line] = [line for line in lines if "persistence" in line]
    assert line.startswith(f"warn could not read redis persistence at {server.url}: ")
    assert "permission" in line.lower()
    assert lines[-1] == "all checks passed, 1 warning(s)"


def test_check_warns_when_the_server_limit_is_below_max_value_size(
    throwaway: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    server = throwaway("--appendonly", "yes", "--proto-max-bulk-len", str(1024 * 1024))
    code, lines = check(tmp_path, server.url)
    assert code == 0
    [line] = [line for line in lines if "proto-max-bulk-len" in line]
    assert line.startswith("warn ")
    assert "set max_value_size = 1048576" in line
    code, lines = check(tmp_path, server.url, max_value_size=1024 * 1024)
    assert not [line for line in lines if "proto-max-bulk-len" in line]
    assert lines[-1] == "all checks passed"


def test_report_covers_every_cluster_master(redis_cluster: object) -> None:
    addresses = redis_cluster.addresses  # type: ignore[attr-defined]
    store = RedisStore({"cluster": addresses, "key_prefix": new_prefix()})
    try:
        notes = store.check_report()
    finally:
        store.close()
    assert all(isinstance(note, CheckNote) for note in notes)
    assert sorted(note.text.split(" at ")[1].split(":")[0:2] for note in notes) == sorted(
        address.split(":") for address in addresses
    )
    assert all(note.warning for note in notes)  # the test cluster runs without persistence


def test_report_on_sentinel_is_the_masters(redis_sentinel: SentinelSetup) -> None:
    nodes = [redis_sentinel.sentinel.address]
    store = RedisStore({"sentinel": {"master": redis_sentinel.master_name, "nodes": nodes}})
    try:
        [note] = store.check_report()
    finally:
        store.close()
    assert note.text.startswith(f"redis persistence at sentinel master 'sessions' via {nodes[0]}")
    assert note.warning  # the test setup runs without persistence


@pytest.mark.parametrize(
    ("args", "survive"),
    [(SNAPSHOTS, False), (("--appendonly", "yes", "--appendfsync", "always"), True)],
)
def test_what_the_warning_means_a_kill_loses_the_sessions(
    throwaway: Callable[..., RedisProcess], args: tuple[str, ...], survive: bool
) -> None:
    # With snapshots only, sessions saved since the last snapshot are gone after a crash, and
    # their visitors get new, empty sessions; with the append-only file they are all kept.
    server = throwaway(*args)
    store = RedisStore({"url": server.url, "key_prefix": new_prefix()})
    keys = [create(store, {"user": n}) for n in range(20)]
    server.kill()
    server.start()
    kept = [key for key in keys if store.load(key) is not None]
    assert len(kept) == (len(keys) if survive else 0)
    store.close()
