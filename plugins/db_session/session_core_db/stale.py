"""After a disconnect: every connection the pool opened before it is replaced when next checked
out, instead of failing a call of its own (as SQLAlchemy's own ``Connection`` has its pool do).

Through the pool's public events only: a ``connect`` listener stamps each new connection's
``info`` with the number of disconnects seen so far (under a key of each store's own: stores
handed one engine count apart), and a ``checkout`` listener raises
:class:`sqlalchemy.exc.DisconnectionError` for a connection stamped before the latest one, which
has the pool close it and hand out a fresh one in its place (once; SQLAlchemy documents this
for exactly this use). Both are added to the engine at the first disconnect, so until then a
checkout costs nothing more, and after it one ``dict`` look-up.
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
        self._disconnects = 0
        self._opened = ("session_core_db.opened", object())  # this store's stamp in ``info``

    def disconnected(self, error: BaseException) -> None:
        """A connection was lost with ``error``: every connection opened before now is
        replaced when next checked out."""
        with self._lock:
            self._disconnects += 1
            if not self._listening:
                event.listen(self._engine, "connect", self._connect)
                event.listen(self._engine, "checkout", self._checkout)
                self._listening = True

    def _connect(self, _dbapi_connection: Any, record: Any) -> None:
        record.info[self._opened] = self._disconnects

    def _checkout(self, _dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # A connection opened before the listeners were added has no stamp: it is stale too.
        if record.info.get(self._opened, 0) < self._disconnects:
            raise exc.DisconnectionError("opened before a connection to the server was lost")

    def close(self) -> None:
        """Take the listeners off the engine (which may outlive the store)."""
        with self._lock:
            if self._listening:
                event.remove(self._engine, "checkout", self._checkout)
                event.remove(self._engine, "connect", self._connect)
                self._listening = False

    def after_fork(self) -> None:
        """In a forked child: another thread may have held the lock at the fork."""
        self._lock = threading.Lock()
