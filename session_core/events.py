"""What extensions observe: one :class:`SessionEvent` per store call of a request.

Extensions receive events through the hook
:func:`~session_core.hookspecs.session_core_session_event`. Events carry the hash of the session
key, never the key: an event logged or exported leaks no live session id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .store import hash_key

__all__ = ["EventEmitter", "EventKind", "Observer", "SessionEvent"]

logger = logging.getLogger("session_core")


class EventKind(StrEnum):
    """What happened to a session. A ``str`` enum: ``EventKind.SAVED == "saved"``."""

    CREATED = "created"
    """A new session was saved for the first time (it got its key)."""

    SAVED = "saved"
    """An existing session was saved."""

    CYCLED = "cycled"
    """The session moved to a new key (``Session.cycle_key()``, at login)."""

    FLUSHED = "flushed"
    """The session was deleted (``Session.flush()``, at logout)."""

    REVOKED = "revoked"
    """A session was deleted for its user (sign-out of other devices, ``revoke_user``)."""

    STORE_ERROR = "store_error"
    """The store call failed (the store could not reach its server, or raised)."""


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One store call of a request, as extensions observe it.

    Attributes:
        kind: what happened.
        store: the store's public name (``"redis"``, ``"db"``, ...).
        key_hash: :func:`~session_core.hash_key` of the session key (of the new key, for a
            ``CYCLED`` event), or ``None`` when there was no key (a failed create).
        user_id: the session's :attr:`~session_core.Session.user_id`, or ``None`` when the
            session has no user.
        duration: seconds the store call took.
    """

    kind: EventKind
    store: str
    key_hash: str | None
    user_id: str | int | None
    duration: float


Observer = Callable[[SessionEvent], object]
"""One plugin's ``session_core_session_event`` hook, called with the event alone."""


class EventEmitter:
    """Sends the :class:`SessionEvent` of each store call to the plugins that observe them.

    A middleware asks its registry for one at start-up
    (:meth:`~session_core.registry.StoreRegistry.event_emitter`), which gives ``None`` when no
    plugin observes events: the sessions then build no event and take no time. Code that calls
    a store itself (a ``revoke_user``, a command) reports its call the same way::

        emitter = default_registry().event_emitter(store)
        started = time.perf_counter()
        gone = store.sessions_of(user_id)  # the hashes, before they go
        store.revoke_user(user_id)
        if emitter is not None:
            emitter.revoked(user_id, [info.key_hash for info in gone], started)

    An observer that raises does not break the request: the error is logged once for each
    plugin and type of exception (with its traceback), and the other observers still get the
    event.

    Args:
        store: the store's name, put in every event.
        observers: each observing plugin's name and its hook, called in this order.
    """

    __slots__ = ("_observers", "_reported", "store")

    def __init__(self, store: str, observers: Sequence[tuple[str, Observer]]) -> None:
        self.store = store
        self._observers = tuple(observers)
        self._reported: set[tuple[str, type[BaseException]]] = set()

    def emit(
        self, kind: EventKind, key: str | None, user_id: str | int | None, started: float
    ) -> None:
        """Send an event for a store call on ``key`` (hashed here; ``None`` for none) that
        began at ``started`` (a :func:`time.perf_counter` reading) and has just ended."""
        duration = time.perf_counter() - started
        key_hash = None if key is None else hash_key(key)
        self.send(SessionEvent(kind, self.store, key_hash, user_id, duration))

    def revoked(self, user_id: str | int | None, key_hashes: Iterable[str], started: float) -> None:
        """Send one ``REVOKED`` event per session deleted for ``user_id`` (given by its key's
        hash, as :class:`SessionInfo`-style listings hold it) by a store call that began at
        ``started`` and has just ended; each event carries that call's whole duration."""
        duration = time.perf_counter() - started
        for key_hash in key_hashes:
            self.send(SessionEvent(EventKind.REVOKED, self.store, key_hash, user_id, duration))

    def send(self, event: SessionEvent) -> None:
        """Hand ``event`` to every observer; one that raises is logged (see the class) and
        skipped."""
        for name, observe in self._observers:
            try:
                observe(event)
            except Exception as exc:
                self._report(name, exc, event)

    def _report(self, plugin: str, exc: Exception, event: SessionEvent) -> None:
        kind = (plugin, type(exc))
        if kind in self._reported:
            return  # a failing observer fails on every request: one log line says it
        self._reported.add(kind)
        logger.error(
            "session event observer %r raised %s on a %r event of the %r store; the request "
            "went on without it (further %s errors of this plugin are not logged): fix or "
            "disable the plugin (SESSION_CORE_DISABLE_PLUGINS=%s)",
            plugin,
            type(exc).__name__,
            str(event.kind),
            event.store,
            type(exc).__name__,
            plugin,
            exc_info=exc,
        )
