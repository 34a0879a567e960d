"""Listing records by key hash (session_core_db.listing) passes the conformance suite's listing
tests, on SQLite and PostgreSQL, through a DbStore that declares lists_records and delegates to
the module (what DbStore itself does once the listing is wired in)."""

from __future__ import annotations

import pytest
from test_conformance import DbConformance

from session_core import SessionRecord, SessionStore
from session_core.store import RecordPage
from session_core_db import DbStore, listing


class ListingDbStore(DbStore):
    """DbStore with the listing capability wired to :mod:`session_core_db.listing`."""

    lists_records = True

    def scan_records(self, cursor: str | None = None, count: int = 500) -> RecordPage:
        return listing.scan_records(self, cursor, count)

    def load_record(self, key_hash: str) -> SessionRecord | None:
        return listing.load_record(self, key_hash)

    def insert_record(self, key_hash: str, record: SessionRecord) -> bool:
        return listing.insert_record(self, key_hash, record)

    def delete_record(self, key_hash: str) -> None:
        listing.delete_record(self, key_hash)


class ListingConformance(DbConformance):
    def make_store(self) -> SessionStore:
        return ListingDbStore(url=self.database.url, table_name=self.table_name, **self.options)


@pytest.mark.sqlite
@pytest.mark.usefixtures("sqlite_db")
class TestSqliteListing(ListingConformance):
    @pytest.fixture
    def database(self, sqlite_db):  # type: ignore[no-untyped-def]
        return sqlite_db


@pytest.mark.postgresql
class TestPostgresqlListing(ListingConformance):
    @pytest.fixture
    def database(self, postgresql_db):  # type: ignore[no-untyped-def]
        return postgresql_db
