"""The cookie store under attack: forgery, tampering, foreign keys and salts, expiry replay,
key rotation order, encryption, and decompression limits."""

import asyncio
import base64
import hashlib
import json
import os
import sys
import time
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import Signer, TimestampSigner, URLSafeTimedSerializer

import session_core.cookie as cookie_module
from session_core import (
    EncryptionUnavailableError,
    Session,
    SessionConfig,
    UserIndexUnsupportedError,
)
from session_core.cookie import MAX_COOKIE_BYTES, VERIFIED_COOKIES, CookieStore
from session_core.testing import make_record

CURRENT = "current-key-" + "c" * 32
OLD = "old-key-" + "o" * 32
OTHER = "attacker-key-" + "a" * 32


def cookie_for(store, data, **kwargs):
    record = make_record(data, **kwargs)
    return store.save(None, record, None)


def sign_raw(secret, body, salt=b"session_core.cookie"):
    """Sign ``body`` the way the store does, with an arbitrary key and salt (an attacker who has
    that key, or a forger who reuses another app's key)."""
    derived = Signer(secret, salt=salt, key_derivation="hmac", digest_method=hashlib.sha256)
    signer = TimestampSigner(
        derived.derive_key(), salt=salt, key_derivation="none", digest_method=hashlib.sha256
    )
    return signer.sign(body).decode()


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@pytest.fixture
def store():
    return CookieStore([CURRENT])


def test_round_trip_and_compression(store):
    small = cookie_for(store, {"a": 1})
    big = cookie_for(store, {"text": "repeat " * 200})
    assert not small.startswith(".")
    assert big.startswith("."), "a compressible payload is compressed"
    assert len(big) < 400
    assert store.load(big).data == {"text": "repeat " * 200}


def test_compression_sets_up_a_small_window_that_any_inflater_reads(store):
    # zlib.compress's defaults set up about 256 KiB of state per call, which can cost ten times
    # as much as the compression itself; a window of a cookie's size gives the same output.
    data = {"cart": [{"sku": f"SKU-{i:05d}", "qty": 1} for i in range(20)]}
    cookie = cookie_for(store, data)
    assert cookie.startswith(".")
    compressed = base64.urlsafe_b64decode(cookie[1:].split(".")[0] + "==")
    assert compressed[0] >> 4 == 12 - 8, "the zlib header declares a 4 KiB window"
    payload = json.loads(zlib.decompress(compressed))
    assert payload[0] == data
    assert store.load(cookie).data == data


def test_format_is_itsdangerous_timestamp_signer_both_ways(store):
    before = int(time.time())
    cookie = cookie_for(store, {"user": 1})
    after = time.time()
    derived = Signer(
        CURRENT, salt=b"session_core.cookie", key_derivation="hmac", digest_method=hashlib.sha256
    )
    reference = TimestampSigner(
        derived.derive_key(),
        salt=b"session_core.cookie",
        key_derivation="none",
        digest_method=hashlib.sha256,
    )
    body, signed_at = reference.unsign(cookie, return_timestamp=True)
    assert before <= signed_at.timestamp() <= after
    assert json.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))[0] == {"user": 1}
    made_by_itsdangerous = reference.sign(
        b64(json.dumps([{"user": 2}, None, 60]).encode())
    ).decode()
    assert store.load(made_by_itsdangerous).data == {"user": 2}


def test_forged_cookie_without_the_key_is_refused(store):
    payload = b64(json.dumps([{"user": "admin"}, None, 3600]).encode())
    assert store.load(sign_raw(OTHER, payload)) is None
    assert store.load(payload.decode() + ".AAAAAA.AAAA") is None


def test_every_single_character_change_is_refused(store):
    cookie = cookie_for(store, {"user": 1, "role": "reader"})
    alphabet = "ABCabc012-_."
    for index in range(len(cookie)):
        for replacement in alphabet:
            if replacement == cookie[index]:
                continue
            tampered = cookie[:index] + replacement + cookie[index + 1 :]
            record = store.load(tampered)
            assert record is None or record.data == {"user": 1, "role": "reader"}


def test_signature_with_another_salt_is_refused(store):
    payload = b64(json.dumps([{"user": "admin"}, None, 3600]).encode())
    assert store.load(sign_raw(CURRENT, payload, salt=b"itsdangerous.Signer")) is None
    # Another library's cookie made with the same secret (Flask-style serializer).
    foreign = URLSafeTimedSerializer(CURRENT).dumps([{"user": "admin"}, None, 3600])
    assert store.load(foreign) is None


def test_encrypted_and_plain_cookies_do_not_cross(store):
    sealed = CookieStore([CURRENT], encrypt=True)
    assert store.load(cookie_for(sealed, {"a": 1})) is None
    assert sealed.load(cookie_for(store, {"a": 1})) is None


def test_only_canonical_base64_is_decoded_even_under_our_signature(store):
    # Signed with our key and salt, but not in this store's form: the encrypted flavour's "~"
    # marker on a plain payload, characters outside the URL-safe alphabet, a length no base64
    # has. A lenient decoder skips such characters and would read the payload. (Padding is
    # accepted, as itsdangerous accepts it.)
    payload = b64(json.dumps([{"user": "admin"}, None, 3600]).encode())
    assert store.load(sign_raw(CURRENT, payload)).data == {"user": "admin"}
    assert store.load(sign_raw(CURRENT, payload + b"==")).data == {"user": "admin"}
    for body in (
        b"~" + payload,
        payload[:8] + b"!" + payload[8:],
        payload[:8] + b" " + payload[8:],
        payload + b"A",
    ):
        assert store.load(sign_raw(CURRENT, body)) is None, body


def test_unauthenticated_cookie_is_never_decoded(store, monkeypatch):
    decoded = []
    for name in ("_b64decode", "decode_json", "_inflate"):
        monkeypatch.setattr(cookie_module, name, lambda *a, name=name: decoded.append(name))
    monkeypatch.setattr(store, "_decode", lambda *a: decoded.append("_decode"))
    for body in (b64(b'[{"a":1},null,60]'), b"." + b64(zlib.compress(b'[{"a":1},null,60]'))):
        store.load(sign_raw(OTHER, body))
    store.load("garbage")
    assert decoded == []


# -------------------------------------------------------------------- remembered cookies


def test_a_remembered_cookie_loads_as_a_fresh_copy_each_time(store):
    cookie = cookie_for(store, {"user": 1, "cart": [1, 2]})
    first = store.load(cookie)
    first.data["cart"].append(3)
    first.data["user"] = 2
    again = store.load(cookie)
    assert again.data == {"user": 1, "cart": [1, 2]}, "a change to one load reached the next"


def test_a_remembered_cookie_still_expires(store, monkeypatch):
    cookie = cookie_for(store, {"user": 1}, ttl=60)
    assert store.load(cookie) is not None  # remembered, at the save and at this load
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 61)
    assert store.load(cookie) is None


def test_a_remembered_cookie_is_verified_without_another_signature(store, monkeypatch):
    cookie = cookie_for(store, {"user": 1})
    signed = []
    monkeypatch.setattr(store, "_sign", lambda message: signed.append(message) or b"")
    assert store.load(cookie).data == {"user": 1}
    assert signed == []
    # One character changed is a value the store never signed: verified, and refused.
    altered = cookie[:-1] + ("A" if cookie[-1] != "A" else "B")
    assert store.load(altered) is None
    assert len(signed) == 1


def test_what_one_store_remembers_no_store_with_other_keys_accepts():
    mine, theirs = CookieStore([CURRENT]), CookieStore([OTHER])
    cookie = cookie_for(mine, {"user": 1})
    assert mine.load(cookie) is not None
    assert theirs.load(cookie) is None
    assert CookieStore([OTHER, CURRENT]).load(cookie) is not None  # a fallback key verifies it


def test_refused_values_are_not_remembered(store, monkeypatch):
    forged = sign_raw(OTHER, b64(b'[{"a":1},null,60]'))
    for _ in range(3):
        assert store.load(forged) is None
    signed = []
    real_sign = store._sign
    monkeypatch.setattr(store, "_sign", lambda message: signed.append(1) or real_sign(message))
    assert store.load(forged) is None
    assert signed == [1], "a refused value is verified again every time"


def test_remembered_cookies_are_bounded(store, monkeypatch):
    cookies = [cookie_for(store, {"n": n}) for n in range(VERIFIED_COOKIES * 3 + 7)]
    assert len(store._verified) <= VERIFIED_COOKIES
    # Forgotten or not, every one of them still loads.
    assert [store.load(c).data["n"] for c in cookies] == list(range(len(cookies)))
    # A payload that inflates past a cookie's size is not kept.
    store._verified.clear()
    big = cookie_for(store, {"text": "x" * (MAX_COOKIE_BYTES * 2)})
    assert len(big) < MAX_COOKIE_BYTES
    assert store.load(big).data["text"] == "x" * (MAX_COOKIE_BYTES * 2)
    assert store._verified == {}


def test_a_value_verified_by_a_fallback_key_is_remembered_only_by_that_store():
    old = CookieStore([OLD])
    cookie = cookie_for(old, {"user": 1})
    rotated = CookieStore([CURRENT, OLD])
    assert rotated.load(cookie).data == {"user": 1}
    assert rotated.load(cookie).data == {"user": 1}  # remembered, still under the old key
    # Keys are fixed per store object: the app that drops the old key builds a new one, which
    # remembers nothing of the others.
    assert CookieStore([CURRENT]).load(cookie) is None


def test_encrypted_values_are_remembered_and_altered_ones_refused():
    pytest.importorskip("cryptography")
    store = CookieStore([CURRENT, OLD], encrypt=True)
    cookie = cookie_for(CookieStore([OLD], encrypt=True), {"secret": "s"})
    assert store.load(cookie).data == {"secret": "s"}
    assert cookie in store._verified
    body, stamp, signature = cookie.split(".")
    altered = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + f".{stamp}.{signature}"
    assert store.load(altered) is None
    assert CookieStore([CURRENT, OLD]).load(cookie) is None, "a plain store read an encrypted one"


def test_a_value_too_large_for_a_cookie_is_not_remembered_at_save(store):
    record = make_record({"text": os.urandom(6000).hex()})
    value = store.save(None, record, None)
    assert len(value) > MAX_COOKIE_BYTES
    assert store._verified == {}
    assert store.load(value) is None, "a value no browser keeps loaded from memory"
    assert CookieStore([CURRENT]).load(value) is None


def test_absurdly_nested_data_under_our_signature_loads_as_no_session(store):
    depth = sys.getrecursionlimit() * 4
    nested = b"[{}," + b"[" * depth + b"]" * depth + b",60]"
    cookie = sign_raw(CURRENT, b"." + b64(zlib.compress(nested)))
    assert len(cookie) < MAX_COOKIE_BYTES
    assert store.load(cookie) is None


def test_expired_cookie_replayed_later_is_refused(store, monkeypatch):
    cookie = cookie_for(store, {"user": 1}, ttl=60)
    assert store.load(cookie) is not None
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 61)
    assert store.load(cookie) is None


def test_expiry_is_bound_by_the_signature(store):
    # Rewriting the ttl inside the payload breaks the signature.
    cookie = cookie_for(store, {"user": 1}, ttl=60)
    body, stamp, sig = cookie.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data[2] = 10**9
    forged = b64(json.dumps(data).encode())
    assert store.load(f"{forged.decode()}.{stamp}.{sig}") is None


def test_cookie_from_the_future_is_refused(store, monkeypatch):
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    cookie = cookie_for(store, {"user": 1}, ttl=7200)
    monkeypatch.setattr(time, "time", real_time)
    assert store.load(cookie) is None


# -------------------------------------------------------------------- key rotation


def test_rotation_old_key_verifies_current_key_signs():
    old_app = CookieStore([OLD])
    cookie = cookie_for(old_app, {"user": 1})
    rotated = CookieStore([CURRENT, OLD])
    assert rotated.load(cookie).data == {"user": 1}
    resaved = rotated.save(None, rotated.load(cookie), None)
    assert CookieStore([CURRENT]).load(resaved).data == {"user": 1}, "signed with the new key"
    assert CookieStore([OLD]).load(resaved) is None, "never signed with a fallback key"


def test_rotation_order_newest_key_signs_even_with_many_fallbacks():
    rotated = CookieStore([CURRENT, OLD, OTHER])
    cookie = cookie_for(rotated, {"a": 1})
    assert CookieStore([CURRENT]).load(cookie) is not None
    assert CookieStore([OLD]).load(cookie) is None
    assert CookieStore([OTHER]).load(cookie) is None


def test_removed_key_no_longer_verifies():
    cookie = cookie_for(CookieStore([OLD]), {"user": 1})
    assert CookieStore([CURRENT, OLD]).load(cookie) is not None
    assert CookieStore([CURRENT]).load(cookie) is None


def test_rotation_through_a_session_resigns_on_next_save():
    cookie = cookie_for(CookieStore([OLD]), {"n": 1})
    config = SessionConfig(secret_key=CURRENT, fallback_secret_keys=[OLD])
    store = CookieStore.from_config(config)
    session = Session(store, cookie)
    session["n"] = session["n"] + 1
    new_cookie = session.save()
    assert CookieStore([CURRENT]).load(new_cookie).data == {"n": 2}


def test_encrypted_rotation():
    cookie = cookie_for(CookieStore([OLD], encrypt=True), {"user": 1})
    rotated = CookieStore([CURRENT, OLD], encrypt=True)
    assert rotated.load(cookie).data == {"user": 1}
    resaved = rotated.save(None, rotated.load(cookie), None)
    assert CookieStore([CURRENT], encrypt=True).load(resaved) is not None
    assert CookieStore([OLD], encrypt=True).load(resaved) is None


# -------------------------------------------------------------------- encryption


def test_encrypted_cookie_hides_the_data():
    sealed = CookieStore([CURRENT], encrypt=True)
    cookie = cookie_for(sealed, {"secret_note": "launch codes 1234"})
    body = cookie.split(".")[0].lstrip("~")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert b"launch" not in raw
    assert b"secret_note" not in raw
    assert sealed.load(cookie).data == {"secret_note": "launch codes 1234"}


def test_encrypted_cookies_differ_each_time():
    sealed = CookieStore([CURRENT], encrypt=True)
    assert cookie_for(sealed, {"a": 1}) != cookie_for(sealed, {"a": 1})


def test_encryption_and_signing_keys_are_separate():
    # Knowing the signing key alone must not let anyone make an encrypted cookie the store opens.
    sealed = CookieStore([CURRENT], encrypt=True)
    forged = sign_raw(
        CURRENT, b"~" + b64(b"\x00" * 12 + b"jnot-encrypted"), salt=b"session_core.cookie.encrypted"
    )
    assert sealed.load(forged) is None


def test_encryption_without_cryptography_is_a_clear_error(monkeypatch):
    for name in list(sys.modules):
        if name.startswith("cryptography"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    config = SessionConfig(secret_key=CURRENT, store_options={"encrypt": True})
    with pytest.raises(EncryptionUnavailableError, match=r"session-core\[encryption\]"):
        CookieStore.from_config(config)


def test_bad_store_options_are_refused():
    with pytest.raises(ValueError, match="no option 'url'"):
        CookieStore.from_config(SessionConfig(secret_key=CURRENT, store_options={"url": "x"}))
    with pytest.raises(ValueError, match="encrypt must be true or false"):
        CookieStore.from_config(SessionConfig(secret_key=CURRENT, store_options={"encrypt": 1}))


# -------------------------------------------------------------------- hostile input


def test_decompression_bomb_signed_with_the_key_is_refused(store):
    bomb = zlib.compress(b'[{"a":"' + b"x" * (2 << 20) + b'"},null,60]', 9)
    cookie = sign_raw(CURRENT, b"." + b64(bomb))
    assert len(cookie) < 4096, "small enough to pass the size check; refused when inflating"
    assert store.load(cookie) is None


@pytest.mark.parametrize(
    "value",
    ["", ".", "..", "a.b.c", "~.x.y", "." * 50, "é.é.é", "\x00", "a" * 5000, "a.b.c\r\nX: y"],
)
def test_malformed_values_load_none(store, value):
    assert store.load(value) is None


def test_signed_but_wrong_shape_payload_loads_none(store):
    for payload in (b'{"a":1}', b"[1,2,3]", b'[{"a":1},null,"x"]', b"not json"):
        assert store.load(sign_raw(CURRENT, b64(payload))) is None


def test_a_user_id_payload_of_the_wrong_shape_loads_none(store):
    for user in (b"true", b"1.5", b"null", b"[1]", b'{"u":1}'):
        payload = b'[{"a":1},null,3600,' + user + b"]"
        assert store.load(sign_raw(CURRENT, b64(payload))) is None, user
    five = b'[{"a":1},null,3600,"ann","extra"]'
    assert store.load(sign_raw(CURRENT, b64(five))) is None
    good = store.load(sign_raw(CURRENT, b64(b'[{"a":1},null,3600,"ann"]')))
    assert good is not None
    assert good.user_id == "ann"


@pytest.mark.parametrize("user_id", ["ann", 7])
def test_the_user_id_travels_in_the_cookie(store, user_id):
    session = Session(store)
    session["cart"] = [1]
    session.user_id = user_id
    cookie = session.save()
    assert cookie is not None
    assert Session(store, cookie).user_id == user_id
    plain = Session(store)
    plain["cart"] = [1]
    unbound = plain.save()
    assert unbound is not None
    assert len(unbound) < len(cookie), "an unbound session's cookie carries no user"
    assert store.load(unbound).user_id is None


def test_listing_and_revoking_are_refused_with_the_reason(store):
    for call in (lambda: store.sessions_of("ann"), lambda: store.revoke_user("ann", keep=None)):
        with pytest.raises(UserIndexUnsupportedError) as caught:
            call()
        assert "lives in its visitor's cookie" in str(caught.value)
        assert "'redis'" in str(caught.value)
        assert caught.value.store == "cookie"
    with pytest.raises(UserIndexUnsupportedError, match="cookie"):
        asyncio.run(store.asessions_of("ann"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_random_input_never_raises(value):
    assert CookieStore([CURRENT]).load(value) is None


_REAL_COOKIE = cookie_for(CookieStore([CURRENT]), {"user": 1})


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_real_cookie_never_yields_other_data(data):
    store = CookieStore([CURRENT])
    cookie = _REAL_COOKIE  # one cookie for every example: its length must not vary between them
    assert store.load(cookie).data == {"user": 1}  # remembered: a near miss must not match it
    index = data.draw(st.integers(0, len(cookie) - 1))
    char = data.draw(st.characters(codec="ascii"))
    mutated = cookie[:index] + char + cookie[index + 1 :]
    record = store.load(mutated)
    assert record is None or record.data == {"user": 1}


# -------------------------------------------------------------------- lifetime


def test_the_lifetime_is_whole_seconds_and_never_outlives_expires_at(store):
    for fraction in (0.0, 0.001, 0.5, 0.999):
        record = make_record({"a": 1}, ttl=3600)
        record.expires_at = int(record.expires_at) + fraction
        cookie = store.save(None, record, None)
        body = cookie.split(".")[0]
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        assert type(payload[2]) is int
        loaded = CookieStore([CURRENT]).load(cookie)  # a store that did not sign it
        assert record.expires_at - 1 < loaded.expires_at <= record.expires_at


def test_a_fractional_lifetime_of_earlier_versions_is_read(store):
    signed_at = int(time.time())
    cookie = sign_raw(CURRENT, b64(b'[{"a":1},null,60.25]'))
    loaded = store.load(cookie)
    assert loaded.data == {"a": 1}
    assert abs(loaded.expires_at - (signed_at + 60.25)) <= 1
