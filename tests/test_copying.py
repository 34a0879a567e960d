"""Copying sessions in bulk between stores (session_core.copying, behind `session-core
migrate`): every live session copied under its key hash, resumable, never overwriting a
session a request has moved, never bringing back one signed out during the copy."""

from __future__ import annotations

import pytest

from session_core import ConfigurationError
from session_core.cookie import CookieStore
from session_core.copying import CopyProgress, check_copyable, copy_sessions
from session_core.migrate import MigrateStore
from session_core.session import Session
from session_core.store import Changes, SessionRecord, SessionStore
from session_core.testing import MemoryStore, make_record


def _create(store: SessionStore, data: dict[str, object], ttl: float = 3600) -> str:
    record = make_record(data, ttl)  # type: ignore[arg-type]
    key = store.save(None, record, Changes.everything(record))
    assert key is not None
    return key


def test_copy_moves_every_live_session_findable_by_its_key() -> None:
    old, new = MemoryStore(), MemoryStore()
    keys = [_create(old, {"n": n}) for n in range(23)]
    _create(old, {"dead": 1}, ttl=-5)
    pages: list[CopyProgress] = []
    final = copy_sessions(old, new, batch=5, on_page=pages.append)
    assert final.done
    assert (final.listed, final.copied, final.present, final.dropped) == (23, 23, 0, 0)
    assert len(pages) >= 5
    assert [p.listed for p in pages] == sorted(p.listed for p in pages)
    for n, key in enumerate(keys):
        assert new.load(key).data == {"n": n}  # type: ignore[union-attr]
    migrate = MigrateStore(old, new)
    old.calls.clear()
    assert Session(migrate, keys[0])["n"] == 0
    assert old.calls == {}, "a copied session costs the old store nothing"


def test_copy_resumes_from_a_progress() -> None:
    old, new = MemoryStore(), MemoryStore()
    for n in range(12):
        _create(old, {"n": n})
    pages: list[CopyProgress] = []
    copy_sessions(old, new, batch=4, on_page=pages.append)
    resumed_new = MemoryStore()
    final = copy_sessions(old, resumed_new, start=pages[0], batch=4)
    assert final.listed == 12
    assert len(resumed_new) == 8, "the resumed copy started after the first page"
    assert copy_sessions(old, resumed_new, start=final) is final, "a finished copy does nothing"


def test_copy_never_overwrites_a_session_a_request_moved() -> None:
    old, new = MemoryStore(), MemoryStore()
    key = _create(old, {"cart": []})
    migrate = MigrateStore(old, new)
    session = Session(migrate, key)
    session["cart"] = [1]
    assert session.save() == key
    _create(old, {"other": 1})
    final = copy_sessions(old, new)
    assert new.load(key).data == {"cart": [1]}  # type: ignore[union-attr]
    assert final.copied == 1


class DeletingDuringCopy(MemoryStore):
    """An old store whose listing is followed, before the copy writes, by a sign-out through
    the migrate store: the race a copy running beside live traffic meets."""

    def __init__(self) -> None:
        super().__init__()
        self.sign_out: list[str] = []
        self.migrate: MigrateStore | None = None

    def scan_records(
        self, cursor: str | None = None, count: int = 500
    ) -> tuple[list[tuple[str, SessionRecord]], str | None]:
        page = super().scan_records(cursor, count)
        assert self.migrate is not None
        for key in self.sign_out:
            self.migrate.delete(key)  # after the copy read it, before it writes it
        self.sign_out = []
        return page


def test_copy_does_not_bring_back_a_session_signed_out_meanwhile() -> None:
    old, new = DeletingDuringCopy(), MemoryStore()
    migrate = MigrateStore(old, new)
    old.migrate = migrate
    victim = _create(old, {"user": 1})
    kept = _create(old, {"user": 2})
    old.sign_out = [victim]
    final = copy_sessions(old, new)
    assert final.dropped == 1
    assert migrate.load(victim) is None, "a signed-out session came back"
    assert migrate.load(kept) is not None


def test_copy_refuses_stores_it_cannot_use() -> None:
    with pytest.raises(ConfigurationError, match="nothing to copy") as caught:
        check_copyable(CookieStore(["k" * 40]), MemoryStore())
    assert caught.value.key == "store_options.old"

    class Unlisted(MemoryStore):
        lists_records = False

    with pytest.raises(ConfigurationError, match="cannot list") as caught:
        check_copyable(MemoryStore(), Unlisted())
    assert caught.value.key == "store_options.new"
