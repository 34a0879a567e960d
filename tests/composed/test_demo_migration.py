"""The demo on the composed stores, as docs/demo.md shows it: sign in on the cookie store,
restart the demo on migrate (cookie to a SQLite database), still signed in, and the session is
now in the database; and the demo on tiered."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import sqlalchemy as sa
from conftest import REDIS_URL, SECRET
from redis_servers import free_port, new_prefix

from session_core.store import hash_key


@contextlib.contextmanager
def demo(tmp_path: Path, *args: str) -> Iterator[str]:
    """``session-core demo`` with ``args`` on a free port, the secret kept across restarts."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_CORE_")}
    env["SESSION_CORE_SECRET_KEY"] = SECRET
    process = subprocess.Popen(
        [sys.executable, "-m", "session_core", "demo", "--port", str(port), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120  # generous: a loaded CI machine starts Python slowly
        while True:
            assert process.poll() is None, f"the demo exited: {process.communicate()[1]}"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=60)  # also closes its stderr pipe


def _signed_in_as(client: httpx.Client, url: str) -> str:
    page = client.get(f"{url}/").text
    marker = '<strong id="user">'
    assert marker in page, "signed out"
    return page.split(marker, 1)[1].split("<", 1)[0]


def test_demo_live_cookie_to_db_migration(tmp_path: Path) -> None:
    database = tmp_path / "sessions.sqlite3"
    migrate = [
        "--store",
        "migrate",
        "--store-option",
        'old={"store": "cookie"}',
        "--store-option",
        json.dumps({"store": "db", "url": f"sqlite:///{database}"}).join(("new=", "")),
    ]
    with httpx.Client(follow_redirects=True) as client:
        with demo(tmp_path, "--store", "cookie") as url:
            client.post(f"{url}/sign-in", data={"name": "Ada", "remember": "1"})
            assert _signed_in_as(client, url) == "Ada"
        in_cookie = client.cookies["sessionid"]
        with demo(tmp_path, *migrate) as url:
            assert _signed_in_as(client, url) == "Ada", "signed out by the change of store"
            details = client.get(f"{url}/session").text
            assert "migrate" in details
        key = client.cookies["sessionid"]
        assert key != in_cookie, "the cookie still carries the data"
        engine = sa.create_engine(f"sqlite:///{database}")
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT key_hash, data FROM session_core_sessions"))
            stored = {row.key_hash: json.loads(row.data) for row in rows}
        engine.dispose()
        assert stored[hash_key(key)]["user"] == "Ada", "the session is not in the database"
        with demo(tmp_path, "--store", "db", "--store-option", f"url=sqlite:///{database}") as url:
            assert _signed_in_as(client, url) == "Ada"


def test_demo_runs_on_tiered(tmp_path: Path) -> None:
    front = {"store": "redis", "url": REDIS_URL, "key_prefix": new_prefix()}
    back = {"store": "db", "url": f"sqlite:///{tmp_path}/back.sqlite3"}
    args = ["--store", "tiered", "--store-option", "front=" + json.dumps(front)]
    args += ["--store-option", "back=" + json.dumps(back)]
    with httpx.Client(follow_redirects=True) as client, demo(tmp_path, *args) as url:
        client.post(f"{url}/sign-in", data={"name": "Grace"})
        assert _signed_in_as(client, url) == "Grace"
        assert _signed_in_as(client, url) == "Grace"
