"""Signing a user out: of every session, or of every session but the current one.

These two functions are where session-core revokes sessions: the ``sign-out`` command, the
Django and Flask helpers and the demo all call them, rather than the store's
:meth:`~session_core.SessionStore.revoke_user` directly, so that whatever must happen on a
revocation (the ``"revoked"`` session event) happens in one place.
"""

from __future__ import annotations

from .store import SessionStore, UserId

__all__ = ["asign_out", "sign_out"]


def sign_out(store: SessionStore, user_id: UserId, *, keep: str | None = None) -> int:
    """Delete every session of ``user_id`` in ``store`` except the one saved under ``keep``
    (pass the current ``session.key`` to sign out the other devices), and return how many went.

    Their next request arrives with a session the store no longer knows, so it starts a fresh
    anonymous one; a save already in flight does not bring them back.

    Raises:
        UserIndexUnsupportedError: the store keeps no index of sessions by user (the cookie
            store); stores refuse before any I/O.
        StoreUnreachableError: the store's server did not answer.
    """
    # The one place of revocation (with asign_out): emit the "revoked" session event here.
    return store.revoke_user(user_id, keep)


async def asign_out(store: SessionStore, user_id: UserId, *, keep: str | None = None) -> int:
    """Async twin of :func:`sign_out`."""
    # The one place of revocation (with sign_out): emit the "revoked" session event here.
    return await store.arevoke_user(user_id, keep)
