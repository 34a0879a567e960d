"""Each private redis-py name in ``session_core_redis._compat``, checked against the installed
redis-py: these fail, naming the attribute, when redis-py renames or repurposes one."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio
from redis_servers import HOST

from session_core_redis import _compat


def address(url: str) -> dict[str, object]:
    parsed = redis.connection.parse_url(url)
    return {"host": parsed.get("host", HOST), "port": parsed.get("port", 6379)}


def test_sync_socket_open_follows_the_connection(shared_url: str) -> None:
    conn = redis.Connection(**address(shared_url))  # type: ignore[arg-type]
    assert not _compat.sync_socket_open(conn)
    conn.connect()
    try:
        assert hasattr(conn, "_sock"), "redis-py no longer has Connection._sock: update _compat"
        assert _compat.sync_socket_open(conn), "Connection._sock no longer holds the socket"
    finally:
        conn.disconnect()
    assert not _compat.sync_socket_open(conn), "Connection._sock is kept after disconnect"


def test_async_stream_at_eof_sees_the_server_close(shared_url: str) -> None:
    async def scenario() -> None:
        conn = redis.asyncio.Connection(**address(shared_url))  # type: ignore[arg-type]
        assert not _compat.async_stream_at_eof(conn)
        await conn.connect()
        assert hasattr(conn, "_reader"), "redis.asyncio no longer has Connection._reader"
        await conn.send_command("CLIENT", "ID")
        conn_id = int(await conn.read_response())
        assert not _compat.async_stream_at_eof(conn)
        async with redis.asyncio.Redis.from_url(shared_url) as admin:
            assert await admin.client_kill_filter(_id=conn_id) == 1
        deadline = time.monotonic() + 10
        while not _compat.async_stream_at_eof(conn):  # the loop reads the close
            if time.monotonic() > deadline:
                pytest.fail("Connection._reader never saw the server close the connection")
            await asyncio.sleep(0.01)
        await conn.disconnect()
        assert not _compat.async_stream_at_eof(conn), "Connection._reader kept after disconnect"

    asyncio.run(scenario())


def test_no_other_private_redis_py_name_is_used() -> None:
    # The rule _compat's docstring states, checked on the sources: no "._name" of a redis-py
    # object outside _compat (the store's own private helpers are called on "self", or are
    # module functions, never attributes of redis-py objects).
    import pathlib
    import re

    package = pathlib.Path(_compat.__file__).parent
    allowed = {"self", "cls", "lane", "store", "_compat"}
    for path in package.glob("*.py"):
        if path.name == "_compat.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for owner, name in re.findall(r"\b(\w+)\._([a-z]\w*)", line):
                assert owner in allowed, f"{path.name}:{number}: {owner}._{name}"
            for name in re.findall(r"getattr\(\w+, \"_(\w+)\"", line):
                pytest.fail(f"{path.name}:{number}: getattr of _{name}")
