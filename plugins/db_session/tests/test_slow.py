"""The 1 million expired rows cleanup (marked ``slow``: deselected by default; run with
``pytest plugins/db_session/tests -m slow``)."""

from __future__ import annotations

import statistics
import threading
import time

import pytest
import sqlalchemy as sa
from conftest import Database
from test_behaviour import create

from session_core_db import DbStore

ROWS = 1_000_000

_FILL = {
    "postgresql": (
        "INSERT INTO {t} SELECT lpad(to_hex(n), 64, '0'), '{{}}', NULL, :past, 1 "
        "FROM generate_series(1, :rows) AS n"
    ),
    "mariadb": (
        "INSERT INTO {t} SELECT lpad(hex(seq), 64, '0'), '{{}}', NULL, :past, 1 "
        "FROM seq_1_to_1000000"
    ),
    "sqlite": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) "
        "INSERT INTO {t} SELECT printf('%064x', i), '{{}}', NULL, :past, 1 FROM n"
    ),
}


@pytest.mark.slow
def test_a_million_expired_rows_clear_while_reads_go_on(db: Database) -> None:
    store = DbStore(url=db.url, table_name=db.table("million"))
    try:
        live = create(store, {"live": 1})
        with db.engine.begin() as connection:
            connection.execute(
                sa.text(_FILL[db.kind].format(t=store.table.name)),
                {"past": time.time() - 60, "rows": ROWS},
            )
        done = threading.Event()
        latencies: list[float] = []

        def read() -> None:
            while not done.is_set():
                started = time.perf_counter()
                assert store.load(live) is not None
                latencies.append(time.perf_counter() - started)
                time.sleep(0.001)

        reader = threading.Thread(target=read)
        reader.start()
        started = time.perf_counter()
        try:
            assert store.clear_expired() == ROWS
        finally:
            done.set()
            reader.join()
        took = time.perf_counter() - started
        p99 = statistics.quantiles(latencies, n=100)[98]
        print(
            f"{db.kind}: cleared {ROWS} rows in {took:.1f}s; {len(latencies)} reads meanwhile, "
            f"p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
        )
        assert p99 < 0.010
        assert store.load(live) is not None
    finally:
        store.close()
