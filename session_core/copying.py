"""Copying every live session from one server-side store to another, in pages, resumable and
safe while the site serves traffic on the ``migrate`` store: what ``session-core migrate``
runs.

Each record is inserted under its key hash, so the visitor's unchanged key finds it in the new
store, and only where the new store has none: a session a request has already moved (and maybe
changed since) is never overwritten. A session signed out while the copy runs must not come
back: the ``migrate`` store deletes from the old store first, so after writing a copy the old
store is asked again, and a copy whose original has gone meanwhile is taken back (unless a
request already changed it in the new store, which means the request moved it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ._composed import plain_copy
from .errors import ConfigurationError
from .store import SessionRecord, SessionStore

__all__ = ["CopyProgress", "check_copyable", "copy_sessions"]


@dataclass(frozen=True, slots=True)
class CopyProgress:
    """How far a copy has come; what ``session-core migrate`` prints and keeps to resume.

    Attributes:
        cursor: where the next page starts (``None`` at the start, and once done).
        listed: live records seen in the old store.
        copied: records written to the new store.
        present: records the new store already held (moved by a request, or copied before).
        dropped: copies taken back because the session was deleted while being copied.
        done: whether every page has been copied.
    """

    cursor: str | None = None
    listed: int = 0
    copied: int = 0
    present: int = 0
    dropped: int = 0
    done: bool = False


def check_copyable(source: SessionStore, destination: SessionStore) -> None:
    """Refuse stores a copy cannot use, saying why (a :class:`ConfigurationError`)."""
    if source.local:
        raise ConfigurationError(
            "store_options.old",
            f"the {source.name} store keeps sessions in visitors' cookies, so there is nothing "
            f"to copy: each session moves on its visitor's next save",
        )
    for role, store in (("old", source), ("new", destination)):
        if not type(store).lists_records:
            raise ConfigurationError(
                f"store_options.{role}",
                f"the {store.name} store cannot list its records or write them by key hash "
                f"(lists_records is False), which copying needs",
            )


def copy_sessions(
    source: SessionStore,
    destination: SessionStore,
    *,
    start: CopyProgress | None = None,
    batch: int = 500,
    on_page: Callable[[CopyProgress], None] | None = None,
) -> CopyProgress:
    """Copy every live record of ``source`` into ``destination``, from ``start`` (a progress
    returned or reported before, to resume); ``on_page`` gets the progress after each page.
    Returns the final progress."""
    progress = start or CopyProgress()
    if progress.done:
        return progress
    while True:
        page, cursor = source.scan_records(progress.cursor, batch)
        copied = present = dropped = 0
        for key_hash, record in page:
            copy = plain_copy(record)
            if not destination.insert_record(key_hash, copy):
                present += 1
            elif source.load_record(key_hash) is None and _unchanged(destination, key_hash, copy):
                destination.delete_record(key_hash)  # deleted while being copied
                dropped += 1
            else:
                copied += 1
        progress = replace(
            progress,
            cursor=cursor,
            listed=progress.listed + len(page),
            copied=progress.copied + copied,
            present=progress.present + present,
            dropped=progress.dropped + dropped,
            done=cursor is None,
        )
        if on_page is not None:
            on_page(progress)
        if cursor is None:
            return progress


def _unchanged(store: SessionStore, key_hash: str, copy: SessionRecord) -> bool:
    held = store.load_record(key_hash)
    # Stores keep expiry times to the millisecond (Redis) or so: a second apart is the same.
    return (
        held is not None
        and held.data == copy.data
        and held.expiry == copy.expiry
        and abs(held.expires_at - copy.expires_at) < 1
    )
