"""The demo's "Your sessions" page: where the signed-in user is signed in, with buttons that sign
out the other devices or every device (:mod:`session_core.users`).

Kept apart from :mod:`session_core.demo`, which routes to it: the page body and the two actions
are plain functions of the session and the store, so the demo's own pages stay as they are.
The demo records each device's user agent at sign-in (no IP address: the demo needs none, and
both are personal data).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from .session import Session
from .store import SessionInfo, SessionStore
from .users import asign_out

__all__ = ["ROUTES", "record_device", "sessions_body", "sign_out_everywhere", "sign_out_others"]

ROUTES = ("/sessions", "/sessions/sign-out-others", "/sessions/sign-out-everywhere")
"""The paths this module serves: the page (GET) and its two actions (POST)."""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def record_device(session: Session, user_agent: str | None) -> None:
    """After a sign-in: keep the browser's user agent with the session, for the listing."""
    if session.user_id is not None and user_agent:
        session.record_client(user_agent=user_agent[:200])


def _row(info: SessionInfo, current: str | None) -> str:
    this = info.is_key(current)
    device = info.client.get("user_agent", "a device that did not say")
    mark = ' <strong class="this-device">(this device)</strong>' if this else ""
    return (
        f'<tr class="device{" current" if this else ""}"><td>{_e(device)}{mark}</td>'
        f"<td>{info.created_at:%Y-%m-%d %H:%M:%S}</td>"
        f"<td>{info.last_seen_at:%Y-%m-%d %H:%M:%S}</td>"
        f"<td>{info.expires_at:%Y-%m-%d %H:%M}</td></tr>"
    )


def sessions_body(
    session: Session, store: SessionStore, infos: Sequence[SessionInfo] | None
) -> str:
    """The page's HTML body: the listing (``infos``, from ``store.asessions_of``), or why there
    is none (``None``: the store cannot list, or nobody is signed in)."""
    if not store.indexes_users:
        return (
            f'<p id="sessions-unavailable">The <strong>{_e(store.name)}</strong> store cannot '
            "list or sign out your other sessions: each session lives in its own browser's "
            "cookie, where no server can find or delete it. Run the demo with a store that "
            "indexes sessions by user, such as <code>--store redis</code>.</p>"
        )
    if infos is None:
        return '<p id="sessions-unavailable">Sign in to see where you are signed in.</p>'
    rows = "".join(_row(info, session.key) for info in infos)
    return (
        f'<p>Signed in as <strong id="user">{_e(session.user_id)}</strong> on '
        f'<strong id="session-count">{len(infos)}</strong> device(s). Times are UTC.</p>'
        '<table id="session-list"><tr><th>Device</th><th>Signed in</th><th>Last seen</th>'
        f"<th>Expires</th></tr>{rows}</table>"
        '<form method="post" action="/sessions/sign-out-others">'
        '<button type="submit">Sign out other sessions</button></form>'
        '<form method="post" action="/sessions/sign-out-everywhere">'
        '<button type="submit">Sign out everywhere</button></form>'
    )


async def sign_out_others(session: Session, store: SessionStore) -> str:
    """Revoke every session of the signed-in user but this one; the message to show."""
    user_id = session.user_id
    if user_id is None or not store.indexes_users:
        return "Sign in first, on a store that can list sessions."
    revoked = await asign_out(store, user_id, keep=session.key)
    return f"Signed out of {revoked} other session(s)."


async def sign_out_everywhere(session: Session, store: SessionStore) -> str:
    """Revoke every session of the signed-in user, this one included; the message to show."""
    user_id = session.user_id
    if user_id is None or not store.indexes_users:
        return "Sign in first, on a store that can list sessions."
    revoked = await asign_out(store, user_id)
    session.flush()  # this device's record went with the rest: start afresh
    return f"Signed out everywhere ({revoked} session(s))."
