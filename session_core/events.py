"""What extensions observe: one :class:`SessionEvent` per store call of a request.

Extensions receive events through the hook
:func:`~session_core.hookspecs.session_core_session_event`. Events carry the hash of the session
key, never the key: an event logged or exported leaks no live session id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["EventKind", "SessionEvent"]


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
