"""The tiered store's front (a throwaway redis-server with an append-only file, so it comes
back with its old data) stopped and restarted while threads read and write: every request
succeeds on the back meanwhile, no write is lost, and no read returns an old copy."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from conftest import Options, build
from redis_servers import RedisProcess, new_prefix

from session_core.session import Session
from session_core.store import generate_key
from session_core.tiered import FrontState, TieredStore

WORKERS = 6
STEPS = 15  # per worker and phase


def _until_front_is_used_again(store: TieredStore) -> None:
    """Ask for a session until a recovery has emptied the front and it is used again."""
    deadline = time.monotonic() + 30
    while store.front_state is not FrontState.UP:
        assert time.monotonic() < deadline, f"the front was not used again: {store.front_state}"
        store.load(generate_key())  # starts the recovery once the retry time has passed
        store.wait_for_recovery(5)
        time.sleep(0.02)


@pytest.mark.parametrize("back", ["sqlite", "postgresql"])
def test_front_stopped_and_restarted_under_load(
    back: str, place: Callable[[str], Options], throwaway: Callable[..., RedisProcess]
) -> None:
    server = throwaway("--appendonly", "yes", "--appendfsync", "always")
    front: Options = {"store": "redis", "url": server.url, "key_prefix": new_prefix()}
    front["socket_timeout"] = 2
    store = build("tiered", front=front, back=place(back), retry_after=0.05)
    assert isinstance(store, TieredStore)
    keys: list[str] = []
    for n in range(WORKERS):
        session = Session(store)
        session["owner"] = n
        session["count"] = 0
        saved = session.save()
        assert saved is not None
        keys.append(saved)
    counts = [0] * WORKERS
    phase_done = threading.Barrier(WORKERS + 1)
    phase_go = threading.Barrier(WORKERS + 1)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for _ in range(4):
                phase_go.wait()
                for _ in range(STEPS):
                    session = Session(store, keys[n])
                    seen = session["count"]
                    assert seen == counts[n], f"worker {n} read {seen}, wrote {counts[n]} last"
                    session["count"] = seen + 1
                    assert session.save() == keys[n]
                    counts[n] = seen + 1
                    # Read back: fills the front, so the next step's read is a hit.
                    assert Session(store, keys[n])["count"] == counts[n]
                phase_done.wait()
        except threading.BrokenBarrierError:
            pass  # the test is over, or another worker failed (reported by it)
        except BaseException as exc:
            errors.append(exc)
            phase_go.abort()
            phase_done.abort()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    try:
        phase_go.wait()  # 1: the front up
        phase_done.wait()
        assert store.front_state is FrontState.UP
        assert store.front.scan_records()[0], "the front holds no copy: it was never used"
        server.stop()
        phase_go.wait()  # 2: the front down
        phase_done.wait()
        assert store.front_state is not FrontState.UP
        server.start()  # back with the copies it held when it stopped
        phase_go.wait()  # 3: the front back, not trusted yet, or recovering
        phase_done.wait()
        _until_front_is_used_again(store)
        phase_go.wait()  # 4: the front in use again
        phase_done.wait()
    except threading.BrokenBarrierError:
        pass
    finally:
        phase_go.abort()  # a failed check here must not leave workers waiting
        phase_done.abort()
        for thread in threads:
            thread.join(60)
    assert not errors, errors
    assert store.front_state is FrontState.UP
    for n, key in enumerate(keys):
        record = store.back.load(key)
        assert record is not None
        assert record.data == {"owner": n, "count": 4 * STEPS}, "a write was lost"
        cached = store.load(key)
        assert cached is not None
        assert cached.data["count"] == 4 * STEPS
    store.close()


def test_async_front_stopped_and_restarted(
    place: Callable[[str], Options], throwaway: Callable[..., RedisProcess]
) -> None:
    """The async twins carry on against the back the same way."""
    server = throwaway("--appendonly", "yes", "--appendfsync", "always")
    front: Options = {"store": "redis", "url": server.url, "key_prefix": new_prefix()}
    store = build("tiered", front=front, back=place("sqlite"), retry_after=0.05)
    assert isinstance(store, TieredStore)

    async def bump(key: str, expected: int) -> None:
        session = Session(store, key)
        await session.aload()
        assert session["count"] == expected, "an old copy was served"
        session["count"] = expected + 1
        assert await session.asave() == key

    async def scenario() -> None:
        session = Session(store)
        session["count"] = 0
        key = await session.asave()
        assert key is not None
        await bump(key, 0)
        await bump(key, 1)  # read from the front
        server.stop()
        await bump(key, 2)
        await bump(key, 3)
        server.start()
        await bump(key, 4)
        await asyncio.to_thread(_until_front_is_used_again, store)
        await bump(key, 5)
        await bump(key, 6)
        assert store.front_state is FrontState.UP
        await store.aclose()

    asyncio.run(scenario())
