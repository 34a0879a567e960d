"""The built-in ``migrate`` store: changing stores without signing anyone out::

    store = "migrate"
    [store_options]
    old = {store = "cookie"}
    new = {store = "db", url = "postgresql+psycopg://app@db/app"}

New sessions go to the *new* store only. A visitor's key is looked up in the new store first,
then in the *old* one; a session still in the old store keeps working, and the next save moves
it: written to the new store, then deleted from the old one. Deletes and key cycles reach both
stores, so a session signed out during the move cannot come back from the old one.

How a key finds its store: the new store is asked first. A cookie-store value is no key a
server store could have made (it is far longer than 43 characters and has dots), so the db and
redis stores answer ``None`` for it without a round trip, and the old (cookie) store decodes
it. The visitor's cookie then changes from the data to a key of the new store on the move.
Between two server-side stores the key stays the same: the record moves under the same key hash
(``insert_record``; the new store needs ``lists_records``, else it gets a fresh key), so a bulk
copy by ``session-core migrate`` and the moves made by requests meet on the same record, and two
requests moving one session at once both keep their changes (the second merges into what the
first wrote).

Round trips, for a session not moved yet between two server stores: a read costs one more than
the old store alone (the new store's miss); a save costs the move (a write to the new store, one
more read of the old store, and a delete from the old): the second read makes sure that a
sign-out or revocation that ran meanwhile is not undone by the move. After ``session-core
migrate`` has copied the sessions, a request costs what the new store alone costs. From the
cookie store nothing is extra: the new store's miss costs no round trip, the move is the new
session's creation, and there is no second read (the old store keeps nothing on a server to
read again).

Sessions per user, when both stores index them: a listing merges both stores' (a session
held in both, copied but not moved yet, is listed once), and a revocation revokes in the old
store, then in the new one, so the sessions not moved yet are signed out too (the count it
returns is the two stores' sum: a session held in both is counted twice). A move or a bulk
copy carries the session's user, so a moved session is listed and revoked with the others.
With an old store that keeps no index (the cookie store, whose sessions live in the visitors'
cookies) the store refuses to list or revoke, rather than sign a user out of some sessions only.

The middleware treats the store as server-side unless both stores keep the data in the cookie.
Once no live session is left in the old store (its lifetime has passed, or the copy is done),
configure the new store alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._composed import check_options, nested_store, plain_copy
from .config import SessionConfig
from .errors import UserIndexUnsupportedError
from .hookspecs import hookimpl
from .store import (
    Changes,
    Progress,
    SessionInfo,
    SessionRecord,
    SessionStore,
    UserId,
    hash_key,
    is_plausible_key,
    with_flags,
)

__all__ = ["MigrateStore"]


@dataclass(frozen=True, slots=True)
class _Held:
    """A loaded record's version: which store holds it, and that store's own version."""

    in_old: bool
    version: object


def _merged(current: SessionRecord, record: SessionRecord, changes: Changes) -> SessionRecord:
    """``current`` (the old store's record) with this request's ``changes`` applied; it keeps
    its user (a write-only request does not know it)."""
    if changes.complete:
        data = dict(record.data)
    else:
        data = dict(current.data)
        for name in changes.updated:
            data[name] = record.data[name]
        for name in changes.deleted:
            data.pop(name, None)
    client = record.client if record.client is not None else current.client
    if changes.expiry:
        return SessionRecord(data, record.expires_at, record.expiry, None, current.user_id, client)
    return SessionRecord(data, current.expires_at, current.expiry, None, current.user_id, client)


def _unwrapped(record: SessionRecord) -> bool:
    """Give ``record`` back its store's own version; returns whether it came from the old
    store (``False`` also when unknown: a write-only save never loaded it)."""
    held = record.version
    if isinstance(held, _Held):
        record.version = held.version
        return held.in_old
    record.version = None
    return False


def _merged_listing(new: list[SessionInfo], old: list[SessionInfo]) -> list[SessionInfo]:
    """Both stores' listings, each session once (the new store's entry wins), most recently
    seen first."""
    seen = {info.key_hash for info in new}
    merged = new + [info for info in old if info.key_hash not in seen]
    return sorted(merged, key=lambda info: info.last_seen_at, reverse=True)


class MigrateStore(SessionStore):
    """Serves sessions from an old store and a new one while moving them to the new one.

    The class flags follow the stores: ``partial_writes`` is the new store's, ``local`` holds
    only when both keep the data in the cookie, cleanup is the new store's, and
    ``indexes_users`` holds only when both stores index users: a revocation must reach the
    sessions not moved yet as well as the moved ones, so with an old store that cannot (the
    cookie store) listing and revoking refuse, saying why.

    Args:
        old: the store sessions are moving out of.
        new: the store they are moving to; every new session goes there.
    """

    name = "migrate"

    def __new__(cls, old: SessionStore, new: SessionStore) -> MigrateStore:
        variant = with_flags(
            cls,
            local=old.local and new.local,
            partial_writes=new.partial_writes,
            needs_cleanup=new.needs_cleanup,
            indexes_users=new.indexes_users and old.indexes_users,
        )
        return super().__new__(variant)

    def __init__(self, old: SessionStore, new: SessionStore) -> None:
        self.old = old
        """The store sessions are moving out of."""
        self.new = new
        """The store they are moving to."""
        self._same_key = new.lists_records and not new.local

    @classmethod
    def from_config(cls, config: SessionConfig) -> MigrateStore:
        """Build from ``store_options``: ``old`` and ``new`` tables, each naming a store and its
        options."""
        check_options(config, ("old", "new"))
        old = nested_store(config, "old", '{store = "cookie"}')
        try:
            new = nested_store(config, "new", '{store = "db", url = "postgresql://..."}')
        except BaseException:
            old.close()
            raise
        return cls(old, new)

    # ------------------------------------------------------------------ sync

    def load(self, key: str) -> SessionRecord | None:
        """The new store's record, else the old store's."""
        record = self.new.load(key)
        in_old = record is None
        if record is None:
            record = self.old.load(key)
            if record is None:
                return None
        record.version = _Held(in_old, record.version)
        return record

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Save in the new store; a session still in the old one moves (see the module)."""
        if key is None:
            record.version = None
            return self.new.save(None, record, changes)
        if _unwrapped(record):
            return self._move(key, record, changes, record if changes.complete else None)
        saved = self.new.save(key, record, changes)
        if saved is not None:
            record.version = _Held(False, record.version)
            return saved
        return self._move(key, record, changes, None)

    def _move(
        self, key: str, record: SessionRecord, changes: Changes, whole: SessionRecord | None
    ) -> str | None:
        """Write the session to the new store, then delete it from the old one. ``whole`` is
        the complete session when the request loaded it, else the old store is read."""
        if whole is None:
            current = self.old.load(key)
            if current is None:
                return None  # gone: deleted, expired, or moved by a request that changed the key
            whole = _merged(current, record, changes)
        else:
            whole = plain_copy(whole)
        written = True  # whether this request wrote the new store's copy
        if self._same_key and is_plausible_key(key):
            saved: str | None = key
            if not self.new.insert_record(hash_key(key), whole):
                # Another request (or the bulk copy) moved it first: merge into that.
                record.version = None
                saved = self.new.save(key, record, changes)
                written = False
        else:
            saved = self.new.save(None, whole, Changes.everything(whole))
        recheck = written and self._recheck()
        if saved is not None and recheck and self.old.load(key) is None:
            self.new.delete(saved)  # revoked meanwhile: see _recheck
            return None
        self.old.delete(key)
        record.version = _Held(False, whole.version)  # None (unknown) after an insert
        return saved

    def _recheck(self) -> bool:
        """Whether a move must read the old store again after writing the new copy: on every
        move between two server stores, whether the session is bound to a user or not. A
        sign-out (a delete, ``flush()``) or a revocation that ran after this request read the
        old store deleted the session there before it reached the new store's copy, or before
        the copy was written; found gone, the copy is taken back, and the session stays signed
        out. One call more on each move: the price of a sign-out that a request in flight
        cannot undo. (A cookie-store session has no server copy to delete: nothing to re-read.)"""
        return not self.old.local

    # Deletes reach the old store first: a bulk copy that read the session before the delete
    # then either writes it before the new store's delete (which removes it) or finds it gone
    # from the old store when it checks afterwards (and takes its copy back); see copying.py.

    def delete(self, key: str) -> None:
        """Delete from both stores, the old one first."""
        self.old.delete(key)
        self.new.delete(key)

    def cycle_key(self, key: str, record: SessionRecord) -> str:
        """Cycle into a fresh key of the new store; the old key is deleted from both."""
        _unwrapped(record)
        self.old.delete(key)
        new_key = self.new.cycle_key(key, record)
        record.version = _Held(False, record.version)
        return new_key

    def _no_user_index(self, operation: str) -> UserIndexUnsupportedError:
        if not self.new.indexes_users:
            reason = f"its new store ({self.new.name}) keeps no index of sessions by user"
        else:
            reason = (
                f"its old store ({self.old.name}) keeps no index of sessions by user, so the "
                f"sessions not moved yet could not be signed out (a revocation that left them "
                f"would be worse than none); configure the new store alone once the old "
                f"sessions have expired or been copied (session-core migrate)"
            )
        return UserIndexUnsupportedError(self.name, operation, reason)

    def _check_user_index(self, operation: str) -> None:
        if not self.indexes_users:
            raise self._no_user_index(operation)

    def sessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """The user's sessions in both stores, each once (the new store's entry for one in
        both), most recently seen first."""
        self._check_user_index("list the sessions of a user")
        return _merged_listing(self.new.sessions_of(user_id), self.old.sessions_of(user_id))

    def revoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """Revoke in both stores, the old one first (as deletes, see above); returns the sum of
        both stores' counts, so a session held in both (copied or being moved, not yet deleted
        from the old store) may count twice: counting it once would need both listings first,
        two more calls that a concurrent move could still make wrong."""
        self._check_user_index("revoke the sessions of a user")
        revoked = self.old.revoke_user(user_id, keep)
        return revoked + self.new.revoke_user(user_id, keep)

    def clear_expired(self, progress: Progress | None = None) -> int | None:
        """The new store's cleanup. The old store's expired records are left to it: clean it
        with its own configuration, or drop it once the migration is over."""
        return self.new.clear_expired(progress)

    def close(self) -> None:
        """Close both stores."""
        try:
            self.new.close()
        finally:
            self.old.close()

    # ------------------------------------------------------------------ async

    async def aload(self, key: str) -> SessionRecord | None:
        """Async twin of :meth:`load`."""
        record = await self.new.aload(key)
        in_old = record is None
        if record is None:
            record = await self.old.aload(key)
            if record is None:
                return None
        record.version = _Held(in_old, record.version)
        return record

    async def asave(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Async twin of :meth:`save`."""
        if key is None:
            record.version = None
            return await self.new.asave(None, record, changes)
        if _unwrapped(record):
            return await self._amove(key, record, changes, record if changes.complete else None)
        saved = await self.new.asave(key, record, changes)
        if saved is not None:
            record.version = _Held(False, record.version)
            return saved
        return await self._amove(key, record, changes, None)

    async def _amove(
        self, key: str, record: SessionRecord, changes: Changes, whole: SessionRecord | None
    ) -> str | None:
        """Async twin of :meth:`_move`."""
        if whole is None:
            current = await self.old.aload(key)
            if current is None:
                return None
            whole = _merged(current, record, changes)
        else:
            whole = plain_copy(whole)
        written = True
        if self._same_key and is_plausible_key(key):
            saved: str | None = key
            if not await self.new.ainsert_record(hash_key(key), whole):
                record.version = None
                saved = await self.new.asave(key, record, changes)
                written = False
        else:
            saved = await self.new.asave(None, whole, Changes.everything(whole))
        recheck = written and self._recheck()
        if saved is not None and recheck and await self.old.aload(key) is None:
            await self.new.adelete(saved)
            return None
        await self.old.adelete(key)
        record.version = _Held(False, whole.version)  # None (unknown) after an insert
        return saved

    async def adelete(self, key: str) -> None:
        """Async twin of :meth:`delete`."""
        await self.old.adelete(key)
        await self.new.adelete(key)

    async def acycle_key(self, key: str, record: SessionRecord) -> str:
        """Async twin of :meth:`cycle_key`."""
        _unwrapped(record)
        await self.old.adelete(key)
        new_key = await self.new.acycle_key(key, record)
        record.version = _Held(False, record.version)
        return new_key

    async def asessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """Async twin of :meth:`sessions_of`."""
        self._check_user_index("list the sessions of a user")
        new = await self.new.asessions_of(user_id)
        return _merged_listing(new, await self.old.asessions_of(user_id))

    async def arevoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """Async twin of :meth:`revoke_user`."""
        self._check_user_index("revoke the sessions of a user")
        revoked = await self.old.arevoke_user(user_id, keep)
        return revoked + await self.new.arevoke_user(user_id, keep)

    async def aclear_expired(self, progress: Progress | None = None) -> int | None:
        """Async twin of :meth:`clear_expired`."""
        return await self.new.aclear_expired(progress)

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        try:
            await self.new.aclose()
        finally:
            await self.old.aclose()

    def __repr__(self) -> str:
        return f"<MigrateStore old={self.old!r} new={self.new!r}>"


# ---------------------------------------------------------------------- registration


@hookimpl
def session_core_store_api_version() -> int:
    """The migrate store is written against store API 1."""
    return 1


@hookimpl
def session_core_create_store(config: SessionConfig) -> SessionStore:
    """Build the migrate store from ``config``."""
    return MigrateStore.from_config(config)
