"""A session-core store that keeps each session in a JSON file of one folder."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import session_core
from session_core import Changes, SessionRecord, SessionStore, hash_key, is_plausible_key
from session_core.hints import unknown_option
from session_core.store import Progress

__all__ = ["FileStore"]


class FileStore(SessionStore):
    """Each session is ``<directory>/<sha256 of its key>.json``; a lock file serialises
    updates across threads and processes so concurrent changes merge."""

    name = "files"
    needs_cleanup = True

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)  # made on first write: building the store does no I/O
        self._lock_path = self.directory / ".lock"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _path(self, key: str) -> Path:
        return self.directory / f"{hash_key(key)}.json"

    def _read(self, path: Path) -> dict[str, object] | None:
        try:
            row: dict[str, object] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        if float(row["expires_at"]) <= time.time():  # type: ignore[arg-type]
            return None
        return row

    def _write(self, path: Path, row: dict[str, object]) -> None:
        fd, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "w") as file:
            json.dump(row, file)
        os.replace(temporary, path)  # atomic: readers see the old or the new file

    def load(self, key: str) -> SessionRecord | None:
        """The session saved under ``key``, if it exists and has not expired."""
        row = self._read(self._path(key)) if is_plausible_key(key) else None
        if row is None:
            return None
        return SessionRecord(row["data"], row["expires_at"], row["expiry"])  # type: ignore[arg-type]

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Create a session (``key`` is None) or merge ``changes`` into an existing one."""
        row = {"data": record.data, "expires_at": record.expires_at, "expiry": record.expiry}
        with self._locked():
            if key is None:
                key = self.generate_key()
            else:
                current = self._read(self._path(key)) if is_plausible_key(key) else None
                if current is None:
                    return None  # deleted or expired meanwhile: never bring it back
                data: dict[str, object] = current["data"]  # type: ignore[assignment]
                for name in changes.updated:
                    data[name] = record.data[name]
                for name in changes.deleted:
                    data.pop(name, None)
                row["data"] = data
            self._write(self._path(key), row)
        return key

    def delete(self, key: str) -> None:
        """Remove the session saved under ``key``, if any."""
        with self._locked():
            self._path(key).unlink(missing_ok=True)

    def clear_expired(self, progress: Progress | None = None) -> int:
        """Remove the files of expired sessions, reporting progress every 100 removals."""
        removed = reported = 0
        for path in self.directory.glob("*.json"):
            with self._locked():
                try:
                    row = json.loads(path.read_text())
                except FileNotFoundError:
                    continue
                if row["expires_at"] <= time.time():
                    path.unlink(missing_ok=True)
                    removed += 1
            if progress is not None and removed - reported >= 100:
                progress(removed)
                reported = removed
        if progress is not None:
            progress(removed)
        return removed


@session_core.hookimpl
def session_core_store_api_version() -> int:
    """This store is written against session-core's store API 1."""
    return 1


@session_core.hookimpl
def session_core_create_store(config: session_core.SessionConfig) -> SessionStore:
    """Build the store from ``store_options``: ``directory`` (default ``./sessions``)."""
    options = dict(config.store_options)
    directory = options.pop("directory", "sessions")
    if options:
        raise session_core.ConfigurationError(
            "store_options", unknown_option("files", sorted(options)[0], ["directory"])
        )
    return FileStore(directory)
