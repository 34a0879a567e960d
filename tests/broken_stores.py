"""Stores that break the store contract in ways the conformance suite once missed (each passed
every test it had). tests/test_conformance.py runs the suite against them and checks that the
test written for each flaw fails."""

from __future__ import annotations

import json
import math
import time

from session_core.store import Changes, SessionRecord, hash_key, is_plausible_key
from session_core.testing import MemoryStore


class ProcessLockStore(MemoryStore):
    """Saves under a lock of its own process and deletes outside it, on rows shared with other
    instances (its "server"): a delete landing mid-save is undone by the save's write, and two
    instances (two app servers) overwrite each other's changes."""

    name = "process-lock"
    lists_records = False  # its flaw is elsewhere; its own rows skip the listing

    def __init__(self, rows: dict[str, tuple[str, float, str, int]]) -> None:
        super().__init__()
        self._rows = rows

    def delete(self, key: str) -> None:
        """Delete without taking the lock saves hold."""
        self._rows.pop(hash_key(key), None)


class WholeSecondTTLStore(MemoryStore):
    """Keeps each session for its lifetime rounded up to whole seconds (as a backend whose TTL
    counts seconds does) and trusts that TTL in ``load`` instead of comparing ``expires_at``
    with the time."""

    name = "whole-second-ttl"
    lists_records = False  # its flaw is elsewhere; its own expiry skips the listing

    def __init__(self) -> None:
        super().__init__()
        self._gone_at: dict[str, float] = {}

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Save as the memory store does, and keep the record for whole seconds."""
        saved = super().save(key, record, changes)
        if saved is not None and changes.expiry:
            now = time.time()
            self._gone_at[hash_key(saved)] = now + math.ceil(record.expires_at - now)
        return saved

    def load(self, key: str) -> SessionRecord | None:
        """The record, while its whole-second TTL lasts (ignoring ``expires_at``)."""
        hashed = hash_key(key) if is_plausible_key(key) else None
        with self._lock:
            row = self._rows.get(hashed) if hashed else None
        if row is None or hashed is None or self._gone_at.get(hashed, 0.0) <= time.time():
            return None
        return SessionRecord(json.loads(row[0]), row[1], json.loads(row[2]), row[3])
