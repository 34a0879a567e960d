"""Finding the session cookie in a ``Cookie`` request header."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session_core._http import MAX_COOKIE_HEADER_BYTES, parse_cookie_value
from session_core.asgi import SessionMiddleware as ASGIMiddleware
from session_core.asgi import _key_from_headers
from session_core.store import Changes
from session_core.testing import MemoryStore, make_record
from session_core.wsgi import SessionMiddleware as WSGIMiddleware


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("sessionid=abc", "abc"),
        ("theme=dark; sessionid=abc; other=1", "abc"),
        ("theme=dark;sessionid=abc", "abc"),
        ("xsessionid=nope; sessionid=abc", "abc"),
        ("sessionidx=nope; sessionid=abc", "abc"),
        ("other=sessionid=nope; sessionid=abc", "abc"),
        ("other=a sessionid=nope", None),
        ('sessionid="abc"', "abc"),
        ('sessionid="', '"'),
        ("sessionid=", None),
        ("sessionid", None),
        ("sessionid=abc; sessionid=def", "abc"),
        ("  \tsessionid = abc ;x=1", "abc"),
        ("sessionid =first; sessionid=second", "first"),
        ("flag; sessionid=abc", "abc"),
        ("sessionid=a=b", "a=b"),
    ],
)
def test_finds_the_first_cookie_of_that_name(header, expected):
    assert parse_cookie_value(header, "sessionid") == expected


# ---------------------------------------------------------------------- hostile headers
# An attacker's request may carry a megabyte of cookies, in one header or in tens of thousands
# of Cookie lines. Only the first MAX_COOKIE_HEADER_BYTES are read, and the lines are joined once.

BOUND = MAX_COOKIE_HEADER_BYTES
KEY = "k" * 43


def filler(size: int) -> str:
    """Cookies ``f0=...; f1=...`` making a header prefix of exactly ``size`` characters (each
    followed by the ``"; "`` that separates it from the next cookie)."""
    parts = []
    left = size
    index = 0
    while left > 0:
        name = f"f{index}="
        chunk = min(4096, left - 2)
        value = "v" * max(0, chunk - len(name))
        parts.append(name + value + "; ")
        left -= len(parts[-1])
        index += 1
    text = "".join(parts)
    assert len(text) == size
    return text


def test_a_cookie_ending_at_the_bound_is_read():
    header = filler(BOUND - len("sessionid=" + KEY)) + "sessionid=" + KEY + "; later=" + "x" * 9000
    assert header.index("; later") == BOUND
    assert parse_cookie_value(header, "sessionid") == KEY


def test_a_cookie_ending_past_the_bound_is_ignored():
    header = filler(BOUND - len("sessionid=" + KEY) + 1) + "sessionid=" + KEY + "; later=1"
    assert parse_cookie_value(header, "sessionid") is None
    # Not read cut short either: its first characters within the bound are not taken for it.
    header = filler(BOUND - 20) + "sessionid=" + KEY
    assert parse_cookie_value(header, "sessionid") is None


def test_one_cookie_longer_than_the_bound_is_ignored():
    assert parse_cookie_value("sessionid=" + "k" * BOUND, "sessionid") is None
    assert parse_cookie_value("sessionid=" + "k" * (BOUND - 10), "sessionid") is not None
    # First in a longer header, as in alone: past the bound, it is not read.
    header = "sessionid=" + "k" * BOUND + "; later=1"
    assert parse_cookie_value(header, "sessionid") is None


def _walk(header: str, name: str) -> str | None:
    """The rule parse_cookie_value follows, spelled out without its shortcut for a session
    cookie that comes first."""
    if len(header) > BOUND:
        header = header[: max(0, header.rfind(";", 0, BOUND + 1))]
    for pair in header.split(";"):
        key, eq, value = pair.partition("=")
        if eq and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None
    return None


_PIECES = st.sampled_from(["sid", "sid=", "=", ";", "; ", " ", '"', "v", "x=1", "sidx=2"])


@settings(max_examples=2000, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=12), padding=st.sampled_from([0, BOUND - 8, BOUND + 8]))
def test_the_first_cookie_shortcut_reads_as_the_walk(pieces, padding):
    header = "".join(pieces)
    if padding:  # a long value somewhere, so that the bound comes into play
        header = header.replace("v", "v" * padding, 1) if "v" in header else header + "v" * padding
    assert parse_cookie_value(header, "sid") == _walk(header, "sid")


def test_a_browser_full_of_maximum_size_cookies_is_read_whole():
    # Browsers keep up to 4096 bytes of name and value a cookie: fifteen of those and the
    # session cookie, last, are all within the bound.
    header = "; ".join([f"c{i}=" + "v" * (4096 - len(f"c{i}=")) for i in range(15)])
    header += "; sessionid=" + KEY
    assert len(header) < BOUND
    assert parse_cookie_value(header, "sessionid") == KEY
    assert parse_cookie_value(header, "c14") == "v" * (4096 - 4)


class CountingBytes(bytes):
    """A header value that counts the bytes copied by ``+`` concatenations that end with it."""

    copied = 0

    def __radd__(self, other: bytes) -> bytes:
        CountingBytes.copied += len(other) + len(self)
        return bytes(other) + bytes(self)


def test_many_cookie_lines_are_joined_once_not_line_by_line():
    # Joining line by line copies the growing header again for every line: 2000 lines of 20
    # bytes would copy about 40 MB. Joined once, nothing is copied by ``+``.
    CountingBytes.copied = 0
    headers = [(b"host", b"x")] + [
        (b"cookie", CountingBytes(b"c%05d=%012d" % (i, i))) for i in range(2000)
    ]
    assert _key_from_headers(headers, "sessionid") is None
    total = sum(len(value) for _, value in headers)
    assert CountingBytes.copied <= 2 * total


def test_cookie_lines_are_read_up_to_the_bound():
    line = b"c=" + b"v" * 998
    before = [(b"cookie", line)] * (BOUND // 1002 - 1)
    session = [(b"cookie", b"sessionid=" + KEY.encode())]
    assert _key_from_headers([*before, *session], "sessionid") == KEY
    after_bound = [(b"cookie", line)] * (BOUND // 1002 + 1)
    assert _key_from_headers([*after_bound, *session], "sessionid") is None
    # Lines past the bound are not even looked at: a generator is not run to its end.
    looked_at = []

    def lines():
        for index in range(100_000):
            looked_at.append(index)
            yield (b"cookie", line)

    assert _key_from_headers(lines(), "sessionid") is None
    assert len(looked_at) <= BOUND // 1000 + 2


# Through every door that reads the Cookie header: the WSGI and ASGI middleware and Flask.

SECRET = "h" * 40
JUNK = "; ".join(f"j{i}=v" for i in range(200_000))  # about 2 MB


def _read_app(environ, start_response):
    value = environ["session_core.session"].get("n")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [repr(value).encode()]


async def _read_asgi_app(scope, receive, send):
    body = repr(scope["session"].get("n")).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _flask_app(store):
    import flask

    from session_core.integrations.flask import init_app

    app = flask.Flask(__name__)
    app.config["SESSION_COOKIE_NAME"] = "sessionid"  # Flask's default name is "session"
    init_app(app, secret_key=SECRET, store=store)

    @app.get("/")
    def read():
        return repr(flask.session.get("n"))

    return app


def _wsgi_get(app, header):
    seen = []
    body = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_COOKIE": header}, lambda *a: seen)
    return b"".join(body).decode()


def _asgi_get(app, lines):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": lines}
    asyncio.run(app(scope, receive, send))
    return b"".join(m.get("body", b"") for m in sent).decode()


@pytest.fixture
def stored():
    store = MemoryStore()
    key = store.save(None, make_record({"n": 7}), Changes(frozenset({"n"})))
    return store, key


@pytest.mark.parametrize("door", ["wsgi", "flask"])
def test_wsgi_doors_read_only_the_first_bytes_of_the_header(door, stored):
    store, key = stored
    if door == "wsgi":
        app = WSGIMiddleware(_read_app, secret_key=SECRET, store=store)
        get = partial(_wsgi_get, app)
    else:
        # use_cookies=False: the test client would replace the Cookie header with its own jar.
        client = _flask_app(store).test_client(use_cookies=False)

        def get(header):
            return client.get("/", headers={"Cookie": header}).get_data(as_text=True)

    assert get(f"sessionid={key}; {JUNK}") == "7"
    assert get(f"{JUNK}; sessionid={key}") == "None"


def test_asgi_reads_only_the_first_bytes_of_its_cookie_lines(stored):
    store, key = stored
    app = ASGIMiddleware(_read_asgi_app, secret_key=SECRET, store=store)
    junk = [(b"cookie", f"j{i}=v".encode()) for i in range(60_000)]
    session = [(b"cookie", f"sessionid={key}".encode())]
    assert _asgi_get(app, [*session, *junk]) == "7"
    assert _asgi_get(app, [*junk, *session]) == "None"
    assert _asgi_get(app, [(b"cookie", f"sessionid={key}; {JUNK}".encode())]) == "7"
