"""Expiry is Redis's own TTL: checked with PTTL for the default lifetime, per-session lifetimes,
browser-session cookies and absolute expiry, including write-only saves."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from session_core import Session
from session_core_redis import RedisStore, redis_key

MAX_AGE = 1000


def pttl(client: redis.Redis, store: RedisStore, key: str) -> int:
    return int(client.pttl(redis_key(store.prefix, key)))


def save_new(store: RedisStore, expiry: Any = None) -> str:
    """Save a new session ``{"user": 1}``, with ``set_expiry(expiry)`` unless it is None."""
    session = Session(store, max_age=MAX_AGE)
    session["user"] = 1
    if expiry is not None:
        session.set_expiry(expiry)
    key = session.save()
    assert key is not None
    return key


def assert_near(actual_ms: int, expected_s: float, slack_s: float = 3.0) -> None:
    assert expected_s * 1000 - slack_s * 1000 <= actual_ms <= expected_s * 1000 + 5, actual_ms


def test_default_lifetime(store: RedisStore, shared_client: redis.Redis) -> None:
    key = save_new(store)
    assert_near(pttl(shared_client, store, key), MAX_AGE)
    assert store.clear_expired() is None, "Redis expires sessions itself"


def test_per_session_lifetime(store: RedisStore, shared_client: redis.Redis) -> None:
    key = save_new(store, 300)
    assert_near(pttl(shared_client, store, key), 300)
    record = store.load(key)
    assert record is not None
    assert record.expiry == 300


def test_browser_session_keeps_default_server_lifetime(
    store: RedisStore, shared_client: redis.Redis
) -> None:
    key = save_new(store, 0)
    assert_near(pttl(shared_client, store, key), MAX_AGE)
    reloaded = Session(store, key, max_age=MAX_AGE)
    assert reloaded["user"] == 1
    assert reloaded.expire_at_browser_close


def test_absolute_expiry(store: RedisStore, shared_client: redis.Redis) -> None:
    key = save_new(store, datetime.now(UTC) + timedelta(seconds=120))
    assert_near(pttl(shared_client, store, key), 120)


@pytest.mark.parametrize("policy", [None, 300, 0, "at"])
def test_write_only_save_keeps_the_stored_lifetime(
    store: RedisStore, shared_client: redis.Redis, policy: int | str | None
) -> None:
    key = save_new(store, datetime.now(UTC) + timedelta(seconds=120) if policy == "at" else policy)
    before = store.load(key)
    assert before is not None
    shared_client.pexpire(redis_key(store.prefix, key), 50_000)  # as if time went by
    writer = Session(store, key, max_age=MAX_AGE)
    writer["cart"] = [1]  # written without reading: the request chose no expiry
    assert writer.save() == key
    assert_near(pttl(shared_client, store, key), 50), "a write-only save must not extend the TTL"
    record = store.load(key)
    assert record is not None
    assert record.data == {"user": 1, "cart": [1]}
    assert record.expiry == before.expiry
    assert record.expires_at == before.expires_at


def test_write_only_save_with_a_new_expiry_applies_it(
    store: RedisStore, shared_client: redis.Redis
) -> None:
    key = save_new(store, 300)
    writer = Session(store, key, max_age=MAX_AGE)
    writer.set_expiry(60)
    writer["cart"] = [1]
    assert writer.save() == key
    assert_near(pttl(shared_client, store, key), 60)


def test_session_past_its_absolute_expiry_is_gone(store: RedisStore) -> None:
    key = save_new(store, datetime.now(UTC) + timedelta(seconds=1))
    time.sleep(1.1)
    assert store.load(key) is None
    writer = Session(store, key, max_age=MAX_AGE)
    writer["cart"] = [1]
    new_key = writer.save()
    assert new_key != key, "an expired session is not extended by a write-only save"


def test_expired_record_is_never_written(store: RedisStore, shared_client: redis.Redis) -> None:
    key = save_new(store, datetime.now(UTC) - timedelta(seconds=5))
    assert shared_client.exists(redis_key(store.prefix, key)) == 0
