"""The store's short path to Redis (``session_core_redis.wire``): which clients take it, that
both reply protocols decode, that kept connections are reused, bounded, waited for, checked
after a server restart and never shared with a forked child."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import warnings
from collections.abc import Callable

import pytest
import redis
import redis.asyncio
from redis_servers import Cluster, RedisProcess, SentinelSetup, create, free_port, new_prefix

from session_core import Changes, Session, StoreUnreachableError
from session_core.testing import make_record, run_in_threads
from session_core_redis import RedisStore, _compat, redis_key
from session_core_redis.wire import AsyncLane, Lane, _stale, pack, public_path_reason


def connections_made(server: RedisProcess) -> int:
    """How many connections ``server`` has accepted so far (this check's own included)."""
    with redis.Redis.from_url(server.url) as client:
        return int(client.info("stats")["total_connections_received"])


@pytest.fixture
def server(throwaway: Callable[..., RedisProcess]) -> RedisProcess:
    """A private server, so that connections can be counted."""
    return throwaway("--appendonly", "yes", "--appendfsync", "always")


def round_trip(store: RedisStore) -> None:
    """Create, read, update, read, cycle and delete a session."""
    key = create(store, {"user": "alice", "cart": [1, 2], "ünï": {"x": None}})
    record = store.load(key)
    assert record is not None
    assert record.data == {"user": "alice", "cart": [1, 2], "ünï": {"x": None}}
    record.data["user"] = "bob"
    assert store.save(key, record, Changes(frozenset({"user"}), frozenset({"cart"}))) == key
    loaded = store.load(key)
    assert loaded is not None
    assert loaded.data == {"user": "bob", "ünï": {"x": None}}
    new_key = store.cycle_key(key, loaded)
    assert store.load(key) is None
    store.delete(new_key)
    assert store.load(new_key) is None


async def around_trip(store: RedisStore) -> None:
    """Async twin of :func:`round_trip`."""
    record = make_record({"user": "alice", "cart": [1, 2]})
    key = await store.asave(None, record, Changes.everything(record))
    assert key is not None
    loaded = await store.aload(key)
    assert loaded is not None
    assert loaded.data == {"user": "alice", "cart": [1, 2]}
    loaded.data["user"] = "bob"
    assert await store.asave(key, loaded, Changes(frozenset({"user"}), frozenset({"cart"}))) == key
    again = await store.aload(key)
    assert again is not None
    assert again.data == {"user": "bob"}
    new_key = await store.acycle_key(key, again)
    assert await store.aload(key) is None
    await store.adelete(new_key)
    assert await store.aload(new_key) is None


def test_pack_is_what_redis_py_sends() -> None:
    args = [b"key", b"", b"\xff\x00\r\n", "ü".encode() * 300]
    connection = redis.Connection()
    assert pack(b"HSET", args) == b"".join(connection.pack_command("HSET", *args))


def test_keys_sent_are_the_documented_layout(store: RedisStore) -> None:
    key = store.generate_key()
    assert store._redis_key(key) == redis_key(store.prefix, key).encode()


def test_own_standalone_client_keeps_connections(store: RedisStore) -> None:
    round_trip(store)
    lane = store._sync_lane("load")
    assert lane.direct
    assert lane.keeps_connections


def test_sentinel_and_handed_over_clients_take_a_connection_per_command(shared_url: str) -> None:
    with redis.Redis.from_url(shared_url, protocol=2) as client:
        lane = Lane(client)
        assert lane.direct
        assert not lane.keeps_connections
        round_trip(RedisStore({"key_prefix": new_prefix()}, client=client))


REDIS_PY_MAJOR = int(redis.__version__.split(".")[0])


def test_which_clients_take_the_short_path(
    shared_url: str, redis_cluster: Cluster, redis_sentinel: SentinelSetup
) -> None:
    # Only a RESP2 connection of a plain pool: on anything else the server may push messages
    # (maintenance notifications, cache invalidations) or redis-py keeps books of its own.
    sentinel = {"master": redis_sentinel.master_name, "nodes": [redis_sentinel.sentinel.address]}
    cases: list[tuple[RedisStore, str | None]] = [
        (RedisStore({"url": shared_url}), None),
        (RedisStore({"url": shared_url, "direct_commands": False}), "off"),
        (RedisStore({"sentinel": sentinel}), "Sentinel"),
        (RedisStore({"cluster": redis_cluster.addresses}), "Cluster"),
        (RedisStore(client=redis.Redis.from_url(shared_url, protocol=3)), "RESP3"),
        (RedisStore(client=redis.Redis.from_url(shared_url, protocol=2)), None),
        (
            RedisStore(client=redis.Redis.from_url(shared_url, single_connection_client=True)),
            "single-connection",
        ),
    ]
    # RESP3 by default from redis-py 8.0, with maintenance notifications.
    default_reason = "RESP3" if REDIS_PY_MAJOR >= 8 else None
    cases.append((RedisStore(client=redis.Redis.from_url(shared_url)), default_reason))
    for store, reason in cases:
        lane = store._sync_lane("load")
        if reason is None:
            assert lane.direct, store
        else:
            assert not lane.direct, store
            assert reason == "off" or reason in (public_path_reason(lane.client) or ""), store
        round_trip(store)  # every path works
        store.close()
        if not store._owns:
            lane.client.close()


def test_client_side_caching_takes_the_public_path(shared_url: str) -> None:
    cache = pytest.importorskip("redis.cache")  # client-side caching came with redis-py 5.1
    with redis.Redis.from_url(shared_url, protocol=3, cache_config=cache.CacheConfig()) as client:
        assert "client-side caching" in (public_path_reason(client) or "")
        store = RedisStore({"key_prefix": new_prefix()}, client=client)
        assert not store._sync_lane("load").direct  # (the server here is older than 7.4,
        # which client-side caching needs: no round trip)


@pytest.mark.skipif(REDIS_PY_MAJOR < 7, reason="maintenance notifications came with redis-py 7")
def test_maintenance_notifications_take_the_public_path(shared_url: str) -> None:
    from redis.maint_notifications import MaintNotificationsConfig

    config = MaintNotificationsConfig(enabled=True)
    with redis.Redis.from_url(shared_url, protocol=3, maint_notifications_config=config) as client:
        assert public_path_reason(client) is not None
        assert not Lane(client).direct


def test_own_clients_speak_resp2_only_on_the_short_path(server: RedisProcess) -> None:
    # What the server sees: the store's connections are RESP2 (nothing pushed unasked) when it
    # sends commands itself, and redis-py's defaults with direct_commands = false.
    def protocols(direct: bool) -> set[str]:
        store = RedisStore(
            {"url": server.url, "key_prefix": new_prefix(), "direct_commands": direct}
        )
        round_trip(store)
        asyncio.run(around_trip(store))
        with redis.Redis.from_url(server.url, protocol=2) as admin:
            me = admin.client_id()
            seen = {str(c["resp"]) for c in admin.client_list() if int(c["id"]) != me}
        store.close()
        return seen

    assert protocols(True) == {"2"}
    assert protocols(False) == ({"3"} if REDIS_PY_MAJOR >= 8 else {"2"})


@pytest.mark.parametrize("protocol", [2, 3])
def test_both_reply_protocols(shared_url: str, protocol: int) -> None:
    # RESP2 answers HGETALL with a flat list, RESP3 with a map.
    with redis.Redis.from_url(shared_url, protocol=protocol) as client:
        round_trip(RedisStore({"key_prefix": new_prefix()}, client=client))


@pytest.mark.parametrize("protocol", [2, 3])
def test_both_reply_protocols_async(shared_url: str, protocol: int) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(shared_url, protocol=protocol)
        try:
            await around_trip(RedisStore({"key_prefix": new_prefix()}, async_client=client))
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_single_connection_client_goes_through_redis_py(shared_url: str) -> None:
    with redis.Redis.from_url(shared_url, single_connection_client=True) as client:
        assert not Lane(client).direct
        round_trip(RedisStore({"key_prefix": new_prefix()}, client=client))


def test_single_connection_async_client_goes_through_redis_py(shared_url: str) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(shared_url, single_connection_client=True)
        try:
            assert not AsyncLane(client).direct
            await around_trip(RedisStore({"key_prefix": new_prefix()}, async_client=client))
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_sequential_requests_share_one_connection(server: RedisProcess) -> None:
    store = RedisStore({"url": server.url, "key_prefix": new_prefix()})
    key = create(store, {"n": 0})
    before = connections_made(server)
    for _ in range(50):
        session = Session(store, key)
        session["n"] = session["n"] + 1  # type: ignore[operator]
        session.save()
    assert connections_made(server) == before + 1  # the check's own: the store made none
    store.close()


def test_threads_never_use_more_connections_than_the_limit(server: RedisProcess) -> None:
    store = RedisStore({"url": server.url, "key_prefix": new_prefix(), "max_connections": 2})
    key = create(store, {"shared": 0})
    before = connections_made(server)

    def request(n: int) -> None:
        for round_ in range(20):
            session = Session(store, key)
            assert session["shared"] == 0
            session[f"t{n}"] = round_
            assert session.save() == key

    run_in_threads(request, 8, together=True)
    record = store.load(key)
    assert record is not None
    assert record.data == {"shared": 0, **{f"t{n}": 19 for n in range(8)}}
    assert connections_made(server) - before <= 1 + 1  # the first one's made already; + check
    store.close()


def test_tasks_never_use_more_connections_than_the_limit(server: RedisProcess) -> None:
    store = RedisStore({"url": server.url, "key_prefix": new_prefix(), "max_connections": 2})
    key = create(store, {"shared": 0})
    before = connections_made(server)

    async def request(n: int) -> None:
        for round_ in range(10):
            session = Session(store, key)
            await session.aload()
            session[f"a{n}"] = round_
            assert await session.asave() == key

    async def scenario() -> None:
        await asyncio.gather(*(request(n) for n in range(20)))
        await store.aclose()

    asyncio.run(scenario())
    record = store.load(key)
    assert record is not None
    assert record.data == {"shared": 0, **{f"a{n}": 9 for n in range(20)}}
    # At most two for the event loop's client, one for the sync load just above (aclose closed
    # the sync pool too), and the check's own.
    assert connections_made(server) - before <= 2 + 1 + 1
    store.close()


@pytest.fixture
def pausable(throwaway: Callable[..., RedisProcess]) -> RedisProcess:
    """A private server that can be made to answer nothing for a while (``CLIENT PAUSE``)."""
    return throwaway()


class Paused:
    """``server`` answering nothing for ``seconds`` from now: ``CLIENT PAUSE ... ALL`` is in
    effect when it returns (unlike ``DEBUG SLEEP`` sent from a thread, whose start is a guess),
    and ends by the server's clock."""

    def __init__(self, server: RedisProcess, seconds: float) -> None:
        self.server = server
        self.seconds = seconds
        with redis.Redis.from_url(server.url, protocol=2) as client:
            assert client.client_pause(int(seconds * 1000), all=True)

    def join(self) -> None:
        """Return once the server answers again (a PING waits out the pause)."""
        with redis.Redis.from_url(self.server.url, socket_timeout=self.seconds + 30) as client:
            assert client.ping()


def pause(server: RedisProcess, seconds: float) -> Paused:
    """Make ``server`` answer nothing for ``seconds``, from now on (returns at once)."""
    return Paused(server, seconds)


async def until_kept_connections_closed(store: RedisStore) -> None:
    """Until the event loop has read the server's close on the store's kept connections: the
    condition a serving loop meets between requests, waited for instead of guessed."""
    lane = await store._loop_lane("load")
    deadline = time.monotonic() + 10
    while not all(_compat.async_stream_at_eof(conn) for conn in lane._kept):
        if time.monotonic() > deadline:
            pytest.fail("the event loop never saw the server close the kept connections")
        await asyncio.sleep(0.01)


def until(check: Callable[[], bool], what: str) -> None:
    """Until ``check()`` holds (a condition of the test's own making, met within moments)."""
    deadline = time.monotonic() + 10
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_a_request_waits_for_a_free_connection_then_fails(pausable: RedisProcess) -> None:
    # One connection, on a server that answers nothing. The request holding it keeps it one
    # socket timeout (a timeout is never retried); of two requests that come meanwhile, one
    # gets it next and keeps it as long, so the other, having waited one socket timeout for
    # it, fails with "No connection available". Ordered by conditions, not by sleeps.
    timeout = 0.4
    options = {"url": pausable.url, "max_connections": 1, "socket_timeout": timeout, "retries": 1}
    store = RedisStore({**options, "key_prefix": new_prefix()})
    assert store.load(store.generate_key()) is None  # connected, and kept
    lane = store._sync_lane("load")
    outcomes: list[tuple[BaseException | None, float]] = []

    def request(n: int = 0) -> None:
        started = time.monotonic()
        with pytest.raises(StoreUnreachableError) as caught:
            store.load(store.generate_key())
        outcomes.append((caught.value.__cause__, time.monotonic() - started))

    paused = pause(pausable, 3)
    holder = threading.Thread(target=request)
    holder.start()
    until(lambda: not lane._kept, "the first request to take the connection")
    run_in_threads(request, 2, together=True)
    holder.join()
    paused.join()
    assert len(outcomes) == 3
    waited = [took for cause, took in outcomes if "No connection available" in str(cause)]
    assert waited, outcomes
    assert all(took >= timeout - 0.05 for took in waited), outcomes  # it did wait
    assert store.load(store.generate_key()) is None  # and all is well again
    store.close()


def test_a_task_waits_for_a_free_connection_then_fails(pausable: RedisProcess) -> None:
    timeout = 0.4
    options = {"url": pausable.url, "max_connections": 1, "socket_timeout": timeout, "retries": 1}
    store = RedisStore({**options, "key_prefix": new_prefix()})

    async def request() -> tuple[BaseException | None, float]:
        started = time.monotonic()
        with pytest.raises(StoreUnreachableError) as caught:
            await store.aload(store.generate_key())
        return caught.value.__cause__, time.monotonic() - started

    async def scenario() -> list[tuple[BaseException | None, float]]:
        try:
            assert await store.aload(store.generate_key()) is None  # connected, and kept
            lane = await store._loop_lane("load")
            paused = pause(pausable, 3)
            holder = asyncio.ensure_future(request())
            for _ in range(1000):  # until the first request has taken the connection
                if not lane._kept:
                    break
                await asyncio.sleep(0)
            assert not lane._kept
            others = await asyncio.wait_for(asyncio.gather(request(), request()), 10)
            outcomes = [await holder, *others]
            await asyncio.to_thread(paused.join)
            assert await store.aload(store.generate_key()) is None  # and all is well again
            return outcomes
        finally:
            await store.aclose()

    outcomes = asyncio.run(scenario())
    waited = [took for cause, took in outcomes if "No connection available" in str(cause)]
    assert waited, outcomes
    assert all(took >= timeout - 0.05 for took in waited), outcomes


def test_a_closed_kept_connection_is_not_connected_just_to_be_checked() -> None:
    # A kept connection that a timeout closed is not checked before reuse: checking would
    # connect it, outside the command's own timeout (a hung server would hold the request for
    # one more connection attempt). The command's send connects it.
    conn = redis.Connection(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    assert not _stale(conn)
    assert not _compat.sync_socket_open(conn)  # no connection was attempted


def test_a_hung_server_costs_each_call_one_attempt(pausable: RedisProcess) -> None:
    # A timeout is never retried (a hung server holds a request one socket timeout, not one per
    # retry), and once a timeout has closed the kept connection, the next call does not spend a
    # connection attempt checking it before its own. Counted, not timed: a paused server still
    # accepts connections, and reports how many after the pause.
    timeout = 0.2
    options = {"url": pausable.url, "socket_timeout": timeout, "retries": 3}
    store = RedisStore({**options, "key_prefix": new_prefix()})
    record = make_record({"user": "alice"})
    key = store.save(None, record, Changes.everything(record))
    assert key is not None
    pool = store._sync_lane("load").client.connection_pool

    def accepted_during(seconds: float, work: Callable[[], None]) -> int:
        before = connections_made(pausable)
        paused = pause(pausable, seconds)
        work()
        paused.join()
        return connections_made(pausable) - before - 3  # less the count's, pause's, join's

    def one_attempt() -> None:  # a fresh connection and one command, with the store's settings
        conn = redis.Connection(**pool.connection_kwargs)
        conn.send_command("PING")  # connects (and shakes hands) first
        with pytest.raises(redis.TimeoutError):
            conn.read_response()
        conn.disconnect()

    per_attempt = accepted_during(1.5, one_attempt)
    assert per_attempt >= 1

    def first_call() -> None:  # on the kept, live connection
        with pytest.raises(StoreUnreachableError) as caught:
            store.load(key)
        assert isinstance(caught.value.__cause__, redis.TimeoutError)

    assert accepted_during(1.5, first_call) == 0  # not retried on a new connection

    def later_calls() -> None:  # the kept connection is closed now: each makes one attempt
        with pytest.raises(StoreUnreachableError):
            store.save(key, make_record({"x": 1}), Changes(frozenset({"x"})))
        with pytest.raises(StoreUnreachableError):
            store.delete(store.generate_key())

    assert accepted_during(2.5, later_calls) == 2 * per_attempt
    assert store.load(key) is not None  # and all is well again
    store.close()


def test_cancelled_while_reconnecting_a_kept_connection_loses_nothing(
    server: RedisProcess,
) -> None:
    # The only connection is kept, the server drops it, and the request that finds it so is
    # cancelled: the connection must still be the store's, or every later request would find
    # the pool exhausted ("Too many connections").
    store = RedisStore({"url": server.url, "max_connections": 1, "key_prefix": new_prefix()})
    admin = redis.Redis.from_url(server.url)

    async def scenario() -> None:
        try:
            assert await store.aload(store.generate_key()) is None  # one connection, kept
            admin.client_kill_filter(_type="normal", skipme=True)
            await until_kept_connections_closed(store)
            for _ in range(3):
                task = asyncio.ensure_future(store.aload(store.generate_key()))
                await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            for _ in range(3):
                assert await asyncio.wait_for(store.aload(store.generate_key()), 5) is None
        finally:
            await store.aclose()

    try:
        asyncio.run(scenario())
    finally:
        admin.close()
        store.close()


def test_a_merge_never_touches_what_the_store_did_not_write(shared_url: str) -> None:
    # A value of another type at a session's key, and a hash without the store's metadata: a
    # save into either key writes nothing, changes no TTL, and adopts neither.
    prefix = new_prefix()
    store = RedisStore({"url": shared_url, "key_prefix": prefix})
    raw = redis.Redis.from_url(shared_url)
    key_string, key_hash = store.generate_key(), store.generate_key()
    at_string, at_hash = redis_key(prefix, key_string), redis_key(prefix, key_hash)
    raw.set(at_string, b"someone else's")
    raw.hset(at_hash, mapping={b"user": b'"mallory"'})
    try:
        record = make_record({"user": "alice"})
        for key in (key_string, key_hash):
            for complete in (True, False):  # a merge, and a write-only save
                changes = Changes(frozenset({"user"}), complete=complete, expiry=complete)
                if key == key_string:  # refused before any write
                    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
                        store.save(key, record, changes)
                else:
                    assert store.save(key, record, changes) is None
                assert raw.pttl(redis_key(prefix, key)) == -1  # no TTL was set
        assert raw.get(at_string) == b"someone else's"
        assert raw.hgetall(at_hash) == {b"user": b'"mallory"'}
    finally:
        raw.delete(at_string, at_hash)
        raw.close()
        store.close()


def test_kept_connection_closed_by_a_restart_is_reconnected_without_a_retry(
    server: RedisProcess,
) -> None:
    store = RedisStore({"url": server.url, "key_prefix": new_prefix(), "retries": 0})
    key = create(store, {"user": 1})
    assert store.load(key) is not None
    server.stop()
    server.start()
    record = store.load(key)  # retries=0: only the check before use can save this request
    assert record is not None
    assert record.data == {"user": 1}
    store.close()


def test_kept_async_connection_closed_by_a_restart_is_reconnected_without_a_retry(
    server: RedisProcess,
) -> None:
    store = RedisStore({"url": server.url, "key_prefix": new_prefix(), "retries": 0})
    key = create(store, {"user": 1})

    async def scenario() -> None:
        assert await store.aload(key) is not None
        server.stop()
        server.start()
        await until_kept_connections_closed(store)
        record = await store.aload(key)
        assert record is not None
        assert record.data == {"user": 1}
        await store.aclose()

    asyncio.run(scenario())
    store.close()


def test_failed_command_does_not_spoil_its_connection(store: RedisStore) -> None:
    key = create(store, {"user": 1})
    planted = store.generate_key()
    with redis.Redis.from_url(store.options.url or "") as client:
        client.set(store._redis_key(planted), b"not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        store.load(planted)
    for _ in range(3):
        record = store.load(key)
        assert record is not None
        assert record.data == {"user": 1}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_makes_its_own_connections(server: RedisProcess) -> None:
    store = RedisStore({"url": server.url, "key_prefix": new_prefix()})
    key = create(store, {"user": 1})
    assert store.load(key) is not None  # the parent keeps its connection
    before = connections_made(server)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            record = store.load(key)
            code = 0 if record is not None and record.data == {"user": 1} else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert connections_made(server) == before + 2  # the child's own, and this check's
    for _ in range(3):  # the parent's connection is intact
        record = store.load(key)
        assert record is not None
    assert connections_made(server) == before + 3
    store.close()


def test_lane_gate_is_released_when_connecting_fails() -> None:
    # Connection refused: each attempt must give its slot back, or the next would find no
    # connection free ("No connection available" after a wait) instead of being refused.
    store = RedisStore({"url": "redis://127.0.0.1:1/0", "max_connections": 1, "socket_timeout": 5})

    def refused(error: StoreUnreachableError) -> bool:
        cause = error.__cause__
        return isinstance(cause, redis.ConnectionError) and "No connection" not in str(cause)

    for _ in range(3):
        with pytest.raises(StoreUnreachableError) as caught:
            store.load(store.generate_key())
        assert refused(caught.value), caught.value

    async def scenario() -> None:
        for _ in range(3):
            with pytest.raises(StoreUnreachableError) as caught:
                await store.aload(store.generate_key())
            assert refused(caught.value), caught.value
        await store.aclose()

    asyncio.run(scenario())
    store.close()


def test_threads_share_a_lane_safely(store: RedisStore) -> None:
    keys = [create(store, {"n": n}) for n in range(16)]
    lock = threading.Lock()
    seen: list[int] = []

    def request(n: int) -> None:
        for _ in range(25):
            record = store.load(keys[n])
            assert record is not None
            assert record.data == {"n": n}  # never another session's reply
        with lock:
            seen.append(n)

    run_in_threads(request, 16, together=True)
    assert sorted(seen) == list(range(16))


def test_cancelled_request_never_leaves_its_reply_to_the_next(
    throwaway: Callable[..., RedisProcess],
) -> None:
    server = throwaway()
    store = RedisStore({"url": server.url, "key_prefix": new_prefix(), "max_connections": 1})
    first, second = create(store, {"who": "first"}), create(store, {"who": "second"})

    async def scenario() -> None:
        assert await store.aload(first) is not None  # the loop's one connection, kept
        paused = pause(server, 3)  # the server now answers nothing for a while
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(store.aload(first), 0.1)  # sent, then given up on
        await asyncio.to_thread(paused.join)
        record = await store.aload(second)  # must never read the first one's late reply
        assert record is not None
        assert record.data == {"who": "second"}
        await store.aclose()

    asyncio.run(scenario())
    store.close()


def test_public_path_pool_is_bounded_and_waits(shared_url: str) -> None:
    # With direct_commands = false the lane does not bound the commands: redis-py's blocking
    # pool does, with the same size and wait.
    store = RedisStore(
        {
            "url": shared_url,
            "key_prefix": new_prefix(),
            "direct_commands": False,
            "max_connections": 3,
        }
    )
    pool = store._sync_lane("load").client.connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)
    assert pool.max_connections == 3
    assert pool.timeout == store.options.socket_timeout
    round_trip(store)
    store.close()

    async def scenario() -> None:
        store = RedisStore(
            {"url": shared_url, "key_prefix": new_prefix(), "direct_commands": False}
        )
        lane = await store._loop_lane("load")
        assert isinstance(lane.client.connection_pool, redis.asyncio.BlockingConnectionPool)
        assert lane.client.connection_pool.max_connections == 100
        await around_trip(store)
        await store.aclose()

    asyncio.run(scenario())
