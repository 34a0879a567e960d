"""The conformance suite over every combination the tests can start: tiered with Redis in
front of SQLite and of PostgreSQL; migrate from the cookie store to db and to redis, from db to
redis and from redis to db. Each store is built from its configuration through the registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from conftest import Options, build, dump

from session_core import SessionStore
from session_core.testing import StoreConformance


class ComposedConformance(StoreConformance):
    store_name: ClassVar[str]
    roles: ClassVar[dict[str, str]]  # role -> kind of place

    @pytest.fixture(autouse=True)
    def _places(self, place: Callable[[str], Options]) -> None:
        # Made once per test: both stores of the two-app-server test share them.
        self.options: dict[str, Any] = {role: place(kind) for role, kind in self.roles.items()}

    def make_store(self) -> SessionStore:
        return build(self.store_name, **self.options)

    def dump_storage(self, store: SessionStore) -> str:
        return dump(store)


class TestTieredRedisOverSqlite(ComposedConformance):
    store_name = "tiered"
    roles: ClassVar[dict[str, str]] = {"front": "redis", "back": "sqlite"}


class TestTieredRedisOverPostgresql(ComposedConformance):
    store_name = "tiered"
    roles: ClassVar[dict[str, str]] = {"front": "redis", "back": "postgresql"}


class TestMigrateCookieToDb(ComposedConformance):
    store_name = "migrate"
    roles: ClassVar[dict[str, str]] = {"old": "cookie", "new": "sqlite"}


class TestMigrateCookieToRedis(ComposedConformance):
    store_name = "migrate"
    roles: ClassVar[dict[str, str]] = {"old": "cookie", "new": "redis"}


class TestMigrateDbToRedis(ComposedConformance):
    store_name = "migrate"
    roles: ClassVar[dict[str, str]] = {"old": "sqlite", "new": "redis"}


class TestMigrateRedisToDb(ComposedConformance):
    store_name = "migrate"
    roles: ClassVar[dict[str, str]] = {"old": "redis", "new": "postgresql"}
