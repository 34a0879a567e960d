"""Sessions per user on the composed stores, over real servers: the tiered store lists and
revokes through its back and drops the revoked sessions' copies from its front, also against a
fill racing the revocation (made certain with events); the migrate store lists both stores'
sessions once each and revokes in both; the ``sign-out`` command works on both."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SECRET, Options, build, build_nested
from forwarding import forwarding
from redis_servers import RedisProcess, new_prefix

from session_core import StoreUnreachableError, UserIndexUnsupportedError
from session_core.copying import copy_sessions
from session_core.migrate import MigrateStore
from session_core.session import Session
from session_core.store import SessionStore, hash_key
from session_core.tiered import FrontState, TieredStore
from session_core.users import asign_out, sign_out


def _sign_in(store: SessionStore, user: str, **data: object) -> str:
    session = Session(store)
    session.update(data or {"cart": [user]})
    session.user_id = user
    key = session.save()
    assert key is not None
    return key


def _listed(store: SessionStore, user: str) -> set[str]:
    hashes = [info.key_hash for info in store.sessions_of(user)]
    assert len(hashes) == len(set(hashes)), f"a session listed twice: {hashes}"
    return set(hashes)


def _tiered(place: Callable[[str], Options], back: str = "sqlite") -> TieredStore:
    store = build("tiered", front=place("redis"), back=place(back))
    assert isinstance(store, TieredStore)
    return store


def _paused_tiered(place: Callable[[str], Options]) -> tuple[TieredStore, Callable[..., object]]:
    """A tiered store whose back is the real store behind a forwarder, and ``pause(when,
    method)``: the next such call of the back waits, after (or before) it runs, until the
    test says go; the test's code runs in between."""
    front = build_nested(place("redis"))
    back = forwarding(build_nested(place("sqlite")))
    store = TieredStore(front, back)

    def pause(
        when: str,
        method: str,
        meanwhile: Callable[[], None],
        work: Callable[[], object],
        nth: int = 1,
    ) -> object:
        reached, go = threading.Event(), threading.Event()
        calls = 0

        def hook() -> None:
            nonlocal calls
            calls += 1
            if calls == nth:
                reached.set()
                assert go.wait(20), "the test never let the paused call go on"

        hooks = back.after if when == "after" else back.before
        hooks[method] = hook
        results: list[object] = []
        worker = threading.Thread(target=lambda: results.append(work()))
        worker.start()
        try:
            assert reached.wait(20), f"the back's {method} was never called"
            meanwhile()
        finally:
            go.set()
            worker.join(20)
            del hooks[method]
        assert not worker.is_alive()
        return results[0]

    return store, pause


# ---------------------------------------------------------------------- tiered


@pytest.mark.parametrize("back", ["sqlite", "postgresql"])
def test_tiered_lists_through_the_back_and_revokes_the_front_copies(
    place: Callable[[str], Options], back: str
) -> None:
    store = _tiered(place, back)
    assert store.indexes_users
    phone, laptop, tablet = (_sign_in(store, "ann") for _ in range(3))
    bob = _sign_in(store, "bob")
    for key in (phone, laptop, tablet, bob):
        assert Session(store, key).user_id is not None  # read: fills the front
        cached = store.front.load(key)
        assert cached is not None, "the read filled the front"
        assert cached.user_id in ("ann", "bob"), "the front's copy keeps its user"
    assert _listed(store, "ann") == {hash_key(k) for k in (phone, laptop, tablet)}
    assert sign_out(store, "ann", keep=phone) == 2
    for key in (laptop, tablet):
        assert store.front.load(key) is None, "a revoked session's copy stayed in the front"
        assert store.load(key) is None
    assert Session(store, phone).user_id == "ann"
    assert store.front.load(phone) is not None, "the kept session's copy stays"
    assert store.load(bob) is not None
    assert _listed(store, "ann") == {hash_key(phone)}
    store.close()


def test_tiered_fill_after_the_revocation_does_not_put_the_session_back(
    place: Callable[[str], Options],
) -> None:
    """A request reads the back, then the revocation runs to the end, then the request fills
    the front: its re-read of the back finds the session gone and removes the copy."""
    store, pause = _paused_tiered(place)
    key = _sign_in(store, "ann")
    read = pause("after", "load", lambda: sign_out(store, "ann"), lambda: store.load(key))
    assert read is not None, "the request read the session before the revocation"
    assert store.front.load(key) is None, "the late fill put a revoked session in the front"
    assert store.load(key) is None
    assert Session(store, key).user_id is None
    store.close()


def test_tiered_fill_before_the_revocation_is_revoked_with_the_others(
    place: Callable[[str], Options],
) -> None:
    """A request's fill lands in the front just before the revocation (it is paused before its
    re-read of the back): the front's revocation removes it."""
    store, pause = _paused_tiered(place)
    key = _sign_in(store, "ann")
    seen: list[object] = []

    def revoke() -> None:
        seen.append(store.front.load(key))  # the fill is in the front now
        assert sign_out(store, "ann") == 1
        seen.append(store.front.load(key))

    # The second read of the back: the fill's re-read, after its copy went to the front.
    read = pause("before", "load", revoke, lambda: store.load(key), nth=2)
    assert read is not None
    assert seen[0] is not None, "the fill had not reached the front"
    assert seen[1] is None, "the revocation left the fill's copy in the front"
    assert store.front.load(key) is None
    assert store.load(key) is None
    store.close()


def test_tiered_async_twins_list_and_revoke(place: Callable[[str], Options]) -> None:
    store = _tiered(place)
    keys = [_sign_in(store, "ann") for _ in range(2)]

    async def scenario() -> None:
        for key in keys:
            assert await store.aload(key) is not None  # fills the front
        listed = await store.asessions_of("ann")
        assert {info.key_hash for info in listed} == {hash_key(k) for k in keys}
        assert await asign_out(store, "ann", keep=keys[0]) == 1
        assert await store.front.aload(keys[1]) is None
        assert await store.aload(keys[1]) is None
        assert await store.aload(keys[0]) is not None

    asyncio.run(scenario())
    store.close()


@pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
def test_tiered_revocation_reaches_a_front_this_process_marked_down(
    place: Callable[[str], Options], async_: bool
) -> None:
    """Two workers share the same front and back; one marked the front down (a failure of its
    own), the other still reads it. A revocation through the first still removes the front's
    copies, so the second worker serves no revoked session."""
    front, back = place("redis"), place("sqlite")
    revoking = build("tiered", front=front, back=back)
    serving = build("tiered", front=front, back=back)
    assert isinstance(revoking, TieredStore)
    assert isinstance(serving, TieredStore)
    key = _sign_in(serving, "ann")
    assert serving.load(key) is not None  # fills the shared front
    assert revoking.front.load(key) is not None
    revoking._front_failed()
    assert revoking.front_state is FrontState.DOWN
    if async_:
        assert asyncio.run(asign_out(revoking, "ann")) == 1
    else:
        assert sign_out(revoking, "ann") == 1
    assert serving.front_state is FrontState.UP
    assert serving.front.load(key) is None, "the revoked session's copy stayed in the front"
    assert serving.load(key) is None, "another worker served a revoked session"
    revoking.close()
    serving.close()


@pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
def test_tiered_revocation_with_the_front_unreachable_says_it_is_incomplete(
    place: Callable[[str], Options], throwaway: Callable[..., RedisProcess], async_: bool
) -> None:
    """The front is down: the back revokes, then the revocation raises (the front's copies
    could not be removed, so it must be retried) and the front is marked failed."""
    server = throwaway()
    front: Options = {"store": "redis", "url": server.url, "key_prefix": new_prefix()}
    front["socket_timeout"] = 2
    store = build("tiered", front=front, back=place("sqlite"))
    assert isinstance(store, TieredStore)
    key = _sign_in(store, "ann")
    assert store.load(key) is not None
    server.stop()

    def revoke() -> int:
        if async_:
            return asyncio.run(store.arevoke_user("ann"))
        return store.revoke_user("ann")

    with pytest.raises(StoreUnreachableError) as caught:
        revoke()
    message = str(caught.value)
    assert "revoked in the back store (db)" in message
    assert "front's copies could not be removed" in message
    assert "retry" in message
    assert isinstance(caught.value.__cause__, StoreUnreachableError)
    assert store.front_state is FrontState.DOWN
    assert store.back.load(key) is None, "the back revoked before the error"
    assert store.load(key) is None
    store.close()


def _config_file(tmp_path: Path, store: str, **tables: Options) -> Path:
    def table(options: Options) -> str:
        return "{" + ", ".join(f'{k} = "{v}"' for k, v in options.items()) + "}"

    lines = [f'secret_key = "{SECRET}"', f'store = "{store}"', "[store_options]"]
    lines += [f"{role} = {table(options)}" for role, options in tables.items()]
    path = tmp_path / "session.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _sign_out_command(config: Path, user: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_CORE_")}
    return subprocess.run(
        [sys.executable, "-m", "session_core", "sign-out", "--user", user, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_sign_out_command_on_tiered(place: Callable[[str], Options], tmp_path: Path) -> None:
    front, back = place("redis"), place("sqlite")
    store = build("tiered", front=front, back=back)
    keys = [_sign_in(store, "ann") for _ in range(2)]
    assert all(store.load(key) is not None for key in keys)  # in the front too
    result = _sign_out_command(_config_file(tmp_path, "tiered", front=front, back=back), "ann")
    assert result.returncode == 0, result.stderr
    assert "out of 2 sessions" in result.stdout
    assert isinstance(store, TieredStore)
    assert all(store.front.load(key) is None for key in keys)
    assert all(store.load(key) is None for key in keys)
    store.close()


# ---------------------------------------------------------------------- migrate


@pytest.mark.parametrize(("old", "new"), [("sqlite", "redis"), ("redis", "postgresql")])
def test_migrate_lists_both_stores_once_and_revokes_in_both(
    place: Callable[[str], Options], old: str, new: str
) -> None:
    store = build("migrate", old=place(old), new=place(new))
    assert isinstance(store, MigrateStore)
    assert store.indexes_users
    not_moved = _sign_in(store.old, "ann")
    copied = _sign_in(store.old, "ann")
    moved = _sign_in(store.old, "ann")
    fresh = _sign_in(store, "ann")
    bob = _sign_in(store.old, "bob")
    copy_sessions(store.old, store.new)  # every old session now in both stores
    for key in (not_moved, moved, bob):  # ... but these, not copied yet
        store.new.delete_record(hash_key(key))
    mover = Session(store, moved)
    mover["visits"] = 1  # write-only: the move reads the old store and keeps its user
    assert mover.save() == moved
    assert store.old.load(moved) is None, "the move took the session out of the old store"
    assert Session(store, moved).user_id == "ann", "a moved session keeps its user"
    assert _listed(store.new, "ann") == {hash_key(k) for k in (copied, moved, fresh)}
    everyone = {hash_key(k) for k in (not_moved, copied, moved, fresh)}
    assert _listed(store, "ann") == everyone
    # copied is held in both stores: the sum of both stores' counts has it twice.
    assert sign_out(store, "ann", keep=fresh) == 4
    for key in (not_moved, copied, moved):
        assert store.load(key) is None
        assert store.old.load(key) is None
        assert store.new.load(key) is None
    assert _listed(store, "ann") == {hash_key(fresh)}
    assert Session(store, bob).user_id == "bob"
    store.close()


@pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
def test_migrate_revocation_asks_each_store_once(
    place: Callable[[str], Options], async_: bool
) -> None:
    """A revocation is one call to each store (no listing first): its count is the sum of
    theirs, so a session held in both stores (copied, not yet moved) counts twice."""
    old, new = forwarding(build_nested(place("sqlite"))), forwarding(build_nested(place("redis")))
    store = MigrateStore(old, new)
    in_old = _sign_in(old.inner, "ann")
    in_both = _sign_in(old.inner, "ann")
    in_new = _sign_in(new.inner, "ann")
    record = old.inner.load_record(hash_key(in_both))
    assert record is not None
    assert new.inner.insert_record(hash_key(in_both), record)
    old.calls.clear()
    new.calls.clear()
    if async_:
        assert asyncio.run(asign_out(store, "ann")) == 4
    else:
        assert sign_out(store, "ann") == 4
    assert dict(old.calls) == {"revoke_user": 1}
    assert dict(new.calls) == {"revoke_user": 1}
    assert all(store.load(key) is None for key in (in_old, in_both, in_new))
    store.close()


def test_migrate_async_twins_list_and_revoke(place: Callable[[str], Options]) -> None:
    store = build("migrate", old=place("sqlite"), new=place("redis"))
    assert isinstance(store, MigrateStore)
    old = _sign_in(store.old, "ann")
    new = _sign_in(store, "ann")

    async def scenario() -> None:
        listed = await store.asessions_of("ann")
        assert {info.key_hash for info in listed} == {hash_key(old), hash_key(new)}
        assert await asign_out(store, "ann") == 2
        assert await store.asessions_of("ann") == []

    asyncio.run(scenario())
    assert store.load(old) is None
    assert store.load(new) is None
    store.close()


def test_migrate_from_the_cookie_store_refuses_to_revoke(
    place: Callable[[str], Options], tmp_path: Path
) -> None:
    """Sessions still in visitors' cookies cannot be revoked: the store refuses, saying why,
    rather than sign the user out of some sessions only."""
    new = place("sqlite")
    store = build("migrate", old={"store": "cookie"}, new=new)
    assert not store.indexes_users
    with pytest.raises(UserIndexUnsupportedError, match="old store \\(cookie\\)"):
        sign_out(store, "ann")
    with pytest.raises(UserIndexUnsupportedError, match="old store \\(cookie\\)"):
        store.sessions_of("ann")
    result = _sign_out_command(
        _config_file(tmp_path, "migrate", old={"store": "cookie"}, new=new), "ann"
    )
    assert result.returncode != 0
    assert "old store (cookie)" in result.stderr + result.stdout
    store.close()


def test_sign_out_command_on_migrate(place: Callable[[str], Options], tmp_path: Path) -> None:
    old, new = place("sqlite"), place("redis")
    store = build("migrate", old=old, new=new)
    assert isinstance(store, MigrateStore)
    keys = [_sign_in(store.old, "ann"), _sign_in(store, "ann")]
    result = _sign_out_command(_config_file(tmp_path, "migrate", old=old, new=new), "ann")
    assert result.returncode == 0, result.stderr
    assert "out of 2 sessions" in result.stdout
    assert all(store.load(key) is None for key in keys)
    store.close()


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("old", "new"), [("sqlite", "redis"), ("redis", "sqlite")])
def test_migrate_move_racing_a_revocation_does_not_bring_the_session_back(
    place: Callable[[str], Options], old: str, new: str, async_: bool, when: str
) -> None:
    """A device's request read its session from the old store; the user is signed out
    everywhere just before (or just after) that request's move writes the session to the new
    store. The session stays signed out: the move reads the old store again, finds it gone and
    takes its copy back."""
    real_new = build_nested(place(new))
    counted_new = forwarding(real_new)
    store = MigrateStore(build_nested(place(old)), counted_new)
    key = _sign_in(store.old, "ann")
    device = Session(store, key)
    assert device.user_id == "ann", "the request read the session from the old store"
    device["late"] = 1
    revoked: list[int] = []
    hooks = counted_new.before if when == "before" else counted_new.after
    hooks["insert_record"] = lambda: revoked.append(sign_out(store, "ann"))
    if async_:
        assert asyncio.run(device.asave()) is None
    else:
        assert device.save() is None
    # After the insert the session is held in both stores (mid-move): counted in each.
    assert revoked == [2 if when == "after" else 1]
    assert device.vanished
    assert store.load(key) is None
    assert real_new.load(key) is None, "the move put a revoked session in the new store"
    assert store.sessions_of("ann") == []
    store.close()


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("old", "new"), [("sqlite", "redis"), ("redis", "sqlite")])
def test_migrate_move_racing_a_sign_out_does_not_bring_the_session_back(
    place: Callable[[str], Options], old: str, new: str, async_: bool, when: str
) -> None:
    """A session bound to no user (it keeps its login in its data) is signed out with
    ``flush()`` just before (or just after) another request's move writes it to the new store.
    The session stays signed out: the move reads the old store again, finds it gone and takes
    its copy back."""
    real_new = build_nested(place(new))
    counted_new = forwarding(real_new)
    store = MigrateStore(build_nested(place(old)), counted_new)
    anonymous = Session(store.old)
    anonymous["login"] = "ann"
    key = anonymous.save()
    assert key is not None
    device = Session(store, key)
    assert device.user_id is None
    assert device["login"] == "ann", "the request read the session from the old store"
    device["late"] = 1
    flushed: list[str] = []

    def sign_out_elsewhere() -> None:
        other = Session(store, key)
        assert other["login"] == "ann"
        other.flush()
        other.save()  # deletes the record from both stores, the old one first
        flushed.append(key)

    hooks = counted_new.before if when == "before" else counted_new.after
    hooks["insert_record"] = sign_out_elsewhere
    if async_:
        assert asyncio.run(device.asave()) is None
    else:
        assert device.save() is None
    assert flushed == [key]
    assert device.vanished
    assert store.load(key) is None
    assert real_new.load(key) is None, "the move put a signed-out session in the new store"
    assert store.old.load(key) is None
    store.close()
