"""Merges of one session take turns within a process."""

from __future__ import annotations

import asyncio
import threading
import weakref

__all__ = ["MergeLocks"]


class MergeLocks:
    """Serialises, within this process, the merges of saves of one session.

    A save whose row changed since it was loaded merges under the row's database lock. Taking
    a lock per session (striped over a fixed set) first makes the merges of this process queue
    here, instead of each holding a pooled connection while it waits for the row lock; only
    writers in other processes wait on the database. The usual save (its row unchanged since
    it was loaded) takes no lock. Async merges take an :class:`asyncio.Lock` of their own event
    loop's set.
    """

    _STRIPES = 64

    def __init__(self) -> None:
        self._locks = [threading.Lock() for _ in range(self._STRIPES)]
        self._loop_locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[asyncio.Lock]
        ] = weakref.WeakKeyDictionary()
        self._guard = threading.Lock()

    def for_key(self, key: str) -> threading.Lock:
        """The lock for merges of the session ``key``, in threads."""
        return self._locks[hash(key) % self._STRIPES]

    def for_key_async(self, key: str) -> asyncio.Lock:
        """The lock for merges of the session ``key``, in the running event loop."""
        loop = asyncio.get_running_loop()
        locks = self._loop_locks.get(loop)
        if locks is None:
            with self._guard:
                locks = self._loop_locks.setdefault(
                    loop, [asyncio.Lock() for _ in range(self._STRIPES)]
                )
        return locks[hash(key) % self._STRIPES]
