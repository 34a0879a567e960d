"""What each operation of the db store asks of the database, as *plans*: pure, I/O-free.

A plan is a generator that yields :class:`Step` (a statement to run) and :class:`Pause` (a wait)
and receives each step's result: the first row for :attr:`Kind.ROW`, the rows written for
:attr:`Kind.COUNT`, nothing for the transaction kinds. The sync and the async driver run the same
plans, so both share every rule (merging, retries, what a missing row means). A statement refused
by a conflict outside a transaction is tried again by the driver; inside one, the driver rolls
the transaction back and throws :class:`~.conflicts.Conflict` into the plan, which starts again.

Concurrency, in short (the README has the long form): every row has a version. An update whose
loaded version still matches is one ``UPDATE ... WHERE key_hash = ? AND version = ?``; if another
request saved in between, the save merges this request's changed keys into the row as it is
now, first without a lock and, after a conflict, holding the row's lock in a transaction, so it
cannot lose again. A row that is gone (deleted or expired) is never written again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from enum import Enum
from typing import Any, NamedTuple, TypeVar

from session_core import (
    Changes,
    SessionData,
    SessionInfo,
    SessionRecord,
    UserId,
    hash_key,
    is_plausible_key,
)
from session_core.store import JSONValue, Progress, decode_json, encode_json, user_index_name

from .conflicts import ATTEMPTS, Conflict, pause
from .errors import UserIdTooLongError
from .limits import SizeLimit
from .schema import USER_ID_LENGTH

__all__ = [
    "COUNT",
    "ROW",
    "ROWS",
    "Done",
    "Kind",
    "Pause",
    "Plan",
    "Plans",
    "Step",
    "advance",
    "in_transaction",
    "record_of",
]

T = TypeVar("T")


class Kind(Enum):
    """What a step returns, and which statements a driver treats as a transaction's edges."""

    ROW = "row"
    """The first row of the result, or ``None``."""
    ROWS = "rows"
    """Every row of the result."""
    COUNT = "count"
    """The number of rows written."""
    BEGIN = "begin"
    """Starts the locked merge's transaction (returns nothing)."""
    COMMIT = "commit"
    """Ends it (returns nothing)."""
    ROLLBACK = "rollback"
    """Ends it without writing (returns nothing)."""


class Step(NamedTuple):
    """One statement of a plan: ``statement`` names one of :class:`~.statements.Statements`."""

    kind: Kind
    statement: str
    params: Mapping[str, Any]


class Pause(NamedTuple):
    """A wait between two steps (cleanup batches, a locked merge starting again)."""

    seconds: float


Plan = Generator[Step | Pause, Any, T]
"""A plan whose result is ``T``."""


class Done(NamedTuple):
    """A plan that has finished, with its result."""

    value: Any


def advance(plan: Plan[Any], result: Any, conflict: Conflict | None) -> Step | Pause | Done:
    """The next step of ``plan``, given the last one's ``result``, or ``conflict`` (thrown into
    the plan) when the last one's transaction lost a conflict; :class:`Done` at the end."""
    try:
        return plan.send(result) if conflict is None else plan.throw(conflict)
    except StopIteration as done:
        return Done(done.value)


def in_transaction(step: Step, before: bool) -> bool:
    """Whether a connection is inside a transaction after ``step`` ran (``before``: whether it
    was before)."""
    kind = step.kind
    if kind is Kind.BEGIN:
        return True
    if kind is Kind.COMMIT or kind is Kind.ROLLBACK:
        return False
    return before


BEGIN = Step(Kind.BEGIN, "begin", {})
COMMIT = Step(Kind.COMMIT, "commit", {})
ROLLBACK = Step(Kind.ROLLBACK, "rollback", {})


def record_of(row: Any) -> SessionRecord | None:
    """The session record of a loaded row (``data, expiry, expires_at, version, user_id,
    user_id_int``)."""
    if row is None:
        return None
    data, expiry, expires_at, version, user, user_int = row
    # Positional: half the cost of keywords for a dataclass; the order is data,
    # expires_at, expiry, version, user_id.
    return SessionRecord(
        decode_json(data),
        float(expires_at),
        None if expiry is None else decode_json(expiry),
        int(version),
        None if user is None else user_of(user, user_int),
    )


def user_of(text: str, was_int: Any) -> UserId:
    """The app's user id from its ``user_id`` and ``user_id_int`` columns: ``7`` stays an int,
    so a session loaded back compares equal to the id the app bound it with."""
    return int(text) if was_int else str(text)


def check_user(record: SessionRecord) -> None:
    """Refuse, before any I/O, a user id the ``user_id`` column cannot hold (rather than let
    the database refuse the ``INSERT``, which would look like an outage)."""
    if record.user_id is not None:
        length = len(user_index_name(record.user_id))
        if length > USER_ID_LENGTH:
            raise UserIdTooLongError(length, USER_ID_LENGTH)


def user_columns(record: SessionRecord) -> dict[str, Any]:
    """The parameters of a new row's ``user_id`` and ``user_id_int`` columns."""
    user = record.user_id
    if user is None:
        return {"p_user": None, "p_user_int": None}
    return {"p_user": user_index_name(user), "p_user_int": type(user) is int}


def client_column(record: SessionRecord) -> str | None:
    """The ``client`` column's parameter: JSON text, or ``None`` to keep what the row holds."""
    if record.client is None:
        return None
    client: dict[str, JSONValue] = {**record.client}
    return encode_json(client)


def infos_of(rows: list[Any]) -> list[SessionInfo]:
    """The :class:`~session_core.SessionInfo` of each row of the ``sessions`` statement."""
    infos = []
    for key_hash, user, user_int, created, seen, expires_at, client in rows:
        expires = float(expires_at)
        seen_at = expires if seen is None else float(seen)  # a row no save has touched since
        created_at = seen_at if created is None else float(created)
        infos.append(
            SessionInfo.from_times(
                str(key_hash),
                user_of(user, user_int),
                (created_at, seen_at, expires),
                None if client is None else decode_json(client),
            )
        )
    return infos


def sessions_step(user_id: UserId) -> Step:
    """The one statement that lists the live sessions of ``user_id``, last seen first."""
    return Step(Kind.ROWS, "sessions", {"p_user": user_index_name(user_id), "now": time.time()})


def revoke_step(user_id: UserId, keep: str | None, returning: bool) -> Step:
    """The one statement that deletes the sessions of ``user_id`` but ``keep``'s; see
    :func:`revoked`. ``returning``: whether the statement returns the rows it deleted."""
    params = {"p_user": user_index_name(user_id), "now": time.time()}
    kind = Kind.ROWS if returning else Kind.COUNT
    if keep is None:
        return Step(kind, "revoke", params)
    params["keep"] = hash_key(keep)
    return Step(kind, "revoke_keeping", params)


def revoked(result: Any, now: float) -> int:
    """How many live sessions a revocation deleted: its count, or its returned rows (each
    one's ``expires_at``) less the expired ones it removed on the way."""
    if isinstance(result, int):
        return result
    return sum(1 for (expires_at,) in result if float(expires_at) > now)


# The kinds as module constants: reading an enum member costs more than building a step's
# dict (the async steps compare against them too).
ROW, ROWS, COUNT = Kind.ROW, Kind.ROWS, Kind.COUNT


def load_step(key: str) -> Step:
    """The one statement of a load."""
    return Step(ROW, "load", {"h": hash_key(key), "now": time.time()})


def delete_step(key: str) -> Step:
    """The one statement of a delete."""
    return Step(Kind.COUNT, "delete", {"h": hash_key(key)})


def is_current(record: SessionRecord, changes: Changes) -> bool:
    """Whether ``record`` holds the whole session as of the version it was loaded at, so an
    update is one ``UPDATE ... WHERE version = <that version>`` unless someone else saved
    meanwhile (then the save merges; see :meth:`Plans.merge`)."""
    return changes.complete and type(record.version) is int


def updated(key: str, record: SessionRecord, count: int) -> str | None:
    """After the usual update: ``key`` if it wrote the row (the record's version moves on),
    ``None`` if the row changed meanwhile and the save must merge."""
    if not count:
        return None
    assert type(record.version) is int
    record.version += 1
    return key


def merged(row: Any, record: SessionRecord, changes: Changes) -> dict[str, Any]:
    """The data of ``row`` with this request's changed and deleted keys applied."""
    data: dict[str, Any] = decode_json(row[0])
    for name in changes.updated:
        if name in record.data:
            data[name] = record.data[name]
    for name in changes.deleted:
        data.pop(name, None)
    return data


class Plans:
    """The plans of one store: what they need of it is its size limit (read from the database
    at first use), its key generator and its cleanup settings."""

    def __init__(
        self,
        size_limit: SizeLimit,
        target: str,
        generate_key: Callable[[], str],
        batch_size: int,
        cleanup_pause: float,
    ) -> None:
        self.target = target
        self.generate_key = generate_key
        self.batch_size = batch_size
        self.cleanup_pause = cleanup_pause
        self.set_limit(size_limit)

    def set_limit(self, limit: SizeLimit) -> None:
        """Use the database's own size ``limit`` (read at first use)."""
        self.size_limit = limit
        self._quick_size = limit.quick

    def _values(
        self, record: SessionRecord, data: SessionData, version: int, h: str
    ) -> dict[str, Any]:
        text = encode_json(data)
        if len(text) > self._quick_size:  # only a large session is measured
            self.size_limit.check(text, self.target)
        return {
            "h": h,
            "p_data": text,
            "p_expiry": None if record.expiry is None else encode_json(record.expiry),
            "p_expires_at": float(record.expires_at),
            "p_version": version,
            "p_client": client_column(record),
        }

    def _update(self, record: SessionRecord, data: SessionData, h: str, expected: int) -> Step:
        params = self._values(record, data, expected + 1, h)
        params["expected"] = expected
        params["now"] = time.time()
        return Step(Kind.COUNT, "update", params)

    def update_step(self, h: str, record: SessionRecord) -> Step:
        """The usual update: one statement, which writes only if the row is still at the
        version ``record`` was loaded at."""
        assert type(record.version) is int
        return self._update(record, record.data, h, record.version)

    def load(self, key: str) -> Plan[SessionRecord | None]:
        """Load the live session saved under ``key``."""
        if not is_plausible_key(key):
            return None
        return record_of((yield load_step(key)))

    def create(self, record: SessionRecord) -> Plan[str]:
        """Insert ``record`` under a fresh key; the key."""
        key = self.generate_key()
        params = self._values(record, record.data, 1, hash_key(key))
        params.update(user_columns(record))
        params["now"] = time.time()
        yield Step(Kind.COUNT, "insert", params)
        record.version = 1
        return key

    def merge(
        self, key: str, h: str, record: SessionRecord, changes: Changes, conflicted: bool
    ) -> Plan[str | None]:
        """Save ``record``'s changes into the row as it is now. A save that has not met a
        conflict yet (its record did not know the row's version) tries once without a lock;
        after a conflict it takes the row lock (:meth:`locked_merge`)."""
        if not conflicted:
            row = yield Step(Kind.ROW, "load", {"h": h, "now": time.time()})
            if row is None:
                return None  # deleted or expired meanwhile: not brought back
            data = merged(row, record, changes)
            written = yield self._update(record, data, h, int(row[3]))
            if written:
                # The caller's copy lacks what the other writers added: its next save re-reads.
                record.version = None
                return key
        return (yield from self.locked_merge(key, h, record, changes))

    def locked_merge(
        self, key: str, h: str, record: SessionRecord, changes: Changes
    ) -> Plan[str | None]:
        """Merge in a transaction holding the row's lock, so no other writer can change the row
        between the read and the write: this save cannot lose a race again."""
        for attempt in range(ATTEMPTS):
            try:
                yield BEGIN
                row = yield Step(Kind.ROW, "lock", {"h": h})
                if row is None or float(row[2]) <= time.time():
                    yield ROLLBACK
                    return None  # deleted or expired meanwhile: not brought back
                data = merged(row, record, changes)
                written = yield self._update(record, data, h, int(row[3]))
                yield COMMIT
            except Conflict:  # a deadlock, say: rolled back by the driver; start again
                if attempt == ATTEMPTS - 1:
                    raise
                yield Pause(pause(attempt))
                continue
            record.version = None
            # Under the lock the version matched, so only an expiry passing meanwhile stops it.
            return key if written else None
        raise AssertionError("unreachable: the last attempt returns or raises")

    def delete(self, key: str) -> Plan[None]:
        """Delete the row of ``key``."""
        if is_plausible_key(key):
            yield delete_step(key)

    def cycle(self, key: str, record: SessionRecord) -> Plan[str]:
        """Save ``record`` under a fresh key, then delete the row of ``key``."""
        # The new row first: if the delete then fails the old row still holds only what it held
        # (the caller gets an error, not the new key), so nothing leaks to a planted key.
        new_key = yield from self.create(record)
        yield from self.delete(key)
        return new_key

    def clear(self, progress: Progress | None) -> Plan[int]:
        """Delete expired rows, a batch per statement; the number deleted."""
        cutoff = time.time()
        total = 0
        while True:
            removed: int = yield Step(Kind.COUNT, "clear", {"cutoff": cutoff})
            total += max(removed, 0)
            if progress is not None:
                progress(total)
            if removed < self.batch_size:
                return total
            if self.cleanup_pause:
                yield Pause(self.cleanup_pause)
