"""The engine's ``before_cursor_execute``/``after_cursor_execute`` listeners and its ``echo`` see
every statement of the sync methods with ``sql_events``, and while ``echo`` is on; without
either, the statements go straight to a kept DB-API cursor, which they do not see."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Database, create

from session_core import Changes
from session_core.testing import make_record
from session_core_db import DbStore


class Listener:
    """Records what the engine's cursor events see."""

    def __init__(self, engine: sa.Engine) -> None:
        self.before: list[str] = []
        self.after: list[str] = []
        self.engine = engine
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.before.append(statement)

    def _after(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.after.append(statement)

    def remove(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._before)
        sa.event.remove(self.engine, "after_cursor_execute", self._after)


def _logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The SQL of every statement the store ran, from its own ``session_core_db.sql`` log."""
    return [
        r.getMessage().split(": ", 2)[2] for r in caplog.records if r.name == "session_core_db.sql"
    ]


def _every_operation(store: DbStore) -> None:
    """A create, a load, an update, an update of a row changed meanwhile (a merge), a cycle of
    the key and a delete."""
    record = make_record({"a": 1})
    record.user_id = "u1"
    key = store.save(None, record, Changes(frozenset({"a"})))
    assert key is not None
    first, second = store.load(key), store.load(key)
    assert first is not None
    assert second is not None
    first.data["a"] = 2
    assert store.save(key, first, Changes(frozenset({"a"}))) == key
    second.data["b"] = 3  # its version is now outdated: the update misses, a merge follows
    assert store.save(key, second, Changes(frozenset({"b"}))) == key
    loaded = store.load(key)
    assert loaded is not None
    assert loaded.data == {"a": 2, "b": 3}
    new_key = store.cycle_key(key, loaded)
    assert store.load(key) is None
    assert [info.key_hash for info in store.sessions_of("u1")]
    store.delete(new_key)
    assert store.load(new_key) is None


@pytest.fixture
def events_store(db: Database) -> Iterator[DbStore]:
    store = DbStore(url=db.url, table_name=db.table("events"), sql_events=True, native_async=False)
    create(store, {"first": "use"})  # the table, the size limit: out of the way
    yield store
    store.close()


def test_listeners_see_every_statement_with_sql_events(
    events_store: DbStore, caplog: pytest.LogCaptureFixture
) -> None:
    listener = Listener(events_store.engine)
    try:
        with caplog.at_level(logging.DEBUG, logger="session_core_db.sql"):
            _every_operation(events_store)
        ran = _logged(caplog)
        assert len(ran) >= 9
        assert any(statement.startswith("BEGIN") for statement in ran)  # the merge's
        assert listener.before == ran
        assert listener.after == ran
    finally:
        listener.remove()


def test_a_statement_that_fails_reaches_the_listener_and_the_store_recovers(
    events_store: DbStore, db: Database
) -> None:
    # A driver error on the Core path still ends as the store's error, and the connection's
    # next call works (SQLAlchemy's wrapper is the driver error's cause).
    listener = Listener(events_store.engine)
    failures: list[BaseException] = []
    sa.event.listen(
        events_store.engine,
        "handle_error",
        lambda context: failures.append(context.original_exception),
    )
    try:
        key = create(events_store, {"a": 1})
        with db.engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE {events_store.table.name}"))
        with pytest.raises(Exception) as caught:  # noqa: PT011 (any of the store's errors)
            events_store.load(key)
        assert type(caught.value).__module__.startswith(("session_core", "session_core_db"))
        assert failures
        assert listener.before[-1].startswith("SELECT")
    finally:
        listener.remove()


def test_echo_shows_every_statement_of_an_engine_handed_over(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    engine = sa.create_engine(db.url, echo=True)
    store = DbStore(engine=engine, table_name=db.table("echo"), native_async=False)
    try:
        create(store, {"first": "use"})
        caplog.clear()
        with (
            caplog.at_level(logging.DEBUG, logger="session_core_db.sql"),
            caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"),
        ):
            _every_operation(store)
        ran = _logged(caplog)
        echoed = [
            r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine.Engine")
        ]
        for statement in ran:
            assert statement in echoed
        # Turned off, the store goes back to its own cursors: echo shows nothing more.
        engine.echo = False
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"):
            create(store, {"after": "echo"})
        assert not [r for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
    finally:
        store.close()
        engine.dispose()


def test_without_sql_events_or_echo_listeners_see_nothing(db: Database) -> None:
    # The default: compiled SQL straight to a kept DB-API cursor (see the plugin's README).
    store = DbStore(url=db.url, table_name=db.table("quiet"), native_async=False)
    try:
        create(store, {"first": "use"})
        listener = Listener(store.engine)
        try:
            _every_operation(store)
            assert listener.before == []
        finally:
            listener.remove()
    finally:
        store.close()
