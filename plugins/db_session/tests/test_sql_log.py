"""The ``session_core_db.sql`` logger: every statement the store runs, sync and async, by name
and SQL, never with its parameters (session data, key hashes)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from conftest import Database

from session_core import Changes, SessionRecord, hash_key
from session_core.testing import make_record
from session_core_db import DbStore


def _statements(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "session_core_db.sql"]


def test_statements_are_logged_without_their_parameters(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    store = DbStore(url=db.url, table_name=db.table("log"))
    secret = "the-session-secret-value"
    try:
        with caplog.at_level(logging.DEBUG, logger="session_core_db.sql"):
            key = store.save(None, _record(secret), Changes(frozenset({"token"})))
            assert key is not None
            assert store.load(key) is not None

            async def scenario() -> None:
                try:
                    assert await store.aload(key) is not None
                finally:
                    await store.aclose()

            asyncio.run(scenario())
        logged = _statements(caplog)
        names = [message.split(": ")[1] for message in logged]
        assert names == ["insert", "load", "load"]
        # Each names its database (the async engine's URL names the async driver)
        backend = store.engine.url.get_backend_name()
        assert all(message.startswith(backend) for message in logged)
        assert "INSERT INTO" in logged[0]
        assert "SELECT" in logged[1]
        for message in logged:  # never the parameters
            assert secret not in message
            assert hash_key(key) not in message
            assert key not in message
        caplog.clear()
        assert store.load(key) is not None  # the logger is back at its level: nothing logged
        assert _statements(caplog) == []
    finally:
        store.close()


def _record(secret: str) -> SessionRecord:
    return make_record({"token": secret})
