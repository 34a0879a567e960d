"""Fork safety: a child process starts afresh, never touching its parent's connections, locks
or watchdog threads (which do not come along with a fork)."""

from __future__ import annotations

import os
import weakref
from typing import Protocol

from .timeouts import watchdogs

__all__ = ["register"]


class _Forkable(Protocol):
    def _after_fork(self) -> None: ...


_OBJECTS: weakref.WeakSet[_Forkable] = weakref.WeakSet()


def register(forkable: _Forkable) -> None:
    """Have ``forkable._after_fork()`` called in every child forked from now on."""
    _OBJECTS.add(forkable)


def _after_fork() -> None:
    for watchdog in watchdogs():
        watchdog.after_fork()
    for forkable in list(_OBJECTS):
        forkable._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
