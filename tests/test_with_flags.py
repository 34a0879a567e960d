"""session_core.store.with_flags: a store class with some of its class flags set otherwise, made
once per (class, flags), named as its class, and picklable."""

from __future__ import annotations

import abc
import pickle
import threading
from typing import Any, ClassVar

import pytest

from session_core.migrate import MigrateStore
from session_core.store import Changes, SessionRecord, SessionStore, with_flags
from session_core.testing import MemoryStore, make_record
from session_core.tiered import TieredStore

FLAGS = ("local", "partial_writes", "needs_cleanup", "indexes_users", "lists_records")


class DictStore(SessionStore):
    """A store with nothing but a dict in it, so that its objects pickle."""

    name: ClassVar[str] = "dict"
    partial_writes: ClassVar[bool] = True
    lists_records: ClassVar[bool] = True

    def __init__(self) -> None:
        self.records: dict[str, SessionRecord] = {}

    def load(self, key: str) -> SessionRecord | None:
        return self.records.get(key)

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        if key is None:
            key = self.generate_key()
        elif key not in self.records:
            return None
        self.records[key] = record
        return key

    def delete(self, key: str) -> None:
        self.records.pop(key, None)


Unlisted = with_flags(DictStore, lists_records=False)


class NamedUnlisted(Unlisted):  # type: ignore[valid-type,misc]  # a class derived from one
    """A class of its own, defined in this module, derived from a class with_flags made."""


def test_the_flags_are_set_and_everything_else_is_the_class() -> None:
    variant = with_flags(DictStore, lists_records=False, needs_cleanup=True)
    assert variant is not DictStore
    assert issubclass(variant, DictStore)
    assert (variant.lists_records, variant.needs_cleanup) == (False, True)
    assert (variant.partial_writes, variant.local, variant.indexes_users) == (True, False, False)
    for attribute in ("__name__", "__qualname__", "__module__", "__doc__", "name"):
        assert getattr(variant, attribute) == getattr(DictStore, attribute)
    store = variant()
    assert isinstance(store, DictStore)
    assert type(store).lists_records is False
    assert repr(store) == "<DictStore 'dict'>"
    assert repr(variant) == repr(DictStore)
    assert DictStore.lists_records is True, "the class itself is left alone"


def test_one_class_per_class_and_flags() -> None:
    one = with_flags(DictStore, lists_records=False, local=True)
    assert with_flags(DictStore, local=True, lists_records=False) is one
    assert with_flags(DictStore, lists_records=False) is Unlisted
    assert with_flags(DictStore, lists_records=False) is not one
    assert with_flags(MemoryStore, lists_records=False) is not Unlisted
    assert type(Unlisted()) is type(Unlisted()) is Unlisted


def test_threads_asking_at_once_get_one_class() -> None:
    class Fresh(DictStore):
        pass

    barrier = threading.Barrier(8)
    made: list[type[SessionStore]] = []

    def ask() -> None:
        barrier.wait(timeout=10)
        made.append(with_flags(Fresh, indexes_users=True))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(made) == 8
    assert len({id(cls) for cls in made}) == 1


def test_flags_the_class_already_has_give_the_class() -> None:
    assert with_flags(DictStore) is DictStore
    assert with_flags(DictStore, lists_records=True, local=False) is DictStore
    assert with_flags(Unlisted, lists_records=True) is DictStore


def test_flagging_a_flagged_class_starts_from_its_class() -> None:
    both = with_flags(Unlisted, needs_cleanup=True)
    assert both is with_flags(DictStore, lists_records=False, needs_cleanup=True)
    assert both.__mro__[1] is DictStore, "no chain of subclasses"


def test_a_class_derived_from_one_is_flagged_as_any_class() -> None:
    variant = with_flags(NamedUnlisted, partial_writes=False)
    assert variant.__mro__[1] is NamedUnlisted
    assert (variant.partial_writes, variant.lists_records) == (False, False)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"lists_record": False}, "'lists_record', which is not a store flag; the flags are"),
        ({"name": "other"}, "'name', which is not a store flag"),
        ({"lists_records": 0}, "lists_records must be True or False, not 0"),
        ({"local": "yes"}, "local must be True or False, not 'yes'"),
    ],
)
def test_a_wrong_flag_is_refused_and_named(flags: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message) as raised:
        with_flags(DictStore, **flags)
    if "not a store flag" in message:
        assert str(raised.value).endswith(", ".join(FLAGS))


@pytest.mark.parametrize("cls", [dict, DictStore(), "DictStore"])
def test_only_a_store_class_is_flagged(cls: Any) -> None:
    with pytest.raises(TypeError, match="takes a SessionStore subclass"):
        with_flags(cls, local=True)


def test_the_flags_it_knows_are_the_store_contract_s() -> None:
    """Every bool class flag of SessionStore, and nothing else: a flag added to the contract
    must be added to with_flags (and its docstring) too."""
    declared = {
        name
        for name, annotation in SessionStore.__annotations__.items()
        if annotation == "ClassVar[bool]"
    }
    assert declared == set(FLAGS)
    doc = with_flags.__doc__ or ""
    for flag in FLAGS:
        assert f":attr:`~session_core.SessionStore.{flag}`" in doc
        assert with_flags(DictStore, **{flag: not getattr(DictStore, flag)}) is not DictStore


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_the_class_and_its_objects_pickle(protocol: int) -> None:
    assert pickle.loads(pickle.dumps(Unlisted, protocol)) is Unlisted
    assert type(pickle.loads(pickle.dumps(Unlisted(), protocol))) is Unlisted
    assert pickle.loads(pickle.dumps(NamedUnlisted, protocol)) is NamedUnlisted
    assert type(pickle.loads(pickle.dumps(NamedUnlisted(), protocol))) is NamedUnlisted


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_a_store_pickles_with_its_records(protocol: int) -> None:
    """(From protocol 2: a SessionRecord has slots, which protocols 0 and 1 cannot pickle.)"""
    store = Unlisted()
    record = make_record({"a": 1})
    key = store.save(None, record, Changes.everything(record))
    assert key is not None
    copy = pickle.loads(pickle.dumps(store, protocol))
    assert type(copy) is Unlisted
    loaded = copy.load(key)
    assert loaded is not None
    assert loaded.data == {"a": 1}


def test_a_store_class_with_a_metaclass_of_its_own() -> None:
    class Meta(abc.ABCMeta):
        pass

    class Odd(DictStore, metaclass=Meta):
        pass

    variant = with_flags(Odd, local=True)
    assert isinstance(variant, Meta)
    assert variant.local
    assert not Odd.local


def test_the_composed_stores_take_their_flags_from_their_stores() -> None:
    """tiered and migrate are flagged by with_flags: one class per combination."""
    tiered = TieredStore(MemoryStore(), MemoryStore())
    every = {"partial_writes": True, "needs_cleanup": True, "lists_records": True}
    assert type(tiered) is with_flags(TieredStore, indexes_users=True, **every)
    assert type(TieredStore(MemoryStore(), MemoryStore())) is type(tiered)
    migrate = MigrateStore(DictStore(), DictStore())
    assert type(migrate) is with_flags(MigrateStore, partial_writes=True)
    assert type(migrate).__qualname__ == "MigrateStore"
