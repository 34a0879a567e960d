"""Listing and writing records by key hash (the store contract's ``lists_records``), on the
store's public engine and table: what ``session-core migrate`` copies with.

A page is one ``SELECT`` of live rows in key-hash order after the cursor (the last hash listed),
so a copy resumes where it stopped, and a row that lives through the scan is listed once. An
insert is one ``INSERT``; a clash with an expired row removes that row and inserts once more.
These run on the sync engine; the async twins run them in worker threads.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from session_core import SessionRecord
from session_core.store import RecordPage, decode_json, encode_json, is_key_hash

from .errors import unreachable
from .plans import check_user, client_column, user_columns, user_of
from .schema import ensure_table

if TYPE_CHECKING:
    from .store import DbStore

__all__ = ["delete_record", "insert_record", "load_record", "scan_records"]

T = TypeVar("T")

_ready: weakref.WeakSet[DbStore] = weakref.WeakSet()
_ready_lock = threading.Lock()


def _run(store: DbStore, operation: str, work: Callable[[Connection], T]) -> T:
    """``work`` in one transaction on the store's engine; database errors become
    :class:`~session_core.StoreUnreachableError`, as the store's own operations do."""
    try:
        with store.engine.connect() as connection:
            if store.settings.create_table and store not in _ready:
                ensure_table(connection, store.table)
                with _ready_lock:
                    _ready.add(store)
            with connection.begin():
                return work(connection)
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise unreachable(store.engine.url, operation, exc) from exc


def _record(row: sa.Row[Any]) -> SessionRecord:
    # A copied session keeps its user and what the app recorded of its device.
    return SessionRecord(
        decode_json(row.data),
        float(row.expires_at),
        None if row.expiry is None else decode_json(row.expiry),
        int(row.version),
        None if row.user_id is None else user_of(row.user_id, row.user_id_int),
        None if row.client is None else decode_json(row.client),
    )


def scan_records(store: DbStore, cursor: str | None, count: int) -> RecordPage:
    """See :meth:`session_core.SessionStore.scan_records`."""
    table = store.table
    query = sa.select(table).where(table.c.expires_at > time.time())
    if cursor is not None:
        query = query.where(table.c.key_hash > cursor)
    query = query.order_by(table.c.key_hash).limit(count)
    rows = _run(store, "list records", lambda c: c.execute(query).all())
    page = [(str(row.key_hash), _record(row)) for row in rows]
    return page, (page[-1][0] if len(page) == count else None)


def load_record(store: DbStore, key_hash: str) -> SessionRecord | None:
    """See :meth:`session_core.SessionStore.load_record`."""
    table = store.table
    query = sa.select(table).where(table.c.key_hash == key_hash, table.c.expires_at > time.time())
    row = _run(store, "load a record", lambda c: c.execute(query).first())
    return None if row is None else _record(row)


def insert_record(store: DbStore, key_hash: str, record: SessionRecord) -> bool:
    """See :meth:`session_core.SessionStore.insert_record`."""
    table = store.table
    check_user(record)
    now = time.time()
    user = user_columns(record)
    values = {
        "key_hash": key_hash,
        "data": encode_json(record.data),
        "expiry": None if record.expiry is None else encode_json(record.expiry),
        "expires_at": float(record.expires_at),
        "version": 1,
        "user_id": user["p_user"],
        "user_id_int": user["p_user_int"],
        "created_at": now,
        "seen_at": now,
        "client": client_column(record),
    }

    if not is_key_hash(key_hash) or record.expires_at <= time.time():
        return False
    insert = sa.insert(table).values(values)
    try:
        # The usual case, a hash no row holds: one statement (a move between stores and a bulk
        # copy insert once per session).
        _run(store, "insert a record", lambda c: c.execute(insert))
        return True
    except sa.exc.IntegrityError:
        pass  # a row holds the hash: replace it only if it has expired

    def replace_expired(connection: Connection) -> bool:
        gone = table.c.key_hash == key_hash, table.c.expires_at <= time.time()
        if connection.execute(sa.delete(table).where(*gone)).rowcount == 0:
            return False  # a live record: it is kept
        connection.execute(insert)
        return True

    try:
        return _run(store, "insert a record", replace_expired)
    except sa.exc.IntegrityError:
        return False  # a concurrent insert of the same hash won


def delete_record(store: DbStore, key_hash: str) -> None:
    """See :meth:`session_core.SessionStore.delete_record`."""
    table = store.table
    _run(
        store,
        "delete a record",
        lambda c: c.execute(sa.delete(table).where(table.c.key_hash == key_hash)),
    )
