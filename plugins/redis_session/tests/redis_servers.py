"""Throwaway Redis servers for the tests: standalone, Cluster and Sentinel, on free loopback
ports in temporary directories, from the machine's ``redis-server`` binary."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from session_core import Changes, SessionStore
from session_core.testing import make_record

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
HOST = "127.0.0.1"

RUN_PREFIX = f"session-core-redis-test:{uuid.uuid4().hex[:12]}:"
"""Every key the tests write starts with this: unique to the test run, removed at its end."""

_counter = itertools.count()
_running: set[subprocess.Popen[bytes]] = set()


def _kill_leftovers() -> None:
    for process in list(_running):
        process.kill()
        process.wait()


atexit.register(_kill_leftovers)


def new_prefix() -> str:
    """A key prefix no other test (or test run) uses."""
    return f"{RUN_PREFIX}{next(_counter)}:"


def dump_keys(client: redis.Redis, prefix: str) -> str:
    """Every key under ``prefix`` with its hash fields, as text."""
    lines = []
    for name in client.scan_iter(match=prefix + "*", count=1000):
        lines.append(f"{name!r} {client.hgetall(name)!r}")
    return "\n".join(lines)


def create(store: SessionStore, data: dict[str, Any]) -> str:
    """Save a new session holding ``data`` (one hour to live) and return its key."""
    record = make_record(data)
    key = store.save(None, record, Changes.everything(record))
    assert key is not None
    return key


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port (and, for Cluster, a free bus port 10000 above it)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port: int = probe.getsockname()[1]
        if not with_bus or (port + 10000 < 65536 and _port_is_free(port + 10000)):
            return port
    raise RuntimeError("no free port")


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``check`` until it is true; fail the test naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


class RedisProcess:
    """One ``redis-server`` process on a loopback port, in its own directory."""

    def __init__(self, directory: Path, port: int | None = None, *args: str) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def command(self) -> list[str]:
        return [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--logfile",
            "redis.log",
            *self.args,
        ]

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5)

    def start(self) -> RedisProcess:
        self.process = subprocess.Popen(self.command(), cwd=self.directory)
        _running.add(self.process)
        client = self.client()
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.ping()
                    return self
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        log = self.directory / "redis.log"
                        tail = log.read_text()[-2000:] if log.exists() else ""
                        self.stop()
                        pytest.fail(f"redis-server on port {self.port} did not start:\n{tail}")
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would: it saves nothing on the way out."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()
            _running.discard(process)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _running.discard(process)


class SentinelProcess(RedisProcess):
    """A sentinel (``redis-server <conf> --sentinel``) monitoring one master."""

    def __init__(self, directory: Path, master: str, master_port: int) -> None:
        super().__init__(directory)
        self.config = directory / "sentinel.conf"
        self.config.write_text(
            f"port {self.port}\nbind {HOST}\ndir {directory}\nlogfile sentinel.log\n"
            f"sentinel monitor {master} {HOST} {master_port} 1\n"
            f"sentinel down-after-milliseconds {master} 2000\n"
            f"sentinel failover-timeout {master} 10000\n"
        )

    def command(self) -> list[str]:
        return [REDIS_SERVER, str(self.config), "--sentinel"]


class Cluster:
    """Three Redis Cluster masters on loopback ports, every slot assigned."""

    def __init__(self, directory: Path) -> None:
        self.nodes = [
            RedisProcess(
                directory / f"node{i}",
                free_port(with_bus=True),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            )
            for i in range(3)
        ]

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *self.addresses, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )

        def ready() -> bool:
            for node in self.nodes:
                with node.client() as client:
                    info = client.execute_command("CLUSTER", "INFO").decode()
                    if "cluster_state:ok" not in info or "cluster_known_nodes:3" not in info:
                        return False
            return True

        wait_until(ready, "the cluster to be ready", timeout=30)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelSetup:
    """One master, one replica and one sentinel."""

    master_name = "sessions"

    def __init__(self, directory: Path) -> None:
        self.master = RedisProcess(directory / "master")
        self.replica = RedisProcess(
            directory / "replica", None, "--replicaof", HOST, str(self.master.port)
        )
        self.sentinel = SentinelProcess(directory / "sentinel", self.master_name, self.master.port)

    def sentinel_client(self) -> redis.Redis:
        """A client of the sentinel, on RESP2 (flat replies on every redis-py; 8.x defaults to
        RESP3, where SENTINEL MASTER answers a map)."""
        return redis.Redis(host=HOST, port=self.sentinel.port, socket_timeout=5, protocol=2)

    def ask(self, *args: str) -> Any:
        """The sentinel's raw reply to ``SENTINEL <args>``.

        Sent as a plain command: the ``sentinel_*`` methods of redis-py 6.x and 7.0 raise
        TypeError (they hand ``once``/``return_responses`` to reply parsers that take neither).
        """
        with self.sentinel_client() as client:
            return client.execute_command("SENTINEL", *args)

    def master_port(self) -> int:
        """The master's port, as the sentinel reports it."""
        _, port = self.ask("GET-MASTER-ADDR-BY-NAME", self.master_name)
        return int(port)

    def master_state(self) -> dict[str, str]:
        """The sentinel's view of the master (``SENTINEL MASTER``), as text."""
        reply = [item.decode() for item in self.ask("MASTER", self.master_name)]
        return dict(zip(reply[::2], reply[1::2], strict=True))

    def replica_flags(self) -> list[str]:
        """The flags the sentinel has for each replica (``SENTINEL REPLICAS``)."""
        flags = []
        for replica in self.ask("REPLICAS", self.master_name):
            fields = [item.decode() for item in replica]
            flags.append(dict(zip(fields[::2], fields[1::2], strict=True))["flags"])
        return flags

    def start(self) -> SentinelSetup:
        self.master.start()
        self.replica.start()
        self.sentinel.start()
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        """Until the replica is in sync and the sentinel knows it."""

        def healthy() -> bool:
            flags = self.replica_flags()
            return len(flags) == 1 and "s_down" not in flags[0]

        def linked() -> bool:
            port = self.master_port()
            other = self.replica if port == self.master.port else self.master
            with other.client() as client:
                return bool(client.info("replication").get("master_link_status") == "up")

        wait_until(linked, "the replica to sync", timeout=30)
        wait_until(healthy, "the sentinel to see the replica", timeout=30)

    def wait_failed_over(self, old_port: int) -> None:
        """Until a failover away from ``old_port`` is complete: the sentinel reports the new
        master everywhere and the old master has become a replica (writes acknowledged by the
        old master before then may be lost: Redis replication is asynchronous)."""

        def done() -> bool:
            state = self.master_state()
            if int(state["port"]) == old_port or "failover_in_progress" in state["flags"]:
                return False
            old = self.master if self.master.port == old_port else self.replica
            with old.client() as client:
                return bool(client.info("replication")["role"] == "slave")

        wait_until(done, "the failover to complete", timeout=30)

    def stop(self) -> None:
        for process in (self.sentinel, self.replica, self.master):
            process.stop()


_Server = TypeVar("_Server", RedisProcess, Cluster, SentinelSetup)


@contextlib.contextmanager
def running(server: _Server) -> Iterator[_Server]:
    """Start ``server`` (a process, a cluster or a sentinel setup), and stop it afterwards,
    whatever happens."""
    try:
        server.start()
        yield server
    finally:
        server.stop()
