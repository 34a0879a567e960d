"""Many threads and async tasks on one session, through the real middleware, on every store.

Server stores merge each request's changes into what they hold, so concurrent requests that
write disjoint keys must all keep their writes (zero lost updates), and a sign-out racing saves
must win (the session is never brought back). The cookie store keeps the data in each response's
cookie: concurrent requests each get a cookie with the base session plus their own change, and
the browser keeps the last one, so there the check is that every response is whole and correct.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from session_core import StoreUnreachableError
from session_core.testing import run_in_threads

from ._apps import ASGIClient, WSGIClient
from .conftest import SECRET, StoreSetup, record_figure, scaled

THREADS, WRITES = scaled((8, 25), (16, 400))
TASKS, TASK_WRITES = scaled((40, 5), (8, 600))
RACE_ROUNDS = scaled(10, 200)


def start(client: WSGIClient) -> str:
    cookie = client.get("/set", query="k=base&v=0").cookie_value()
    assert cookie
    return cookie


def check_disjoint_writes(
    setup: StoreSetup,
    client: WSGIClient | ASGIClient,
    cookie: str,
    results: list[tuple[str, str | None]],
    what: str,
) -> None:
    """Server stores: every key written is in the session. Cookie store: each response's cookie
    is the base session plus exactly its own write (the browser keeps the last: by design)."""
    if setup.server_side:
        expected = {key for key, _ in results}
        final = client.get("/read", f"sessionid={cookie}").body["data"]
        lost = expected - set(final)
        record_figure(
            "concurrency",
            f"{setup.kind}: {what} to one session: {len(lost)} lost updates of {len(expected)}",
        )
        assert not lost
        return
    for key, value in results:
        data = client.get("/read", f"sessionid={value}").body["data"]
        assert data == {"base": "0", key: key.split("_")[1]}
    record_figure(
        "concurrency",
        f"{setup.kind}: {what}, each response whole and correct "
        f"(the browser keeps the last cookie: by design)",
    )


def test_threads_writing_disjoint_keys_lose_nothing(rel_setup: StoreSetup):
    client = WSGIClient(rel_setup.config())
    rel_setup.stores.append(client.store)
    cookie = start(client)
    failures: list[object] = []
    results: list[tuple[str, str | None]] = []
    lock = threading.Lock()

    def worker(thread: int) -> None:
        for n in range(WRITES):
            key = f"t{thread}_{n}"
            response = client.get("/set", f"sessionid={cookie}", f"k={key}&v={n}")
            if response.status != 200:
                failures.append(response)
            with lock:
                results.append((key, response.cookie_value()))

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    assert not failures
    check_disjoint_writes(
        rel_setup, client, cookie, results, f"{THREADS} threads x {WRITES} writes"
    )


def hammer_async(
    setup: StoreSetup, tasks: int, writes: int
) -> tuple[ASGIClient, str, list[tuple[str, str | None]], list[BaseException]]:
    """``tasks`` async tasks each writing ``writes`` keys of one session through the ASGI
    middleware; the acknowledged writes, and the errors of the others."""
    client = ASGIClient(setup.config())
    cookie = client.get("/set", query="k=base&v=0").cookie_value()
    assert cookie
    acknowledged: list[tuple[str, str | None]] = []
    errors: list[BaseException] = []

    async def task(number: int) -> None:
        for n in range(writes):
            key = f"a{number}_{n}"
            try:
                response = await client.aget("/set", f"sessionid={cookie}", f"k={key}&v={n}")
            except Exception as exc:  # reported: the request failed, and said so
                errors.append(exc)
                continue
            assert response.status == 200
            acknowledged.append((key, response.cookie_value()))

    async def run_all() -> None:
        await asyncio.gather(*(task(n) for n in range(tasks)))

    client.loop.run_until_complete(run_all())
    return client, cookie, acknowledged, errors


def test_async_tasks_writing_disjoint_keys_lose_nothing(rel_setup: StoreSetup):
    client, cookie, acknowledged, errors = hammer_async(rel_setup, TASKS, TASK_WRITES)
    try:
        assert not errors, errors[:3]
        check_disjoint_writes(
            rel_setup, client, cookie, acknowledged, f"{TASKS} async tasks x {TASK_WRITES} writes"
        )
    finally:
        client.close()


def test_far_more_concurrent_writers_than_a_browser_lose_nothing_silently(
    rel_server_setup: StoreSetup,
):
    """Beyond any browser (HTTP/2 allows about 100 streams): every write either lands or its
    request fails with StoreUnreachableError (or, on the db store, StoreConflictError: the
    database kept refusing it because of the other writers). The failures are reported, not
    asserted away."""
    from session_core_db import StoreConflictError

    tasks, writes = scaled((60, 3), (60, 40))
    client, cookie, acknowledged, errors = hammer_async(rel_server_setup, tasks, writes)
    try:
        reported = (StoreUnreachableError, StoreConflictError)
        assert all(isinstance(e, reported) for e in errors), errors[:3]
        reasons = Counter(f"{type(e).__name__}: {str(e).rsplit(': ', 1)[-1]}" for e in errors)
        final = client.get("/read", f"sessionid={cookie}").body["data"]
        lost = {key for key, _ in acknowledged} - set(final)
        record_figure(
            "concurrency",
            f"{rel_server_setup.kind}: {tasks} async tasks x {writes} writes to one session: "
            f"{len(lost)} lost updates, {len(errors)} requests failed visibly"
            + (f" ({dict(reasons)})" if reasons else ""),
        )
        assert not lost
    finally:
        client.close()


def test_redis_store_queues_concurrent_requests_beyond_its_pool(rel_redis_server):
    from session_core import SessionConfig, create_store

    store = create_store(
        SessionConfig(secret_key=SECRET, store="redis", store_options={"url": rel_redis_server.url})
    )

    async def main() -> list[object]:
        try:
            key = store.generate_key()
            return await asyncio.gather(
                *(store.aload(key) for _ in range(150)), return_exceptions=True
            )
        finally:
            await store.aclose()

    failures = [r for r in asyncio.run(main()) if isinstance(r, Exception)]
    assert not failures, f"{len(failures)} of 150 failed: {failures[0]!r}"


def test_sign_out_racing_saves_always_wins(rel_setup: StoreSetup):
    """Writers hammer a signed-in session while another request signs it out: afterwards the
    old key opens nothing, on every round."""
    client = WSGIClient(rel_setup.config())
    rel_setup.stores.append(client.store)
    resurrected = 0
    errors = 0
    for _ in range(RACE_ROUNDS):
        cookie = client.get("/login", query="user=alice").cookie_value()

        def racer(number: int, cookie: str = cookie) -> int:
            """Requests 0 to 3 write five keys each; request 4 signs out. Returns failures."""
            if number == 4:
                return int(client.get("/logout", f"sessionid={cookie}").status != 200)
            statuses = 0
            for n in range(5):
                response = client.get("/set", f"sessionid={cookie}", f"k=w{number}_{n}&v=1")
                statuses += response.status != 200
            return statuses

        errors += sum(n or 0 for n in run_in_threads(racer, 5, together=True))
        after = client.get("/read", f"sessionid={cookie}").body["data"]
        if rel_setup.server_side and (after or client.store.load(cookie) is not None):
            resurrected += 1
    if rel_setup.server_side:
        record_figure(
            "concurrency",
            f"{rel_setup.kind}: sign-out racing 4 writers, {RACE_ROUNDS} rounds: "
            f"{resurrected} sessions brought back, {errors} errors",
        )
    assert errors == 0
    assert resurrected == 0


def test_sessions_of_different_visitors_never_mix_under_load(rel_setup: StoreSetup):
    """Many visitors at once, each with a counter: each sees only its own."""
    client = WSGIClient(rel_setup.config())
    rel_setup.stores.append(client.store)
    visitors = scaled(12, 48)
    rounds = scaled(10, 100)

    def visitor(number: int) -> None:
        cookie = client.get("/set", query=f"k=owner&v={number}").cookie_value()
        for n in range(rounds):
            response = client.get("/incr", f"sessionid={cookie}", "k=count")
            cookie = response.cookie_value() or cookie
            assert response.body["data"] == {"owner": str(number), "count": n + 1}

    with ThreadPoolExecutor(visitors) as pool:
        list(pool.map(visitor, range(visitors)))
