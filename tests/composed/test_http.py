"""A visitor signed in before a change of store is still signed in after it, over real HTTP:
the ASGI middleware served by uvicorn, a real client keeping its cookie, and each change of
configuration a restart (a new server, as a deploy does)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import SECRET, Options, build_nested
from redis_servers import free_port

from session_core.asgi import SessionMiddleware
from session_core.store import is_plausible_key


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    session = scope["session"]
    path = scope["path"]
    if path == "/login":
        session.cycle_key()
        session["user"] = "alice"
    elif path == "/visit":
        session["visits"] = session.get("visits", 0) + 1
    body = str(session.get("user")).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def serving(store: str, options: Options) -> Iterator[str]:
    """The app on ``store`` with ``options``, served by uvicorn on a free port; its URL."""
    app = SessionMiddleware(_app, secret_key=SECRET, store=store, store_options=options)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        for _ in range(400):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.025)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        app.store.close()  # as a server's shutdown does: no connection left open


def _plain(table: Options) -> tuple[str, Options]:
    options = dict(table)
    return options.pop("store"), options


PAIRS = [
    ("cookie", "sqlite"),
    ("cookie", "postgresql"),
    ("cookie", "redis"),
    ("sqlite", "redis"),
    ("redis", "sqlite"),
    ("redis", "postgresql"),
]


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_visitor_stays_signed_in_across_a_migration(
    old: str, new: str, place: Callable[[str], Options]
) -> None:
    old_table, new_table = place(old), place(new)
    with httpx.Client() as client:
        with serving(*_plain(old_table)) as url:
            assert client.post(f"{url}/login").text == "alice"
        before = client.cookies["sessionid"]

        with serving("migrate", {"old": old_table, "new": new_table}) as url:
            assert client.get(f"{url}/whoami").text == "alice", "signed out by the change"
            assert client.cookies["sessionid"] == before, "a read moves nothing"
            assert client.get(f"{url}/visit").text == "alice"
            assert client.get(f"{url}/visit").text == "alice"
        after = client.cookies["sessionid"]

        new_store, old_store = build_nested(new_table), build_nested(old_table)
        try:
            moved = new_store.load(after)
            assert moved is not None, "the session is not in the new store"
            assert moved.data == {"user": "alice", "visits": 2}
            if old == "cookie":
                assert after != before
                assert is_plausible_key(after), "the cookie still holds the data"
            else:
                assert old_store.load(before) is None, "the session stayed in the old store"
        finally:
            new_store.close()
            old_store.close()

        with serving(*_plain(new_table)) as url:
            assert client.get(f"{url}/whoami").text == "alice", "signed out after the migration"


@pytest.mark.parametrize("back", ["sqlite", "postgresql"])
def test_visitor_stays_signed_in_when_a_cache_is_put_in_front(
    back: str, place: Callable[[str], Options]
) -> None:
    back_table = place(back)
    tiered = {"front": place("redis"), "back": back_table}
    with httpx.Client() as client:
        with serving(*_plain(back_table)) as url:
            assert client.post(f"{url}/login").text == "alice"
        with serving("tiered", tiered) as url:
            assert client.get(f"{url}/whoami").text == "alice"
            assert client.get(f"{url}/visit").text == "alice"
            assert client.get(f"{url}/visit").text == "alice"
        with serving(*_plain(back_table)) as url:
            assert client.get(f"{url}/whoami").text == "alice", "the back is the truth"
        store = build_nested(back_table)
        try:
            record = store.load(client.cookies["sessionid"])
            assert record is not None
            assert record.data == {"user": "alice", "visits": 2}
        finally:
            store.close()
