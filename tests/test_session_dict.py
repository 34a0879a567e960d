"""The Session is a dict wherever app code can tell (Starlette's session is one), and stays lazy
and change-tracking through every dict protocol."""

import copy
import json
import pickle

import pytest

from session_core import Session
from session_core.testing import MemoryStore


@pytest.fixture
def store():
    return MemoryStore()


def stored(store, data):
    """A fresh, not yet loaded session whose stored record holds ``data``."""
    session = Session(store)
    session.update(data)
    key = session.save()
    store.calls.clear()
    return Session(store, key)


def untouched(session):
    return not session.accessed and not session.modified


def test_a_session_is_a_dict(store):
    session = Session(store)
    assert isinstance(session, dict)
    assert untouched(session)


def test_json_dumps_loads_the_session_first(store):
    # json's C encoder writes "{}" for a dict whose own storage is empty, without calling
    # any method: the session must not look empty before it is loaded.
    session = stored(store, {"a": 1, "b": [1, 2]})
    assert json.dumps(session, sort_keys=True) == '{"a": 1, "b": [1, 2]}'
    assert json.dumps(stored(store, {"a": 1}), indent=1) == '{\n "a": 1\n}'
    assert json.dumps({"nested": stored(store, {"a": 1})}) == '{"nested": {"a": 1}}'
    assert json.dumps(Session(store)) == "{}"


def test_copies_see_the_data(store):
    session = stored(store, {"a": 1, "b": 2})
    assert dict(session) == {"a": 1, "b": 2}
    assert {**stored(store, {"a": 1})} == {"a": 1}
    target = {"z": 0}
    target.update(stored(store, {"a": 1}))
    assert target == {"z": 0, "a": 1}
    copied = stored(store, {"a": [1]}).copy()
    assert type(copied) is dict
    assert copied == {"a": [1]}
    assert copy.copy(stored(store, {"a": 1})) == {"a": 1}
    deep = copy.deepcopy(stored(store, {"a": [1]}))
    assert deep == {"a": [1]}
    assert type(deep) is dict
    assert pickle.loads(pickle.dumps(stored(store, {"a": 1}))) == {"a": 1}


def test_keyword_arguments(store):
    def f(**kwargs):
        return kwargs

    assert f(**stored(store, {"a": 1})) == {"a": 1}


def test_equality_with_a_dict(store):
    assert stored(store, {"a": 1}) == {"a": 1}
    assert {"a": 1} == stored(store, {"a": 1})  # noqa: SIM300 - the reflected operator
    assert stored(store, {"a": 1}) != {"a": 2}
    assert {"a": 2} != stored(store, {"a": 1})  # noqa: SIM300 - the reflected operator
    assert (stored(store, {"a": 1}) != {"a": 1}) is False
    assert Session(store) == {}


def test_or_operators(store):
    session = stored(store, {"a": 1, "b": 2})
    merged = session | {"b": 3}
    assert merged == {"a": 1, "b": 3}
    assert type(merged) is dict
    assert not session.modified
    assert {"b": 3, "c": 4} | stored(store, {"a": 1, "b": 2}) == {"b": 2, "c": 4, "a": 1}

    session |= {"c": 3}
    assert isinstance(session, Session)
    assert session.modified
    session.save()
    assert stored_data(store, session.key) == {"a": 1, "b": 2, "c": 3}


def stored_data(store, key):
    return dict(Session(store, key))


def test_popitem_removes_the_last_inserted_key(store):
    session = stored(store, {"a": 1, "b": 2})
    session["c"] = 3
    assert session.popitem() == ("c", 3)
    assert session.popitem() == ("b", 2)
    assert session.modified
    session.save()
    assert stored_data(store, session.key) == {"a": 1}
    with pytest.raises(KeyError):
        Session(store).popitem()


def test_setdefault_update_pop(store):
    session = stored(store, {"a": 1})
    assert session.setdefault("a", 5) == 1
    assert not session.modified
    assert session.setdefault("b", 2) == 2
    assert session.modified
    session.update({"c": 3}, d=4)
    session.update([("e", 5)])
    assert session.pop("a") == 1
    assert session.pop("missing", "x") == "x"
    with pytest.raises(KeyError):
        session.pop("missing")
    session.save()
    assert stored_data(store, session.key) == {"b": 2, "c": 3, "d": 4, "e": 5}


def test_update_checks_values(store):
    session = Session(store)
    with pytest.raises(TypeError, match="'bad'"):
        session.update(bad={1, 2})


def test_views_and_order(store):
    session = stored(store, {"a": 1, "b": 2})
    keys, values, items = session.keys(), session.values(), session.items()
    assert list(keys) == ["a", "b"]
    assert list(values) == [1, 2]
    assert list(items) == [("a", 1), ("b", 2)]
    assert keys == {"a", "b"}
    assert keys & {"a"} == {"a"}
    assert ("a", 1) in items
    assert list(reversed(session)) == ["b", "a"]
    session["c"] = 3  # views are live, as a dict's are
    assert list(keys) == ["a", "b", "c"]
    assert len(values) == 3


def test_repr_and_str_do_not_load(store):
    session = stored(store, {"a": 1})
    assert "not loaded" in repr(session)
    assert "not loaded" in str(session)
    assert untouched(session)


def test_building_and_type_checks_do_not_load(store):
    session = stored(store, {"a": 1})
    assert isinstance(session, dict)
    assert untouched(session)
    assert store.calls == {}


def test_fromkeys_gives_a_dict():
    assert Session.fromkeys(["a"], 1) == {"a": 1}
    assert type(Session.fromkeys(["a"])) is dict


def test_nested_change_through_items_is_saved(store):
    session = stored(store, {"cart": [1]})
    for key, value in session.items():
        if key == "cart":
            value.append(2)
    session.save()
    assert stored_data(store, session.key) == {"cart": [1, 2]}
