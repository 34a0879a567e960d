"""After a disconnect: every connection the pool opened before it is replaced when next checked
out, instead of failing a call of its own.

SQLAlchemy's own ``Connection`` does this on a disconnect. Its public way is a ``checkout`` pool
event that raises :class:`sqlalchemy.exc.InvalidatePoolError`: the pool then invalidates the
connection being checked out and marks every connection opened before now as stale. The
listener is added to the engine at the first disconnect only, so until then a checkout costs
nothing more; it raises once per disconnect and otherwise returns at once.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

__all__ = ["StaleConnections"]


class StaleConnections:
    """Marks the connections of ``engine``'s pool stale after a disconnect."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._listening = False
        self._pending: BaseException | None = None

    def disconnected(self, error: BaseException) -> None:
        """A connection was lost with ``error``: the pool's next checkout marks every connection
        opened before it as stale."""
        with self._lock:
            self._pending = error
            if not self._listening:
                event.listen(self._engine, "checkout", self._checkout)
                self._listening = True

    def _checkout(self, _dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if self._pending is None:
            return
        with self._lock:
            error, self._pending = self._pending, None
        if error is not None:
            raise exc.InvalidatePoolError(f"a connection was lost: {error}")

    @property
    def pending(self) -> bool:
        """Whether a disconnect waits for the pool's next checkout."""
        return self._pending is not None

    def close(self) -> None:
        """Take the listener off the engine (which may outlive the store)."""
        with self._lock:
            if self._listening:
                event.remove(self._engine, "checkout", self._checkout)
                self._listening = False
            self._pending = None

    def after_fork(self) -> None:
        """In a forked child: another thread may have held the lock at the fork."""
        self._lock = threading.Lock()
