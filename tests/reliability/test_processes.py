"""Many processes saving one session at once, on every database of the db store.

An app server with several worker processes sends the requests of one visitor to different
processes, whose stores do not share locks. Sixteen writer processes start together at a
barrier and each writes keys of its own into one session: every save must succeed (a save that
lost a race takes the row lock and cannot lose again; a deadlock is retried) and no write may be
lost.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from session_core import Changes
from session_core.testing import make_record

from ._processes import WriterReport, write_one_session
from .conftest import StoreSetup, db_setup, record_figure, scaled

PROCESSES = 16
WRITES = scaled(25, 500)
MARIADB_URL = os.environ.get(
    "SESSION_CORE_TEST_MARIADB_URL", "mariadb+pymysql://root@127.0.0.1:3306/test"
)


@pytest.fixture(params=["db-sqlite", "db-postgresql", "db-mariadb"])
def db_kind_setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSetup]:
    """The db store on each database: SQLite and the PostgreSQL of this run, and the MariaDB
    server of the plugin tests (``SESSION_CORE_TEST_MARIADB_URL``)."""
    if request.param == "db-sqlite":
        path = tmp_path / "sessions.sqlite3"
        setup = db_setup(request.param, f"sqlite:///{path}", path)
    elif request.param == "db-postgresql":
        setup = db_setup(request.param, request.getfixturevalue("rel_postgres_server").url)
    else:
        setup = db_setup(request.param, MARIADB_URL)
    try:
        yield setup
    finally:
        for store in setup.stores:
            store.close()
        if request.param == "db-mariadb":  # a server these tests do not own: tidy up
            engine = sa.create_engine(MARIADB_URL, poolclass=sa.pool.NullPool)
            table = setup.settings["store_options"]["table_name"]
            with engine.begin() as connection:
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            engine.dispose()


def test_processes_saving_one_session_never_fail_nor_lose_a_write(
    db_kind_setup: StoreSetup,
) -> None:
    store = db_kind_setup.store()
    record = make_record({"base": 0})
    key = store.save(None, record, Changes.everything(record))
    assert key is not None
    context = multiprocessing.get_context("spawn")  # fresh processes, as a server's workers
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    writers = [
        context.Process(
            target=write_one_session,
            args=(db_kind_setup.settings, key, n, WRITES, barrier, results),
        )
        for n in range(PROCESSES)
    ]
    for writer in writers:
        writer.start()
    reports: list[WriterReport] = [results.get(timeout=600) for _ in writers]
    for writer in writers:
        writer.join(60)
    failures = [line for report in reports for line in report.failures]
    written = {name for report in reports for name in report.written}
    final = store.load(key)
    assert final is not None
    lost = written - set(final.data)
    saves = PROCESSES * WRITES
    record_figure(
        "processes",
        f"{db_kind_setup.kind}: {PROCESSES} processes x {WRITES} writes to one session: "
        f"{len(failures)} failed saves of {saves}, {len(lost)} lost writes, "
        f"{sum(r.merged for r in reports)} saves merged after a conflict",
    )
    assert not failures, failures[:5]
    assert not lost, sorted(lost)[:10]
    assert len(written) == saves
