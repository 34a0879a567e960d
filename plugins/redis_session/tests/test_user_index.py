"""The per-user index in Redis: it follows its sessions' TTLs and disappears with them, so
nothing grows as sessions expire, even when nobody ever lists or revokes."""

from __future__ import annotations

import time

import redis
from redis_servers import new_prefix

from session_core import Changes, Session
from session_core.testing import make_record
from session_core_redis import RedisStore


def _index_keys(client: redis.Redis, prefix: str) -> list[bytes]:
    return [name for name in client.scan_iter(match=prefix + "*user:*") if client.exists(name)]


def _bind(store: RedisStore, user_id: str, ttl: float) -> str:
    record = make_record({"a": 1}, ttl=ttl)
    record.user_id = user_id
    key = store.save(None, record, Changes.everything(record))
    assert key is not None
    return key


def test_index_expires_with_its_longest_lived_session(shared_url: str) -> None:
    prefix = new_prefix()
    store = RedisStore({"url": shared_url, "key_prefix": prefix})
    with redis.Redis.from_url(shared_url) as client:
        short = _bind(store, "ann", 60)
        long = _bind(store, "ann", 600)
        _bind(store, "ann", 120)
        (index,) = _index_keys(client, prefix)
        # Redis 7 PEXPIRETIME: when the index will go, which must be when its last session goes.
        longest = int(client.hget(store._redis_key(long), b"\xffexpires") or 0)
        assert client.execute_command("PEXPIRETIME", index) == longest
        # A later save that extends a session extends the index with it.
        session = Session(store, short)
        session.set_expiry(3600)
        session["b"] = 2
        assert session.save() == short
        extended = int(client.hget(store._redis_key(short), b"\xffexpires") or 0)
        assert extended > longest
        assert client.execute_command("PEXPIRETIME", index) == extended
    store.close()


def test_nothing_is_left_once_every_session_has_expired(shared_url: str) -> None:
    """Many short logins for many users, never listed nor revoked: after they expire no index
    (and no session) is left under the prefix."""
    prefix = new_prefix()
    store = RedisStore({"url": shared_url, "key_prefix": prefix})
    with redis.Redis.from_url(shared_url) as client:
        for n in range(40):
            _bind(store, f"user{n % 8}", 1.5)
        assert len(_index_keys(client, prefix)) == 8
        time.sleep(2.0)
        assert _index_keys(client, prefix) == []
        assert [k for k in client.scan_iter(match=prefix + "*") if client.exists(k)] == []
    store.close()


def test_index_of_a_busy_user_is_trimmed_on_each_login(shared_url: str) -> None:
    """A user who signs in again and again while older sessions expire: each login trims the
    expired entries, so the index holds about the live sessions only."""
    prefix = new_prefix()
    store = RedisStore({"url": shared_url, "key_prefix": prefix})
    with redis.Redis.from_url(shared_url) as client:
        keeper = _bind(store, "ann", 600)  # keeps the index alive throughout
        for _ in range(20):
            _bind(store, "ann", 0.2)
        time.sleep(0.5)
        _bind(store, "ann", 600)
        (index,) = _index_keys(client, prefix)
        assert client.zcard(index) == 2
        assert client.zscore(index, store._redis_key(keeper)[-64:]) is not None
    store.close()
