"""A session-core extension that logs sign-ins and sign-outs to the ``session_core_audit``
logger (INFO): a session cycled with a user is a sign-in (apps cycle the key at login), a
session flushed is a sign-out, and a session revoked is a sign-out forced from elsewhere.

Each line names the user and the hash of the session key (the key itself is never logged: the
hash is what a server-side store keeps, so the line can be matched with the stored record).
The event itself is attached to the log record as ``record.session_event`` for structured
handlers."""

from __future__ import annotations

import logging

import session_core
from session_core import EventKind

__all__ = ["logger"]

logger = logging.getLogger("session_core_audit")

_MESSAGES = {
    EventKind.CYCLED: "sign-in: user %s, session %s, store %s",
    EventKind.FLUSHED: "sign-out: user %s, session %s, store %s",
    EventKind.REVOKED: "revoked: user %s, session %s, store %s",
}


@session_core.hookimpl
def session_core_session_event(event: session_core.SessionEvent) -> None:
    """Log a sign-in, a sign-out or a revocation; other events are not audited."""
    message = _MESSAGES.get(event.kind)
    if message is None or (event.kind is EventKind.CYCLED and event.user_id is None):
        return  # a key cycled for no user is no sign-in
    user = "(none)" if event.user_id is None else event.user_id
    logger.info(message, user, event.key_hash, event.store, extra={"session_event": event})
