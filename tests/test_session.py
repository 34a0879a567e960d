"""The Session: laziness, change tracking, key cycling, flush, expiry and value checks."""

import asyncio
import enum
import time
from datetime import UTC, datetime, timedelta

import pytest

from session_core import InvalidExpiryError, Session, generate_key, is_plausible_key
from session_core.config import MAX_COOKIE_AGE
from session_core.cookie import CookieStore
from session_core.testing import MemoryStore


class Key(enum.StrEnum):
    USER = "user"


class OldStyleKey(str, enum.Enum):  # noqa: UP042 - the pre-StrEnum spelling must work too
    CART = "cart"


@pytest.fixture
def store():
    return MemoryStore()


def saved(store, data):
    session = Session(store)
    session.update(data)
    key = session.save()
    assert key is not None
    store.calls.clear()
    return key


# -------------------------------------------------------------------- laziness


def test_building_a_session_does_no_io(store):
    key = saved(store, {"a": 1})
    session = Session(store, key)
    assert not session.accessed
    assert not session.modified
    assert store.calls == {}


def test_key_source_is_not_called_until_first_access(store):
    key = saved(store, {"a": 1})
    asked = []

    def source():
        asked.append(1)
        return key

    session = Session(store, key_source=source)
    assert asked == []
    assert session["a"] == 1
    assert session["a"] == 1
    assert asked == [1]
    assert store.calls == {"load": 1}


def test_first_read_loads_once(store):
    key = saved(store, {"a": 1, "b": 2})
    session = Session(store, key)
    assert session["a"] == 1
    assert len(session) == 2
    assert "b" in session
    assert dict(session) == {"a": 1, "b": 2}
    assert store.calls == {"load": 1}
    assert session.accessed
    assert not session.modified


def test_write_only_request_on_partial_write_store_never_reads(store):
    key = saved(store, {"kept": 1})
    session = Session(store, key)
    session["added"] = 2
    assert session.save() == key
    assert store.calls == {"save": 1}
    assert dict(Session(store, key)) == {"kept": 1, "added": 2}


def test_write_before_read_then_read_sees_both(store):
    key = saved(store, {"kept": 1, "over": "old"})
    session = Session(store, key)
    session["over"] = "new"
    assert dict(session) == {"kept": 1, "over": "new"}


def test_unknown_key_is_not_adopted(store):
    planted = generate_key()
    session = Session(store, planted)
    assert dict(session) == {}
    session["user"] = 1
    key = session.save()
    assert key not in (None, planted)
    assert store.load(planted) is None


# -------------------------------------------------------------------- change tracking


def test_deleting_a_missing_key_is_not_a_change(store):
    session = Session(store, saved(store, {"a": 1}))
    with pytest.raises(KeyError):
        del session["missing"]
    assert session.pop("missing", None) is None
    assert not session.modified


def test_flash_read_and_delete_of_absent_key_sends_nothing(store):
    # A flash helper's "pop _flash" on every request must not re-save the session.
    session = Session(store, saved(store, {"user": 1}))
    assert session.pop("_flash", []) == []
    assert not session.modified


def test_set_and_delete_are_changes(store):
    key = saved(store, {"a": 1, "b": 2})
    session = Session(store, key)
    session["c"] = 3
    del session["a"]
    assert session.modified
    assert session.save() == key
    assert dict(Session(store, key)) == {"b": 2, "c": 3}


def test_nested_change_in_place_is_detected(store):
    key = saved(store, {"cart": [1], "prefs": {"theme": "dark"}})
    session = Session(store, key)
    session["cart"].append(2)
    session["prefs"]["theme"] = "light"
    assert session.modified
    session.save()
    assert dict(Session(store, key)) == {"cart": [1, 2], "prefs": {"theme": "light"}}


def test_nested_read_without_change_is_not_modified(store):
    session = Session(store, saved(store, {"cart": [1, {"x": 2}]}))
    assert session["cart"] == [1, {"x": 2}]
    assert not session.modified


def test_nested_change_to_non_json_value_is_refused_at_save(store):
    session = Session(store, saved(store, {"cart": []}))
    session["cart"].append(object())
    with pytest.raises(TypeError, match="'cart'"):
        session.save()


def test_mark_modified_rewrites_keys(store):
    key = saved(store, {"a": 1, "b": 2})
    session = Session(store, key)
    session.load()
    session.mark_modified("a")
    assert session.modified
    assert session.save() == key


def test_concurrent_requests_changing_different_keys_both_keep_their_change(store):
    key = saved(store, {"a": 0, "b": 0})
    first, second = Session(store, key), Session(store, key)
    first.load()
    second.load()
    first["a"] = 1
    second["b"] = 2
    first.save()
    second.save()
    assert dict(Session(store, key)) == {"a": 1, "b": 2}


def test_save_after_concurrent_sign_out_does_not_resurrect(store):
    key = saved(store, {"user": 1})
    late = Session(store, key)
    late.load()
    signing_out = Session(store, key)
    signing_out.flush()
    signing_out.save()
    late["cart"] = [1]
    assert late.save() is None
    assert late.vanished
    assert store.load(key) is None


def test_enum_keys_work_as_their_values(store):
    session = Session(store)
    session[Key.USER] = 5
    session[OldStyleKey.CART] = []
    assert session["user"] == 5
    assert Key.USER in session
    assert set(session) == {"user", "cart"}
    assert all(type(k) is str for k in session)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (object(), "object is not a JSON value"),
        ((1, 2), "use a list"),
        ({1: "x"}, "dict key 1 is not a str"),
        ([1, {2}], r"\[1\]: set is not a JSON value"),
        (float("nan"), "not a JSON number"),
        (b"bytes", "bytes is not a JSON value"),
        (datetime.now(UTC), "datetime is not a JSON value"),
    ],
)
def test_non_json_values_raise_at_assignment_naming_the_key(store, value, fragment):
    session = Session(store)
    with pytest.raises(TypeError, match="'basket'") as info:
        session["basket"] = value
    assert info.match(fragment)
    assert "basket" not in session


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("\ud800", r"lone surrogate '\\ud800' at index 0"),
        ("café \udfff", "at index 5"),
        (["ok", "\udc80"], r"\[1\]: the string holds a lone surrogate"),
        ({"nested": {"deep": "\ud83d"}}, r"\['nested'\]\['deep'\]"),
        ({"\ud800": 1}, r"\(a dict key\)"),
    ],
)
def test_text_utf8_cannot_carry_raises_at_assignment_naming_the_key(store, value, fragment):
    # A JSON request body can carry "\ud800"; no store can write it, so every response that
    # saved it would fail. It is refused where it is set, like any other value JSON cannot hold.
    session = Session(store)
    with pytest.raises(TypeError, match="'basket'") as info:
        session["basket"] = value
    assert info.match(fragment)
    assert "basket" not in session
    session["basket"] = "café ☕ 😀"  # well-formed text of any script is fine
    assert session.save() is not None


def test_a_key_utf8_cannot_carry_raises_at_assignment(store):
    session = Session(store)
    with pytest.raises(TypeError, match="the key"):
        session["\ud800"] = 1
    assert not session.modified


def test_a_lone_surrogate_put_in_place_is_refused_at_save(store):
    session = Session(store, saved(store, {"cart": [], "tags": {}}))
    session["cart"].append("\ud800")
    with pytest.raises(TypeError, match="'cart'"):
        session.save()
    session = Session(store, saved(store, {"tags": {}}))
    session["tags"]["\udfff"] = 1
    with pytest.raises(TypeError, match=r"'tags'.*a dict key"):
        session.save()
    session = Session(store, saved(store, {"tags": {}}))
    session.get("tags")["x"] = "\udfff"  # type: ignore[index]
    with pytest.raises(TypeError, match="'tags'"):
        session.mark_modified("tags")


def test_non_str_keys_raise(store):
    session = Session(store)
    with pytest.raises(TypeError, match="session keys must be str"):
        session[1] = "x"  # type: ignore[index]


# -------------------------------------------------------------------- cycle_key and flush


def test_cycle_key_keeps_data_and_kills_old_key(store):
    key = saved(store, {"cart": [1]})
    session = Session(store, key)
    session.cycle_key()
    session["user"] = 1
    new_key = session.save()
    assert new_key not in (None, key)
    assert store.load(key) is None
    assert dict(Session(store, new_key)) == {"cart": [1], "user": 1}


def test_flush_removes_data_record_and_key(store):
    key = saved(store, {"user": 1})
    session = Session(store, key)
    session.flush()
    assert dict(session) == {}
    assert session.key is None
    assert session.save() is None
    assert store.load(key) is None


def test_write_after_flush_starts_a_new_session(store):
    key = saved(store, {"user": 1})
    session = Session(store, key)
    session.flush()
    session["flash"] = "bye"
    new_key = session.save()
    assert new_key not in (None, key)
    assert store.load(key) is None
    assert dict(Session(store, new_key)) == {"flash": "bye"}


def test_clear_then_save_deletes_the_record(store):
    key = saved(store, {"a": 1})
    session = Session(store, key)
    session.clear()
    assert session.save() is None
    assert store.load(key) is None


def test_save_of_unchanged_empty_new_session_writes_nothing(store):
    session = Session(store)
    assert session.get("x") is None
    assert session.save() is None
    assert len(store) == 0


# -------------------------------------------------------------------- expiry


def test_default_expiry(store):
    session = Session(store, max_age=600)
    assert session.expiry_age == 600
    assert not session.expire_at_browser_close
    assert session.cookie_max_age == 600
    before = time.time()
    expires_at = session.expires_at.timestamp()
    assert before + 600 - 1e-3 <= expires_at <= time.time() + 600 + 1e-3


@pytest.mark.parametrize("value", [3600, timedelta(hours=1)])
def test_relative_expiry_is_stored_with_the_session(store, value):
    session = Session(store)
    session["a"] = 1
    session.set_expiry(value)
    before = time.time()
    key = session.save()
    after = time.time()
    record = store.load(key)
    assert before + 3600 <= record.expires_at <= after + 3600
    reloaded = Session(store, key)
    reloaded.load()
    assert reloaded.expiry_age == 3600


def test_absolute_expiry_does_not_slide(store):
    at = datetime.now(UTC) + timedelta(minutes=10)
    session = Session(store)
    session["a"] = 1
    session.set_expiry(at)
    key = session.save()
    again = Session(store, key)
    again["b"] = 2
    again.save()
    assert abs(store.load(key).expires_at - at.timestamp()) < 1
    assert abs(Session(store, key).expires_at.timestamp() - at.timestamp()) < 1


def test_browser_session_expiry_is_remembered_on_the_next_request(store):
    session = Session(store, max_age=900)
    session["a"] = 1
    session.set_expiry(0)
    key = session.save()
    later = Session(store, key, max_age=900)
    later["b"] = 2
    assert later.expire_at_browser_close
    assert later.cookie_max_age is None
    before = time.time()
    later.save()
    assert before + 900 <= store.load(key).expires_at <= time.time() + 900


def test_expired_session_on_the_server_loads_empty(store, monkeypatch):
    session = Session(store)
    session["a"] = 1
    session.set_expiry(datetime.now(UTC) + timedelta(seconds=60))
    key = session.save()
    assert dict(Session(store, key)) == {"a": 1}
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 61)  # a minute later
    assert dict(Session(store, key)) == {}


def test_set_expiry_none_returns_to_default(store):
    session = Session(store, max_age=100)
    session.set_expiry(5)
    session.set_expiry(None)
    assert session.expiry_age == 100


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (-1, InvalidExpiryError),
        (timedelta(seconds=-5), InvalidExpiryError),
        (datetime(2030, 1, 1), InvalidExpiryError),  # naive
        (MAX_COOKIE_AGE + 1, InvalidExpiryError),
        (10**17, InvalidExpiryError),
        (timedelta(days=401), InvalidExpiryError),
        (True, TypeError),
        ("3600", TypeError),
    ],
)
def test_set_expiry_rejects_bad_values(store, value, error):
    with pytest.raises(error) as info:
        Session(store).set_expiry(value)
    if error is InvalidExpiryError:
        assert isinstance(info.value, ValueError)  # what set_expiry raised before
        assert info.value.value == value
        assert repr(value) in str(info.value)


def test_set_expiry_takes_400_days():
    store = MemoryStore()
    session = Session(store)
    session["a"] = 1
    session.set_expiry(MAX_COOKIE_AGE)
    assert session.cookie_max_age == MAX_COOKIE_AGE
    assert session.save() is not None


# -------------------------------------------------------------------- async and cookie store


def test_async_load_and_save(store):
    key = saved(store, {"a": 1})

    async def scenario():
        session = Session(store, key)
        await session.aload()
        session["b"] = 2
        return await session.asave()

    assert asyncio.run(scenario()) == key
    assert dict(Session(store, key)) == {"a": 1, "b": 2}


def test_cookie_store_session_round_trip():
    store = CookieStore(["s" * 32])
    session = Session(store)
    session["user"] = 1
    session.set_expiry(0)
    cookie = session.save()
    again = Session(store, cookie)
    assert dict(again) == {"user": 1}
    assert again.expire_at_browser_close


def test_repr_does_not_show_the_key(store):
    key = saved(store, {"a": 1})
    session = Session(store, key)
    session.load()
    assert key not in repr(session)


# -------------------------------------------------------------------- key shape


def test_generated_keys_are_plausible():
    assert all(is_plausible_key(generate_key()) for _ in range(200))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a" * 42,
        "a" * 44,
        "a" * 42 + "=",
        "a" * 42 + "/",
        "a" * 42 + "+",
        "a" * 42 + "\n",
        "a" * 43 + "\n",
        "a" * 42 + "\u0661",  # an Arabic-Indic digit: a digit, but not base64
        "a" * 42 + "é",
        "../" + "a" * 40,
    ],
)
def test_keys_of_another_shape_are_not_plausible(bad):
    assert not is_plausible_key(bad)


# ---------------------------------------------------------------------- user_id


@pytest.mark.parametrize("bad", [True, 1.5, ["ann"], {"id": 1}, b"ann"])
def test_user_id_refuses_what_no_store_could_index(bad):
    session = Session(MemoryStore())
    with pytest.raises(TypeError, match="a user id is a str or an int"):
        session.user_id = bad
    assert session.user_id is None


def test_user_id_cycles_the_key_only_when_the_user_changes():
    store = MemoryStore()
    session = Session(store)
    session["a"] = 1
    first = session.save()
    session.user_id = "ann"
    bound = session.save()
    assert bound not in (None, first)
    assert store.load(first) is None
    again = Session(store, bound)
    again.user_id = "ann"  # the same user: nothing to save, the key stays
    assert not again.modified
    assert again.save() == bound


def test_flush_unbinds_and_clear_keeps_the_binding():
    store = MemoryStore()
    session = Session(store)
    session.user_id = 7
    session["a"] = 1
    key = session.save()
    emptied = Session(store, key)
    emptied.clear()
    assert emptied.save() == key, "a session bound to a user outlives its data"
    assert Session(store, key).user_id == 7
    out = Session(store, key)
    out.flush()
    assert out.user_id is None
    assert out.save() is None
    assert store.sessions_of(7) == []
