"""Concurrent requests of one session: disjoint changes merge, a sign-out is final, and
``cycle_key`` moves a session atomically."""

from __future__ import annotations

import asyncio

import redis
from redis_servers import create

from session_core import Changes, Session
from session_core.testing import make_record, run_in_threads
from session_core_redis import RedisStore, redis_key


def test_threads_reading_and_writing_disjoint_keys_all_keep_their_change(
    store: RedisStore,
) -> None:
    key = create(store, {"shared": 0})

    def request(n: int) -> None:
        session = Session(store, key)
        assert session["shared"] == 0
        session[f"t{n}"] = n
        assert session.save() == key

    run_in_threads(request, 12, together=True)
    record = store.load(key)
    assert record is not None
    assert record.data == {"shared": 0, **{f"t{n}": n for n in range(12)}}


def test_threads_deleting_and_setting_disjoint_keys(store: RedisStore) -> None:
    key = create(store, {f"old{n}": n for n in range(6)})

    def request(n: int) -> None:
        session = Session(store, key)
        del session[f"old{n}"]
        session[f"new{n}"] = n
        assert session.save() == key

    run_in_threads(request, 6, together=True)
    record = store.load(key)
    assert record is not None
    assert record.data == {f"new{n}": n for n in range(6)}


def test_async_write_only_tasks_all_keep_their_change(store: RedisStore) -> None:
    key = create(store, {"shared": 0})

    async def request(n: int) -> None:
        session = Session(store, key)
        session[f"a{n}"] = n  # no read: one write each
        assert await session.asave() == key

    async def scenario() -> None:
        await asyncio.gather(*(request(n) for n in range(25)))

    asyncio.run(scenario())
    record = store.load(key)
    assert record is not None
    assert record.data == {"shared": 0, **{f"a{n}": n for n in range(25)}}


def test_flushed_session_is_not_resurrected_by_a_late_save(store: RedisStore) -> None:
    key = create(store, {"user": 7})
    sign_out, late = Session(store, key), Session(store, key)
    assert late["user"] == 7
    assert sign_out["user"] == 7
    sign_out.flush()
    assert sign_out.save() is None
    late["cart"] = [1]
    assert late.save() is None
    assert late.vanished
    assert store.load(key) is None


def test_write_only_save_after_sign_out_starts_a_new_session(store: RedisStore) -> None:
    key = create(store, {"user": 7})
    store.delete(key)
    late = Session(store, key)
    late["cart"] = [1]  # never read: the store finds the session gone
    new_key = late.save()
    assert new_key is not None
    assert new_key != key
    assert store.load(key) is None
    record = store.load(new_key)
    assert record is not None
    assert record.data == {"cart": [1]}, "the signed-out user's data must not come back"


def test_async_late_save_after_delete_writes_nothing(store: RedisStore) -> None:
    async def scenario() -> None:
        record = make_record({"user": 1})
        key = await store.asave(None, record, Changes.everything(record))
        assert key is not None
        await store.adelete(key)
        record.data["cart"] = [1]
        assert await store.asave(key, record, Changes(frozenset({"cart"}))) is None
        assert await store.aload(key) is None

    asyncio.run(scenario())


def test_cycle_key_moves_data_and_removes_old_record(
    store: RedisStore, shared_client: redis.Redis
) -> None:
    key = create(store, {"user": 1, "cart": [2]})
    session = Session(store, key)
    session["user"] = 2
    session.cycle_key()
    new_key = session.save()
    assert new_key is not None
    assert new_key != key
    assert shared_client.exists(redis_key(store.prefix, key)) == 0
    record = store.load(new_key)
    assert record is not None
    assert record.data == {"user": 2, "cart": [2]}
