"""Attacks on sessions as tests, on every real store (tests/test_middleware.py runs several of
them against the in-memory store; these run them against the cookie, db and redis stores).

Two of the cookie store's properties differ by design and are asserted as documented in
SECURITY.md: a copy of a cookie-store cookie stays valid until it expires (sign-out cannot
revoke it), and the cookie store's old cookies stay readable after ``cycle_key`` (they only ever
hold the data they held when they were issued).
"""

from __future__ import annotations

import re

import pytest

from session_core import hash_key
from session_core.cookie import CookieStore

from ._apps import Response, WSGIClient
from .conftest import OTHER_SECRET, SECRET, StoreSetup


def cookie_of(response: Response, name: str = "sessionid") -> str:
    value = response.cookie_value(name)
    assert value, response.headers
    return value


def test_forged_cookie_without_the_key_gets_nothing(rel_setup: StoreSetup):
    client = WSGIClient(rel_setup.config())
    rel_setup.stores.append(client.store)
    victim = cookie_of(client.get("/login", query="user=victim"))
    forgeries = [
        # Signed with a key the attacker chose, claiming an admin session.
        CookieStore([OTHER_SECRET]).save(None, _record({"user": "admin"}), _all({"user": "admin"})),
        CookieStore([OTHER_SECRET], encrypt=True).save(
            None, _record({"user": "admin"}), _all({"user": "admin"})
        ),
        victim[:-1] + ("A" if victim[-1] != "A" else "B"),
    ]
    if rel_setup.server_side:
        # What a leaked table or dump holds: the SHA-256 of each key, not the key.
        forgeries.append(hash_key(victim))
        forgeries.append(hash_key(victim)[:43])
    for forged in forgeries:
        response = client.get("/read", f"sessionid={forged}")
        assert response.status == 200
        assert response.body["data"] == {}, forged
    assert client.get("/read", f"sessionid={victim}").body["data"] == {"user": "victim"}


def _record(data):
    from session_core.testing import make_record

    return make_record(data)


def _all(data):
    from session_core import Changes

    return Changes(frozenset(data))


def test_session_fixation_planted_keys_are_never_adopted(rel_setup: StoreSetup):
    """The attacker plants a key in the victim's browser: an unknown key of the right shape, or
    the key of a real session the attacker opened. After the victim signs in, the attacker's
    key gives the attacker nothing of the victim's."""
    client = WSGIClient(rel_setup.config())
    rel_setup.stores.append(client.store)
    store = client.store
    attacker_session = cookie_of(client.get("/set", query="k=by&v=attacker"))
    planted = [store.generate_key(), attacker_session]
    for key in planted:
        signed_in = client.get("/login", f"sessionid={key}", "user=victim")
        victim_key = cookie_of(signed_in)
        assert victim_key != key
        # The attacker replays the planted key: never the victim's sign-in.
        replay = client.get("/read", f"sessionid={key}")
        assert "user" not in replay.body["data"]
        assert client.get("/read", f"sessionid={victim_key}").body["data"]["user"] == "victim"
        if rel_setup.server_side:
            assert store.load(key) is None  # unknown: not adopted; known: deleted by cycle_key
            assert replay.body["data"] == {}


def test_cycle_key_at_login_leaves_the_old_key_useless(rel_setup: StoreSetup):
    client = WSGIClient(rel_setup.config())
    rel_setup.stores.append(client.store)
    anonymous = cookie_of(client.get("/set", query="k=cart&v=3"))
    signed_in = cookie_of(client.get("/login", f"sessionid={anonymous}", "user=alice"))
    assert signed_in != anonymous
    assert client.get("/read", f"sessionid={signed_in}").body["data"] == {
        "cart": "3",
        "user": "alice",
    }
    old = client.get("/read", f"sessionid={anonymous}")
    if rel_setup.server_side:
        assert old.body["data"] == {}
        assert old.cookie_value() == ""  # and the dead cookie is removed
        assert client.store.load(anonymous) is None
    else:
        # Cookie store: the old cookie holds what it held (never the sign-in) until it expires.
        assert old.body["data"] == {"cart": "3"}
    # Writing through the old key never reaches the signed-in session.
    client.get("/set", f"sessionid={anonymous}", "k=user&v=mallory")
    assert client.get("/read", f"sessionid={signed_in}").body["data"]["user"] == "alice"


def test_sign_out_on_one_request_ends_the_session_everywhere(rel_setup: StoreSetup):
    """A session open on two devices (or stolen): sign-out on one ends it on the other, and a
    request that loaded it before the sign-out cannot bring it back by saving late."""
    client = WSGIClient(rel_setup.config())
    rel_setup.stores.append(client.store)
    store = client.store
    key = cookie_of(client.get("/login", query="user=alice"))
    # A slow request on the other device loaded the session before the sign-out...
    from session_core import Session

    late = Session(store, key)
    assert late["user"] == "alice"
    signed_out = client.get("/logout", f"sessionid={key}")
    assert signed_out.cookie_value() == ""
    # ...and saves after it.
    late["theme"] = "dark"
    late.save()
    other_device = client.get("/read", f"sessionid={key}")
    if rel_setup.server_side:
        assert other_device.body["data"] == {}
        assert store.load(key) is None
        assert late.vanished
    else:
        # Documented: the cookie store cannot revoke a copy of a cookie before it expires.
        assert other_device.body["data"] == {"user": "alice"}


def test_server_store_sessions_survive_a_secret_key_rotation(rel_server_setup: StoreSetup):
    """Server-side keys are random, not signed: rotating the secret keeps every session."""
    before = WSGIClient(rel_server_setup.config())
    rel_server_setup.stores.append(before.store)
    key = cookie_of(before.get("/login", query="user=alice"))
    after = WSGIClient(rel_server_setup.config(secret_key=OTHER_SECRET))
    rel_server_setup.stores.append(after.store)
    assert after.get("/read", f"sessionid={key}").body["data"] == {"user": "alice"}


@pytest.mark.parametrize("encrypt", [False, True], ids=["signed", "encrypted"])
def test_key_rotation_accepts_old_keys_only_while_listed_and_never_signs_with_them(encrypt):
    old, new = "old-" + SECRET, "new-" + SECRET
    options = {"encrypt": encrypt}
    from session_core import SessionConfig

    def client(secret, fallbacks=()):
        return WSGIClient(
            SessionConfig(
                secret_key=secret, fallback_secret_keys=list(fallbacks), store_options=options
            )
        )

    issued = cookie_of(client(old).get("/set", query="k=n&v=1"))
    rotating = client(new, [old])
    assert rotating.get("/read", f"sessionid={issued}").body["data"] == {"n": "1"}
    only_old, only_new = CookieStore([old], encrypt=encrypt), CookieStore([new], encrypt=encrypt)
    cookie = issued
    for step in range(50):  # every cookie the rotating app issues is signed with the new key
        cookie = cookie_of(rotating.get("/set", f"sessionid={cookie}", f"k=s{step}&v=1"))
        assert only_new.load(cookie) is not None
        assert only_old.load(cookie) is None
    fresh = cookie_of(rotating.get("/set", query="k=n&v=2"))
    assert only_old.load(fresh) is None
    # Once the old key leaves the list, its cookies are refused and removed.
    done = client(new)
    response = done.get("/read", f"sessionid={issued}")
    assert response.body["data"] == {}
    assert response.cookie_value() == ""
    assert done.get("/read", f"sessionid={cookie}").body["data"]["n"] == "1"


def test_server_stores_hold_no_raw_session_key(rel_server_setup: StoreSetup):
    client = WSGIClient(rel_server_setup.config())
    rel_server_setup.stores.append(client.store)
    keys = []
    for n in range(5):
        key = cookie_of(client.get("/set", query=f"k=n&v={n}"))
        key = cookie_of(client.get("/login", f"sessionid={key}", f"user=u{n}"))
        client.get("/set", f"sessionid={key}", "k=more&v=1")
        keys.append(key)
    contents = "\n".join(rel_server_setup.server_contents())
    assert len(rel_server_setup.server_contents()) == 5
    for key in keys:
        assert key not in contents
        assert hash_key(key) in contents
    # Not even a long piece of a key appears (no prefix or encoding of it).
    for key in keys:
        for start in range(0, 43 - 12):
            assert key[start : start + 12] not in contents


FLAG_SETS = [
    {
        "cookie_name": "sid",
        "cookie_secure": True,
        "cookie_http_only": True,
        "cookie_same_site": "None",
        "cookie_domain": "shop.example.test",
        "cookie_path": "/app",
    },
    {
        "cookie_name": "sid",
        "cookie_secure": False,
        "cookie_http_only": False,
        "cookie_same_site": "Strict",
        "cookie_path": "/",
    },
]


@pytest.mark.parametrize("flags", FLAG_SETS, ids=["secure-none-domain", "strict-plain"])
def test_every_cookie_carries_the_configured_flags_including_deletions(rel_setup, flags):
    client = WSGIClient(rel_setup.config(**flags))
    rel_setup.stores.append(client.store)

    def check(header: str, deleting: bool) -> None:
        parts = [p.strip() for p in header.split(";")]
        name, _, value = parts[0].partition("=")
        assert name == "sid"
        assert (value == "") is deleting
        attributes = {p.split("=")[0].lower(): p.partition("=")[2] for p in parts[1:]}
        assert attributes["path"] == flags["cookie_path"]
        assert attributes.get("domain") == flags.get("cookie_domain")
        assert ("secure" in attributes) is flags["cookie_secure"]
        assert ("httponly" in attributes) is flags["cookie_http_only"]
        assert attributes["samesite"] == flags["cookie_same_site"]
        if deleting:
            assert attributes["max-age"] == "0"
            assert re.search(r"1970", attributes["expires"])
        else:
            assert int(attributes["max-age"]) > 0

    def only_cookie(response: Response, deleting: bool) -> str:
        headers = response.set_cookies()
        assert len(headers) == 1, headers
        check(headers[0], deleting)
        return headers[0].split(";")[0].partition("=")[2]

    key = only_cookie(client.get("/set", query="k=a&v=1"), deleting=False)
    key = only_cookie(client.get("/login", f"sid={key}", "user=u"), deleting=False)
    only_cookie(client.get("/logout", f"sid={key}"), deleting=True)  # sign-out
    only_cookie(client.get("/read", "sid=tampered.value.x"), deleting=True)  # bad cookie
    if rel_setup.server_side:
        only_cookie(client.get("/read", f"sid={key}"), deleting=True)  # signed-out key
