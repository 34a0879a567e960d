"""The ``timeout`` option: how a statement that gets no answer is cut short.

The sync drivers block in a socket read that Python cannot interrupt. psycopg gives its socket
(``fileno()``), so a watchdog thread shuts that socket down at the statement's deadline and the
blocked read fails at once. PyMySQL bounds every read and write by itself (its ``read_timeout``
and ``write_timeout`` connect arguments, which the store sets to ``timeout``): no watchdog is
needed for it. SQLite has no network to hang on (and ``busy_timeout`` bounds its waits). The
async drivers are bounded by :func:`within`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import weakref
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["IDLE_SECONDS", "TimedOut", "Watchdog", "break_socket", "is_read_timeout", "within"]

T = TypeVar("T")

IDLE_SECONDS = 60.0
"""How long a watchdog thread waits with nothing to watch before it ends."""

WATCHED_DRIVERS = frozenset({"psycopg", "psycopg2"})
"""Sync drivers whose connections give their socket (``fileno()``), so a watchdog can break it."""


class TimedOut(Exception):
    """A statement ran past the ``timeout`` option and its connection was broken."""


def break_socket(dbapi_connection: Any) -> bool:
    """Shut down the socket of a DB-API connection, so that a call blocked on it fails at once;
    whether that was possible."""
    try:
        fileno = getattr(dbapi_connection, "fileno", None)  # psycopg, psycopg2
        if fileno is None:
            return False
        # A duplicate of the descriptor: shutting it down breaks the shared socket, and closing
        # it leaves the driver's own descriptor alone.
        with socket.socket(fileno=os.dup(fileno())) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
    except Exception:  # a closed socket, or the driver's own "connection is closed" error
        return False
    return True


def is_read_timeout(exc: BaseException) -> bool:
    """Whether a driver error (or SQLAlchemy's wrapper of one) was raised because a socket read
    or write ran past its own timeout (PyMySQL's ``read_timeout``/``write_timeout``)."""
    error: BaseException | None = getattr(exc, "orig", None) or exc
    for _ in range(3):
        if error is None:
            return False
        if isinstance(error, TimeoutError):
            return True
        error = error.__cause__ or error.__context__
    return False


class Watchdog:
    """Bounds the statements of the sync driver: one daemon thread per store, started on first
    use, shuts down the socket of any statement still running at its deadline.

    A statement costs a lock and a dict operation to register and as much to unregister; the
    thread sleeps until the earliest deadline (all deadlines are ``seconds`` after their start,
    so the registry, in insertion order, is also in deadline order).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.after_fork()
        _WATCHDOGS.add(self)

    def after_fork(self) -> None:
        """Start afresh (also the state of a forked child: the parent's thread and lock do not
        come along)."""
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._running: dict[int, tuple[float, Any]] = {}
        self._fired: set[int] = set()
        self._thread: threading.Thread | None = None

    def start(self, dbapi_connection: Any) -> int:
        """Register a statement about to run on ``dbapi_connection``; returns its token."""
        token = id(dbapi_connection)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="session_core_db timeout", daemon=True
                )
                self._thread.start()
            # No notify: the thread never sleeps past now + seconds, this statement's deadline
            # (waking it for every statement cost a thread switch, tens of µs, per statement).
            self._running[token] = (time.monotonic() + self.seconds, dbapi_connection)
        return token

    def stop(self, token: int) -> bool:
        """Unregister a statement; whether its deadline passed (its connection is broken)."""
        with self._lock:
            if self._running.pop(token, None) is not None:
                return False
            if token in self._fired:
                self._fired.remove(token)
                return True
            return False

    def close(self) -> None:
        """Stop the thread (a later statement starts another)."""
        with self._cond:
            self._thread = None
            self._cond.notify_all()

    def _watch(self) -> None:
        # Never sleeps past the earliest deadline, nor for more than ``seconds`` (a statement
        # registered meanwhile is due no earlier than that), so start() never has to wake it:
        # under load it wakes about once per ``seconds``, when idle as often, and it ends after
        # IDLE_SECONDS with nothing to watch.
        me = threading.current_thread()
        cond = self._cond
        idle_since = time.monotonic()
        with cond:
            while self._thread is me:
                now = time.monotonic()
                wait = self.seconds
                for token, (deadline, dbapi_connection) in list(self._running.items()):
                    if deadline > now:
                        wait = deadline - now
                        break
                    del self._running[token]
                    if break_socket(dbapi_connection):
                        self._fired.add(token)
                if self._running:
                    idle_since = now
                elif now - idle_since >= IDLE_SECONDS:
                    self._thread = None  # the next statement starts another
                    return
                cond.wait(wait)


_WATCHDOGS: weakref.WeakSet[Watchdog] = weakref.WeakSet()


def watchdogs() -> list[Watchdog]:
    """Every live watchdog (for the fork handler)."""
    return list(_WATCHDOGS)


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """Await ``awaitable``, failing with :class:`TimeoutError` after ``seconds`` (``None``:
    no bound)."""
    if seconds is None:
        return await awaitable
    # Not asyncio.wait_for: before Python 3.12 it runs the awaitable in a task of its own,
    # several extra turns of the event loop per statement.
    async with asyncio.timeout(seconds):
        return await awaitable
