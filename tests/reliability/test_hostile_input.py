"""Hostile cookies against every store, through the real WSGI and ASGI middleware.

Each input must give a fresh, empty session: no exception, no 5xx, no new record on the server
for a request that only reads, and never the data of the victim session that lives in the same
store. The cookie store's own unit tests (tests/test_cookie_store.py) check its decoding alone;
these check the whole request path of every store, with many more cases.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.parse
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from itsdangerous import Signer, TimestampSigner

from session_core import SessionConfig, generate_key
from session_core._http import parse_cookie_value
from session_core.cookie import CookieStore
from session_core.testing import make_record

from ._apps import ASGIClient, Response, WSGIClient
from .conftest import OTHER_SECRET, SECRET, StoreSetup, record_figure, scaled

VICTIM_SECRET = "victim-only-c6f1e2a9"
EXAMPLES = scaled(300, 4000)

_cases: Counter[str] = Counter()

HOSTILE_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SQL_AND_REDIS = [
    "' OR '1'='1",
    "'; DROP TABLE sessions; --",
    "x' UNION SELECT data FROM sessions --",
    "1; DELETE FROM sessions",
    "\\x00' OR 1=1 /*",
    "*",
    "?",
    "[a-z]*",
    "session:*",
    "FLUSHALL",
    "FLUSHALL\r\n",
    "*1\r\n$8\r\nFLUSHALL\r\n",
    "\r\nDEL session:*\r\n",
    "KEYS *",
    "EVAL \"return redis.call('flushall')\" 0",
    "{tag}*",
    "%2A",
    "-" * 43,
    "_" * 43,
    "A" * 43,
    "OR1eq1--" + "A" * 35,
    "DROPTABLEsessions--" + "x" * 24,
    "FLUSHALL" + "_" * 35,
]


def sign_with(secret: str | bytes, body: bytes, salt: bytes) -> str:
    """A cookie in the store's format, signed with any key and salt (what a forger can make)."""
    derived = Signer(secret, salt=salt, key_derivation="hmac", digest_method=hashlib.sha256)
    signer = TimestampSigner(
        derived.derive_key(), salt=salt, key_derivation="none", digest_method=hashlib.sha256
    )
    return signer.sign(body).decode()


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def valid_cookies(setup: StoreSetup) -> list[str]:
    """Real cookie values of this store kind, of several shapes (small, compressed, nested)."""
    store = setup.store()
    values = []
    for data in ({"a": 1}, {"user": "x" * 400}, {"cart": [{"id": n} for n in range(30)]}):
        record = make_record(data)
        key = store.save(None, record, _everything(record))
        assert key is not None
        values.append(key)
    return values


def _everything(record):
    from session_core import Changes

    return Changes.everything(record)


def foreign_cookies(setup: StoreSetup) -> list[str]:
    """Values signed or made by something other than this store with this key."""
    data = {"user": "admin"}
    payload = json.dumps([data, None, 3600]).encode()
    made = [
        sign_with(OTHER_SECRET, b64(payload), b"session_core.cookie"),
        sign_with(SECRET, b64(payload), b"itsdangerous"),
        sign_with(SECRET, b64(payload), b"session_core.cookie.other"),
        sign_with(SECRET, b64(payload), b"cookie-session"),  # Flask's salt
        sign_with(SECRET, b"~" + b64(payload), b"session_core.cookie"),
        CookieStore([OTHER_SECRET]).save(None, make_record(data), _everything(make_record(data))),
        CookieStore([OTHER_SECRET], encrypt=True).save(
            None, make_record(data), _everything(make_record(data))
        ),
        generate_key(),  # a server store's key shape, unknown here
    ]
    # A cookie of the other cookie flavour, signed with the right key: must not cross over.
    flavour = setup.kind != "cookie-encrypted"
    made.append(
        CookieStore([SECRET], encrypt=flavour).save(
            None, make_record(data), _everything(make_record(data))
        )
    )
    if setup.server_side:
        made.append(
            CookieStore([SECRET]).save(None, make_record(data), _everything(make_record(data)))
        )
    return [m for m in made if m]


def mutate(value: str, how: int, extra: str) -> str:
    """One of the damage patterns a cookie suffers in transit or at an attacker's hands."""
    if how == 0:  # truncated
        return value[: len(extra) % max(1, len(value))]
    if how == 1:  # re-padded: base64 padding added to each part
        return ".".join(p + "=" * (1 + len(extra) % 3) for p in value.split("."))
    if how == 2:  # re-encoded with the standard base64 alphabet
        return value.translate(str.maketrans("-_", "+/"))
    if how == 3:  # percent-encoded, as a careless proxy might
        return urllib.parse.quote(value, safe="") + urllib.parse.quote(extra)
    if how == 4:  # quoted, with junk inside the quotes
        return f'"{value}{extra}"'
    if how == 5:  # oversized
        return value + (extra or "A") * (5000 // max(1, len(extra or "A")))
    if how == 6:  # header injection in the value
        return f"{value}\r\nSet-Cookie: sessionid={extra}; Path=/"
    if how == 7:  # one character changed
        index = len(extra) % max(1, len(value))
        swapped = "A" if value[index : index + 1] != "A" else "B"
        return value[:index] + swapped + value[index + 1 :]
    if how == 8:  # case flipped
        return value.swapcase()
    if how == 9:  # the body of one cookie with the signature of another
        return value.rsplit(".", 1)[0] + "." + (extra * 43)[:43]
    return extra + value  # junk in front


class Harness:
    """A victim session in the store, and both middleware flavours to attack it through."""

    def __init__(self, setup: StoreSetup) -> None:
        self.setup = setup
        config: SessionConfig = setup.config()
        self.wsgi = WSGIClient(config)
        self.asgi = ASGIClient(config)
        setup.stores.append(self.wsgi.store)
        first = self.wsgi.get("/set", query=f"k=secret&v={VICTIM_SECRET}")
        self.victim_cookie = first.cookie_value()
        assert self.victim_cookie
        self.valid = valid_cookies(setup)
        self.foreign = foreign_cookies(setup)
        self.before = sorted(setup.server_contents())

    def close(self) -> None:
        self.asgi.close()

    def check(self, value: str, label: str) -> None:
        """Send ``value`` as the session cookie (alone, and among others) and check the answer."""
        # What a server hands the middleware: the header's bytes, read as latin-1.
        value = value.encode("utf-8").decode("latin-1")
        if self._genuine(value):
            return  # the damage undid itself (for example re-encoding a key with no - or _)
        _cases[label] += 1
        store = self.wsgi.store
        header_forms = [
            f"sessionid={value}",
            f"theme=dark; sessionid={value}; other=1",
        ]
        for header in header_forms:
            for client in (self.wsgi, self.asgi):
                self._expect_fresh(client.get("/read", header), value)
        # Direct load: None or exactly one of our own valid values (a mutation can undo itself).
        loaded = store.load(value)
        assert loaded is None or value in [*self.valid, self.victim_cookie], (label, value)
        # A write through the hostile cookie starts a new session; it never adopts the value.
        written = self.wsgi.get("/set", f"sessionid={value}", "k=mine&v=1")
        assert written.status == 200
        new = written.cookie_value()
        assert new
        assert new != value
        if self.setup.server_side:
            again = self.wsgi.get("/read", f"sessionid={new}")
            assert again.body["data"] == {"mine": "1"}
            self.wsgi.get("/logout", f"sessionid={new}")

    def _genuine(self, value: str) -> bool:
        # What the cookie parser makes of it: blanks, quotes and anything after a ";" go.
        parsed = parse_cookie_value(f"sessionid={value}", "sessionid")
        return parsed in self.valid or parsed == self.victim_cookie

    def _expect_fresh(self, response: Response, value: str) -> None:
        assert response.status == 200, (value, response)
        assert response.body["data"] == {}, (value, response.body)
        assert VICTIM_SECRET not in json.dumps(response.body)
        # A read creates nothing: at most the bad cookie is removed.
        assert all(c.split(";")[0].endswith("=") for c in response.set_cookies()), response

    def finish(self) -> None:
        if self.setup.server_side:
            assert sorted(self.setup.server_contents()) == self.before, (
                "hostile input changed the store"
            )
        victim = self.wsgi.get("/read", f"sessionid={self.victim_cookie}")
        assert victim.body["data"] == {"secret": VICTIM_SECRET}


@pytest.fixture
def rel_harness(rel_setup: StoreSetup):
    harness = Harness(rel_setup)
    try:
        yield harness
        harness.finish()
    finally:
        harness.close()


_HOSTILE_TEXT = (
    st.binary(max_size=scaled(600, 6000)).map(lambda b: b.decode("latin-1"))
    | st.text(max_size=scaled(300, 3000))
    | st.sampled_from(SQL_AND_REDIS)
    | st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        min_size=43,
        max_size=43,
    )
    | st.builds(lambda a, b: a + b, st.sampled_from(SQL_AND_REDIS), st.text(max_size=40))
)


@HOSTILE_SETTINGS
@given(value=_HOSTILE_TEXT)
def test_random_and_injection_like_cookies_give_a_fresh_empty_session(rel_harness, value):
    rel_harness.check(value, f"{rel_harness.setup.kind}: random, SQL- and Redis-like")


@HOSTILE_SETTINGS
@given(
    pick=st.integers(min_value=0, max_value=2), how=st.integers(0, 10), extra=st.text(max_size=60)
)
def test_damaged_real_cookies_give_a_fresh_empty_session(rel_harness, pick, how, extra):
    value = mutate(rel_harness.valid[pick], how, extra)
    rel_harness.check(value, f"{rel_harness.setup.kind}: damaged real cookies")


@HOSTILE_SETTINGS
@given(
    pick=st.integers(min_value=0, max_value=20), how=st.integers(0, 11), extra=st.text(max_size=20)
)
def test_foreign_signatures_give_a_fresh_empty_session(rel_harness, pick, how, extra):
    value = rel_harness.foreign[pick % len(rel_harness.foreign)]
    if how <= 10:
        value = mutate(value, how, extra) if how % 2 else value
    rel_harness.check(value, f"{rel_harness.setup.kind}: other keys, salts and stores")


@pytest.fixture(autouse=True, scope="module")
def _report_cases():
    yield
    for label, count in sorted(_cases.items()):
        record_figure("hostile input", f"{label}: {count} cookies, each through WSGI and ASGI")
    record_figure("hostile input", f"total: {sum(_cases.values())} hostile cookies")


def test_the_victim_and_the_store_are_untouched_after_the_attacks(rel_harness):
    """The hypothesis tests above end with this check too; here it runs on a fixed sample."""
    for value in [*SQL_AND_REDIS, *rel_harness.foreign]:
        rel_harness.check(value, f"{rel_harness.setup.kind}: fixed sample")


def test_replayed_expired_session_gives_a_fresh_empty_session(rel_setup):
    """A session saved with a one-second life, replayed after it ended, is gone on every store
    (the server enforces it, not only the cookie's Max-Age)."""
    store = rel_setup.store()
    record = make_record({"user": "alice"}, ttl=1, expiry=1)
    key = store.save(None, record, _everything(record))
    assert store.load(key) is not None
    time.sleep(2.1)
    client = WSGIClient(rel_setup.config())
    rel_setup.stores.append(client.store)
    response = client.get("/read", f"sessionid={key}")
    assert response.body["data"] == {}
    assert response.cookie_value() == ""  # the dead cookie is removed
    assert store.load(key) is None
