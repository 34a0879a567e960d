"""Throwaway Redis and PostgreSQL servers owned by the reliability tests.

Each runs on a free loopback port in a temporary directory of its own, can be stopped, frozen
and started again on the same port with its data kept (for the outage tests), and is always
stopped at the end: by the fixture that made it, or at interpreter exit if a test run dies.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
PG_BIN = Path(os.environ.get("RELIABILITY_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"  # initdb and postgres refuse to run as root

_live: set[ThrowawayServer] = set()
Server = TypeVar("Server", bound="ThrowawayServer")


def _stop_leftovers() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.destroy()


atexit.register(_stop_leftovers)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def port_open(port: int) -> bool:
    """Whether something accepts connections on ``HOST:port``."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


class ThrowawayServer:
    """A server process this test run started, restartable on its port with its data."""

    name = "server"

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix=f"session-core-rel-{self.name}-"))
        self.process: subprocess.Popen[bytes] | None = None
        _live.add(self)

    def command(self) -> list[str]:
        raise NotImplementedError

    def log_tail(self) -> str:
        return ""

    def ready(self) -> bool:
        return port_open(self.port)

    def start(self) -> ThrowawayServer:
        """Start (or restart) the server and wait until it answers; fails the test if not."""
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=self._demote,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                pytest.fail(f"{self.name} on port {self.port} did not start:\n{tail}")
            time.sleep(0.05)
        return self

    def _demote(self) -> None:
        """Runs in the child before exec; the default runs the server as the current user."""

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL), as a crash would; the data on disk stays."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)
            process.kill()
            process.wait()
        self._after_kill()

    def _after_kill(self) -> None:
        """Clean up what a crash leaves (PostgreSQL's backends)."""

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM), killing it if it does not stop in time."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._after_kill()

    def freeze(self) -> None:
        """Stop the server's processes without closing their sockets: calls hang, not fail."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Undo :meth:`freeze`."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process is not None else []

    def destroy(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        _live.discard(self)
        shutil.rmtree(self.directory, ignore_errors=True)


class ThrowawayRedis(ThrowawayServer):
    """``redis-server`` with an append-only file synced on every write, so that a kill loses no
    acknowledged session."""

    name = "redis"
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def command(self) -> list[str]:
        if not os.path.exists(self.binary):
            pytest.fail(f"redis-server is not installed ({self.binary}): apt-get install redis")
        settings = {
            "port": str(self.port),
            "bind": HOST,
            "dir": str(self.directory),
            "logfile": "redis.log",
            "save": "",  # no snapshots: the append-only file below keeps every write
            "appendonly": "yes",
            "appendfsync": "always",
        }
        return [
            self.binary,
            *(part for name, value in settings.items() for part in (f"--{name}", value)),
        ]

    def log_tail(self) -> str:
        log = self.directory / "redis.log"
        return log.read_text()[-2000:] if log.exists() else ""

    def ready(self) -> bool:
        if not port_open(self.port):
            return False
        with socket.create_connection((HOST, self.port), timeout=2) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")


class ThrowawayPostgres(ThrowawayServer):
    """A PostgreSQL cluster made by ``initdb`` for this run, run as the ``postgres`` user, with
    its unix socket in its own directory."""

    name = "postgresql"

    def __init__(self) -> None:
        super().__init__()
        if not (PG_BIN / "initdb").exists():
            pytest.fail(f"PostgreSQL is not installed ({PG_BIN}): apt-get install postgresql")
        try:
            self._account = pwd.getpwnam(PG_USER)
        except KeyError:
            pytest.fail(f"no {PG_USER!r} user to run PostgreSQL as")
        self.data = self.directory / "data"
        os.chown(self.directory, self._account.pw_uid, self._account.pw_gid)
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"],
            check=True,
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=self._demote,
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres"

    def _demote(self) -> None:
        os.setgid(self._account.pw_gid)
        os.setuid(self._account.pw_uid)

    def command(self) -> list[str]:
        return [
            str(PG_BIN / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-h",
            HOST,
            "-k",
            str(self.directory),
            "-c",
            "fsync=off",  # a process crash keeps the page cache: committed rows survive a kill
            "-c",
            "max_connections=200",
            "-c",
            "logging_collector=off",
        ]

    def log_tail(self) -> str:
        return "(postgres output is discarded; run the command by hand to see it)"

    def pids(self) -> list[int]:
        if self.process is None:
            return []
        found = [self.process.pid]
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                for line in status.read_text().splitlines():
                    if line.startswith("PPid:") and int(line.split()[1]) == self.process.pid:
                        found.append(int(status.parent.name))
        return found

    def kill(self) -> None:
        children = self.pids()[1:]
        super().kill()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._wait_for_children(children)

    def _wait_for_children(self, pids: list[int]) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.05)
        (self.data / "postmaster.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        if self.process is None:
            return
        children = self.pids()[1:]
        process, self.process = self.process, None
        with contextlib.suppress(ProcessLookupError):
            for pid in [process.pid, *children]:
                os.kill(pid, signal.SIGCONT)
        process.send_signal(signal.SIGINT)  # "fast" shutdown: roll back, disconnect, stop
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._wait_for_children(children)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """Start ``server``; stop it and remove its files afterwards, whatever happens."""
    try:
        server.start()
        yield server
    finally:
        server.destroy()
