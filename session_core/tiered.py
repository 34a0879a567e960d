"""The built-in ``tiered`` store: a fast *front* store (a cache, such as ``redis``) in front of a
*back* store (the truth, such as ``db``)::

    store = "tiered"
    [store_options]
    front = {store = "redis", url = "redis://cache:6379/0", key_prefix = "tier:"}
    back = {store = "db", url = "postgresql+psycopg://app@db/app"}

Reads hit the front; on a miss they read the back and fill the front with the record, for the
back's remaining lifetime. Writes, deletes and key cycles go to the back first, then *remove*
the session from the front (the next read fills it again): the back merges concurrent changes,
and a front that merged them on its own could apply them in another order and keep a wrong
value. A fill that raced a write is caught: after filling, the back is read once more and a
changed record is removed from the front again, so a reader never leaves an old copy behind a
writer.

Sessions per user: the back lists them (:meth:`TieredStore.sessions_of`) and revokes them;
then the front revokes its copies, which it indexes by user too (a fill copies the session with
its user). A request that read the back just before a revocation and fills the front just after
it is caught as a racing write is: its re-read of the back finds the session gone and removes
the copy. Both orders are covered: a fill written before the front's revocation is revoked with
the others, one written after it is removed by its own re-read. The front is revoked even when
this process marked it down: "down" is one process's view, and another process still trusting
the front would serve a revoked copy until its lifetime ended. A front that cannot be reached
then makes the revocation raise :class:`~session_core.StoreUnreachableError` once the back has
revoked (the sessions are signed out of the truth, but copies may remain in the front: retry).

The front going down does not take the site down. On the first front failure the store stops
using the front: reads and writes go to the back alone, and the writes made meanwhile are not
removed from the front (it cannot be reached). After ``retry_after`` seconds a request starts a
recovery in a background thread, which deletes every record the front holds (it lists them with
``scan_records``: give the front a namespace of its own, such as a Redis ``key_prefix``).
During the recovery, writes already remove their session from the front but reads still skip
it; once the front is empty it is used again. A front failure during the recovery starts the
wait again. So a front that comes back with old data (a Redis restarted from its snapshot) serves
none of it.

Each process recovers on its own: a process that made no request while the front was down
never stops trusting it, and between the front's return and the end of the first recovery it
could read a copy that another process's outage left stale. Run the front without persistence
(it is a cache) and it comes back empty, which closes that window.
"""

from __future__ import annotations

import threading
import time
from enum import Enum
from typing import Any

from ._composed import check_options, nested_store, plain_copy
from .config import SessionConfig
from .errors import ConfigurationError, StoreUnreachableError, UserIndexUnsupportedError
from .hookspecs import hookimpl
from .store import (
    Changes,
    Progress,
    RecordPage,
    SessionInfo,
    SessionRecord,
    SessionStore,
    UserId,
    hash_key,
    with_flags,
)

__all__ = ["DEFAULT_RETRY_AFTER", "FrontState", "TieredStore"]

DEFAULT_RETRY_AFTER = 5.0
"""Seconds after a front failure before the store tries to use the front again."""

_FLUSH_PAGE = 500


class FrontState(Enum):
    """Whether a :class:`TieredStore` uses its front."""

    UP = "up"
    """Reads and writes use the front."""
    DOWN = "down"
    """The front failed: the back alone serves, until the retry time."""
    RECOVERING = "recovering"
    """The front is being emptied: writes remove their session from it, reads skip it."""


def _same(first: SessionRecord, second: SessionRecord | None) -> bool:
    return (
        second is not None
        and first.data == second.data
        and first.expiry == second.expiry
        and first.expires_at == second.expires_at
    )


class TieredStore(SessionStore):
    """A front store used as a cache of a back store, the back being the truth.

    The class flags follow the stores: ``partial_writes`` and ``lists_records`` are the
    back's, cleanup is needed when either store needs it, and ``indexes_users`` holds when both
    index users (the back lists and revokes; the front's index finds its copies to drop).
    Records listed, inserted or deleted by key hash go to the back (and leave the front).

    Args:
        front: the cache; a server-side store with ``lists_records`` (``redis``).
        back: the truth; any server-side store (``db``).
        retry_after: seconds after a front failure before the front is tried again.

    Raises:
        ConfigurationError: a store that cannot serve in its place.
    """

    name = "tiered"

    def __new__(cls, front: SessionStore, back: SessionStore, **_: Any) -> TieredStore:
        variant = with_flags(
            cls,
            partial_writes=back.partial_writes,
            needs_cleanup=front.needs_cleanup or back.needs_cleanup,
            lists_records=back.lists_records,
            indexes_users=back.indexes_users and front.indexes_users,
        )
        return super().__new__(variant)

    def __init__(
        self, front: SessionStore, back: SessionStore, *, retry_after: float = DEFAULT_RETRY_AFTER
    ) -> None:
        for role, store in (("front", front), ("back", back)):
            if store.local:
                raise ConfigurationError(
                    f"store_options.{role}",
                    f"the {store.name} store keeps sessions in the cookie; a tier of the "
                    f"tiered store must keep them on a server (db, redis, ...)",
                )
        if not front.lists_records:
            raise ConfigurationError(
                "store_options.front",
                f"the {front.name} store cannot be a front: it does not list its records or "
                f"write them by key hash (lists_records is False), which filling and emptying "
                f"the front need; use redis on one server or Sentinel (a redis store on Redis "
                f"Cluster cannot: a copy kept under its own key would not share a hash slot "
                f"with its user's index, so a revocation could not reach it)",
            )
        if not retry_after > 0:
            raise ConfigurationError(
                "store_options.retry_after", f"must be a positive number, not {retry_after!r}"
            )
        self.front = front
        """The cache."""
        self.back = back
        """The truth."""
        self.retry_after = retry_after
        """Seconds after a front failure before the front is tried again."""
        self._state = FrontState.UP
        self._retry_at = 0.0
        self._failures = 0  # counts front failures, so a recovery knows it was overtaken
        self._lock = threading.Lock()
        self._recovery: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: SessionConfig) -> TieredStore:
        """Build from ``store_options``: ``front`` and ``back`` tables, each naming a store
        and its options, and ``retry_after`` (seconds)."""
        check_options(config, ("front", "back", "retry_after"))
        retry_after = config.store_options.get("retry_after", DEFAULT_RETRY_AFTER)
        if isinstance(retry_after, bool) or not isinstance(retry_after, int | float):
            raise ConfigurationError(
                "store_options.retry_after", f"must be a number of seconds, not {retry_after!r}"
            )
        front = nested_store(config, "front", '{store = "redis", url = "redis://..."}')
        try:
            back = nested_store(config, "back", '{store = "db", url = "postgresql://..."}')
            return cls(front, back, retry_after=float(retry_after))
        except BaseException:
            front.close()
            raise

    # ------------------------------------------------------------------ the front's health

    @property
    def front_state(self) -> FrontState:
        """Whether the front is in use now."""
        return self._state

    def _reads_front(self) -> bool:
        state = self._state
        if state is FrontState.UP:
            return True
        if state is FrontState.DOWN and time.monotonic() >= self._retry_at:
            self._start_recovery()
        return False

    def _front_failed(self) -> None:
        with self._lock:
            self._failures += 1
            self._state = FrontState.DOWN
            self._retry_at = time.monotonic() + self.retry_after

    def _start_recovery(self) -> None:
        with self._lock:
            if self._state is not FrontState.DOWN or time.monotonic() < self._retry_at:
                return
            self._state = FrontState.RECOVERING
            failures = self._failures
            # A thread, not the request: emptying a large front takes a while, and the
            # requests meanwhile are served by the back.
            self._recovery = threading.Thread(
                target=self._recover, args=(failures,), name="tiered-front-recovery", daemon=True
            )
            self._recovery.start()

    def _recover(self, failures: int) -> None:
        """Delete every record of the front, then use it again (unless it failed meanwhile)."""
        cursor: str | None = None
        try:
            while True:
                page, cursor = self.front.scan_records(cursor, _FLUSH_PAGE)
                for key_hash, _ in page:
                    self.front.delete_record(key_hash)
                if cursor is None:
                    break
        except StoreUnreachableError:
            self._front_failed()
            return
        with self._lock:
            if self._failures == failures and self._state is FrontState.RECOVERING:
                self._state = FrontState.UP

    def wait_for_recovery(self, timeout: float | None = None) -> FrontState:
        """Wait for a recovery under way (if any) to end; returns the state then. For tests
        and for shutting down cleanly."""
        thread = self._recovery
        if thread is not None:
            thread.join(timeout)
        return self._state

    # ------------------------------------------------------------------ sync

    def _invalidate(self, key: str) -> None:
        if self._state is FrontState.DOWN:
            return  # the recovery empties the front before it is read again
        try:
            self.front.delete(key)
        except StoreUnreachableError:
            self._front_failed()

    def _fill(self, key: str, record: SessionRecord) -> None:
        key_hash = hash_key(key)
        try:
            self.front.insert_record(key_hash, plain_copy(record))
        except StoreUnreachableError:
            self._front_failed()
            return
        current: SessionRecord | None = None
        try:
            current = self.back.load(key)
        finally:
            # Read again: a write that landed between the first read and the fill removed
            # the front's copy before the fill put the old one there. (If the back failed, the
            # copy is unchecked: take it out too.)
            if not _same(record, current):
                self._invalidate(key)

    def load(self, key: str) -> SessionRecord | None:
        """The front's copy, or the back's record (then copied to the front)."""
        if self._reads_front():
            try:
                cached = self.front.load(key)
            except StoreUnreachableError:
                self._front_failed()
            else:
                if cached is not None:
                    cached.version = None  # the front's version means nothing to the back
                    return cached
                record = self.back.load(key)
                if record is not None and self._state is FrontState.UP:
                    self._fill(key, record)
                return record
        return self.back.load(key)

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Save in the back, then remove the session from the front."""
        try:
            return self.back.save(key, record, changes)
        finally:
            # Also after a failed save: the back may have written before the error.
            if key is not None:
                self._invalidate(key)

    def delete(self, key: str) -> None:
        """Delete from the back, then from the front."""
        try:
            self.back.delete(key)
        finally:
            self._invalidate(key)

    def cycle_key(self, key: str, record: SessionRecord) -> str:
        """Cycle the key in the back, then remove the old key's session from the front."""
        try:
            return self.back.cycle_key(key, record)
        finally:
            self._invalidate(key)

    def clear_expired(self, progress: Progress | None = None) -> int | None:
        """The back's cleanup (and the front's, if it needs one); returns the back's count."""
        removed = self.back.clear_expired(progress)
        if self.front.needs_cleanup and self._state is not FrontState.DOWN:
            try:
                self.front.clear_expired()
            except StoreUnreachableError:
                self._front_failed()
        return removed

    def _no_user_index(self, operation: str) -> UserIndexUnsupportedError:
        lacking = self.back if not self.back.indexes_users else self.front
        role = "back" if lacking is self.back else "front"
        return UserIndexUnsupportedError(
            self.name,
            operation,
            f"its {role} store ({lacking.name}) keeps no index of sessions by user, and the "
            f"tiered store needs both tiers to (the back to list and revoke, the front to drop "
            f"its copies of revoked sessions)",
        )

    def _check_user_index(self, operation: str) -> None:
        if not self.indexes_users:
            raise self._no_user_index(operation)

    def _front_not_revoked(self, exc: StoreUnreachableError) -> StoreUnreachableError:
        """Mark the front failed, and the error a revocation raises when its front part did
        not run: the back revoked, copies may remain in the front."""
        self._front_failed()
        error = StoreUnreachableError(
            self.name,
            f"front {exc.target}",
            "revoke the sessions of a user in its front",
            f"the sessions were revoked in the back store ({self.back.name}), but the front's "
            f"copies could not be removed, so a process still reading the front may serve them "
            f"until they expire; retry the revocation ({exc})",
            hint="retry once the front is reachable",
        )
        error.__cause__ = exc
        return error

    def sessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """The back's listing (the truth; the front holds copies only)."""
        self._check_user_index("list the sessions of a user")
        return self.back.sessions_of(user_id)

    def revoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """Revoke in the back, then drop the user's copies from the front; returns the back's
        count. A fill racing the revocation cannot bring a copy back (see the module).

        Raises:
            StoreUnreachableError: the back, or the front after the back revoked (the copies
                may remain in the front, and another process may serve them: retry). The
                front is tried even when this process marked it down.
        """
        self._check_user_index("revoke the sessions of a user")
        try:
            revoked = self.back.revoke_user(user_id, keep)
        finally:
            # Also after a failed revocation: the back may have deleted before the error.
            try:
                self.front.revoke_user(user_id, keep)
                missed = None
            except StoreUnreachableError as exc:
                missed = self._front_not_revoked(exc)
        if missed is not None:
            raise missed
        return revoked

    def scan_records(self, cursor: str | None = None, count: int = 500) -> RecordPage:
        """The back's records (see :meth:`SessionStore.scan_records`)."""
        return self.back.scan_records(cursor, count)

    def load_record(self, key_hash: str) -> SessionRecord | None:
        """The back's record (see :meth:`SessionStore.load_record`)."""
        return self.back.load_record(key_hash)

    def insert_record(self, key_hash: str, record: SessionRecord) -> bool:
        """Insert into the back (see :meth:`SessionStore.insert_record`)."""
        return self.back.insert_record(key_hash, record)

    def delete_record(self, key_hash: str) -> None:
        """Delete from the back, then from the front."""
        try:
            self.back.delete_record(key_hash)
        finally:
            if self._state is not FrontState.DOWN:
                try:
                    self.front.delete_record(key_hash)
                except StoreUnreachableError:
                    self._front_failed()

    def close(self) -> None:
        """Close both stores (after a recovery under way, if any, has ended)."""
        self.wait_for_recovery(10)
        try:
            self.front.close()
        finally:
            self.back.close()

    # ------------------------------------------------------------------ async

    async def _ainvalidate(self, key: str) -> None:
        if self._state is FrontState.DOWN:
            return
        try:
            await self.front.adelete(key)
        except StoreUnreachableError:
            self._front_failed()

    async def _afill(self, key: str, record: SessionRecord) -> None:
        try:
            await self.front.ainsert_record(hash_key(key), plain_copy(record))
        except StoreUnreachableError:
            self._front_failed()
            return
        current: SessionRecord | None = None
        try:
            current = await self.back.aload(key)
        finally:
            if not _same(record, current):
                await self._ainvalidate(key)

    async def aload(self, key: str) -> SessionRecord | None:
        """Async twin of :meth:`load`."""
        if self._reads_front():
            try:
                cached = await self.front.aload(key)
            except StoreUnreachableError:
                self._front_failed()
            else:
                if cached is not None:
                    cached.version = None
                    return cached
                record = await self.back.aload(key)
                if record is not None and self._state is FrontState.UP:
                    await self._afill(key, record)
                return record
        return await self.back.aload(key)

    async def asave(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Async twin of :meth:`save`."""
        try:
            return await self.back.asave(key, record, changes)
        finally:
            if key is not None:
                await self._ainvalidate(key)

    async def adelete(self, key: str) -> None:
        """Async twin of :meth:`delete`."""
        try:
            await self.back.adelete(key)
        finally:
            await self._ainvalidate(key)

    async def acycle_key(self, key: str, record: SessionRecord) -> str:
        """Async twin of :meth:`cycle_key`."""
        try:
            return await self.back.acycle_key(key, record)
        finally:
            await self._ainvalidate(key)

    async def aclear_expired(self, progress: Progress | None = None) -> int | None:
        """Async twin of :meth:`clear_expired`."""
        removed = await self.back.aclear_expired(progress)
        if self.front.needs_cleanup and self._state is not FrontState.DOWN:
            try:
                await self.front.aclear_expired()
            except StoreUnreachableError:
                self._front_failed()
        return removed

    async def asessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """Async twin of :meth:`sessions_of`."""
        self._check_user_index("list the sessions of a user")
        return await self.back.asessions_of(user_id)

    async def arevoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """Async twin of :meth:`revoke_user`."""
        self._check_user_index("revoke the sessions of a user")
        try:
            revoked = await self.back.arevoke_user(user_id, keep)
        finally:
            try:
                await self.front.arevoke_user(user_id, keep)
                missed = None
            except StoreUnreachableError as exc:
                missed = self._front_not_revoked(exc)
        if missed is not None:
            raise missed
        return revoked

    async def ainsert_record(self, key_hash: str, record: SessionRecord) -> bool:
        """Async twin of :meth:`insert_record`."""
        return await self.back.ainsert_record(key_hash, record)

    async def adelete_record(self, key_hash: str) -> None:
        """Async twin of :meth:`delete_record`."""
        try:
            await self.back.adelete_record(key_hash)
        finally:
            if self._state is not FrontState.DOWN:
                try:
                    await self.front.adelete_record(key_hash)
                except StoreUnreachableError:
                    self._front_failed()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        import asyncio

        await asyncio.to_thread(self.wait_for_recovery, 10)
        try:
            await self.front.aclose()
        finally:
            await self.back.aclose()

    def __repr__(self) -> str:
        return f"<TieredStore front={self.front!r} back={self.back!r}>"


# ---------------------------------------------------------------------- registration


@hookimpl
def session_core_store_api_version() -> int:
    """The tiered store is written against store API 1."""
    return 1


@hookimpl
def session_core_create_store(config: SessionConfig) -> SessionStore:
    """Build the tiered store from ``config``."""
    return TieredStore.from_config(config)
