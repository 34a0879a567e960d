"""Writers in separate processes, all saving one session at once (run by test_processes.py).

Each process builds its own store from the settings, as each worker of an app server does, waits
at a barrier with the others, then writes keys of its own into the one session, each a load and
a save. It reports what it wrote, how many of its saves had to merge, and every failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from session_core import Changes, SessionConfig, SessionCoreError, create_store


@dataclass
class WriterReport:
    """What one writer process did."""

    written: list[str] = field(default_factory=list)
    merged: int = 0
    failures: list[str] = field(default_factory=list)


def write_one_session(
    settings: dict[str, Any], key: str, number: int, writes: int, barrier: Any, results: Any
) -> None:
    """Write ``writes`` keys ``p<number>_<n>`` into the session ``key``; put a
    :class:`WriterReport` on the ``results`` queue."""
    report = WriterReport()
    try:
        store = create_store(SessionConfig(**settings))
        try:
            barrier.wait(120)
            for n in range(writes):
                name = f"p{number}_{n}"
                try:
                    record = store.load(key)
                    if record is None:
                        report.failures.append(f"{name}: the session vanished")
                        continue
                    record.data[name] = n
                    if store.save(key, record, Changes(frozenset({name}))) != key:
                        report.failures.append(f"{name}: the save found no session")
                        continue
                except SessionCoreError as exc:
                    report.failures.append(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                report.written.append(name)
                report.merged += record.version is None  # a merged save forgets the version
        finally:
            store.close()
    except BaseException as exc:  # reported to the test, which fails on it
        report.failures.append(f"writer {number} died: {type(exc).__name__}: {exc}")
    results.put(report)
