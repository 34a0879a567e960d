"""The ``timeout`` of asyncpg statements: one timer per event loop for all of them.

asyncpg bounds a statement given ``timeout=`` with a timer of its own (``call_later`` and its
cancellation, and the time arithmetic around them): about a fifth of the CPU of a whole
``fetchrow``. Here a statement instead registers its deadline in its loop's :class:`Deadlines`
(a clock read and a dict entry); one timer, armed for the earliest deadline, cancels the task
of any statement still running at its deadline. asyncpg treats that cancellation as it treats
its own timeout: it asks the server to cancel the statement. The statement's runner turns the
cancellation into :class:`TimeoutError` (:meth:`Deadlines.timed_out`), so a task cancelled by
anyone else still sees :class:`asyncio.CancelledError`.

All deadlines are ``seconds`` after their start, so the registry, in insertion order, is also
in deadline order, as in the sync driver's :class:`~.timeouts.Watchdog`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Deadlines"]


class Deadlines:
    """The deadlines of the statements running on the event loop ``loop``, ``seconds`` after
    each start, read on ``clock``.

    ``clock`` defaults to :func:`time.monotonic`, the clock of asyncio's own event loops
    (``loop.time()``), without a method call; any monotonic clock in seconds works, since the
    timer is armed for the time left. The tests give one they drive by hand."""

    __slots__ = ("_busy", "_clock", "_cut", "_loop", "_timer", "seconds")

    def __init__(
        self,
        seconds: float,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        # Held strongly: the loop's engine, which holds this, is dropped at the loop's
        # shutdown (see async_connections), and the loop then with it.
        self._loop = loop
        self._busy: dict[object, tuple[float, asyncio.Task[Any]]] = {}
        self._cut: set[object] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, owner: object) -> None:
        """A statement of ``owner`` (its connection: one statement at a time) starts in the
        running task."""
        # With the loop given, current_task() is a dict lookup: on Python 3.11, finding the
        # running loop costs a getpid() system call.
        task = asyncio.current_task(self._loop)
        if task is None:  # not in a task: nothing to cancel (never under asyncio.run)
            raise RuntimeError("a statement with a timeout must run in an asyncio task")
        self._busy[owner] = (self._clock() + self.seconds, task)
        if self._timer is None:
            self._timer = self._loop.call_later(self.seconds, self._sweep)

    def stop(self, owner: object) -> None:
        """The statement of ``owner`` has finished (or failed)."""
        self._busy.pop(owner, None)
        # Cut, but it ended by another exception than CancelledError (timed_out() never ran):
        # a later cancellation of a statement of ``owner`` is not this timer's. (Empty but for
        # a statement being cut: the test spares the usual call a method call.)
        if self._cut:
            self._cut.discard(owner)

    def timed_out(self, owner: object) -> bool:
        """After :class:`asyncio.CancelledError` in a statement of ``owner``: whether it was
        this timer's doing (and no one else cancelled the task too), so the caller raises
        :class:`TimeoutError` instead."""
        if owner not in self._cut:
            return False
        self._cut.discard(owner)
        task = asyncio.current_task(self._loop)
        return task is None or task.uncancel() == 0

    def _sweep(self) -> None:
        self._timer = None
        now = self._clock()
        busy = self._busy
        for owner, (deadline, task) in list(busy.items()):
            if deadline > now:  # the earliest of those left: wake up then
                self._timer = self._loop.call_later(deadline - now, self._sweep)
                return
            del busy[owner]
            self._cut.add(owner)
            task.cancel(f"statement timeout ({self.seconds:g} seconds)")

    def close(self) -> None:
        """Stop the timer (the loop's connections are being closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
