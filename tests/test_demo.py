"""The demo app: started as ``session-core demo`` in a subprocess and driven over real HTTP by a
client that keeps cookies and follows redirects as a browser does."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading

import httpx
import pytest

from session_core import SessionConfig
from session_core import demo as demo_module
from session_core.cli import main
from session_core.demo import DemoApp, DemoError, demo_config, serve
from session_core.store import Changes, SessionRecord
from session_core.testing import OutageStore

SECRET = "demo-test-secret-" + "s" * 40


def _visits(page: httpx.Response) -> int:
    found = re.search(r'id="visits">(\d+)<', page.text)
    assert found, page.text
    return int(found.group(1))


def _field(page: httpx.Response, name: str) -> str:
    found = re.search(rf'<dd id="{name}">([^<]*)</dd>', page.text)
    assert found, page.text
    return found.group(1)


def _session_cookie(response: httpx.Response) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith("sessionid=")]
    assert len(headers) == 1, response.headers
    return headers[0]


def test_journey_on_the_cookie_store(live_demo):
    demo = live_demo()
    assert any("will not survive a restart" in line for line in demo.banner), demo.banner
    assert any(demo.url in line and "'cookie'" in line for line in demo.banner)

    with httpx.Client(base_url=demo.url, follow_redirects=True, timeout=10) as client:
        first = client.get("/")
        assert first.status_code == 200
        assert _visits(first) == 1
        assert "not signed in" in first.text
        assert "Cookie" in first.headers["vary"]
        assert _visits(client.get("/")) == 2

        details = client.get("/session")
        assert _field(details, "store").startswith("cookie ")
        assert _field(details, "where").startswith("the cookie itself")
        # The cookie store has no key: the cookie holds the data, which is not called a key.
        assert 'id="key"' not in details.text
        assert re.match(
            r"the session data itself, signed, not encrypted \(base64 JSON\): \S{10}… \(\d+ chars\)",
            _field(details, "cookie-holds"),
        )
        assert re.match(r"\d+ bytes as your browser sent it", _field(details, "cookie"))
        assert "unless used again" in _field(details, "expires")
        assert "keeps the whole session in the cookie" in details.text
        before_sign_in = client.cookies["sessionid"]

        # Sign in without "remember me": a browser-session cookie, a flash, HTML escaped.
        signed_in = client.post("/sign-in", data={"name": "<b>Ada</b>"})
        assert signed_in.url.path == "/"
        assert signed_in.history[0].status_code == 303
        login_cookie = _session_cookie(signed_in.history[0])
        assert "Max-Age" not in login_cookie
        assert "Expires" not in login_cookie
        assert "HttpOnly" in login_cookie
        assert "SameSite=Lax" in login_cookie
        assert client.cookies["sessionid"] != before_sign_in
        assert "&lt;b&gt;Ada&lt;/b&gt;" in signed_in.text
        assert "<b>Ada</b>" not in signed_in.text
        assert "Welcome, &lt;b&gt;Ada&lt;/b&gt;! You are signed in" in signed_in.text
        assert _visits(signed_in) == 3  # cycle_key kept the data

        # The flash survived exactly one redirect.
        again = client.get("/")
        assert "Welcome" not in again.text
        assert "Signed in as" in again.text
        assert _visits(again) == 4
        assert "when the browser closes" in _field(client.get("/session"), "expires")

        # Remember me: the two-week default.
        remembered = client.post("/remember", data={"remember": "1", "next": "/session"})
        assert remembered.url.path == "/session"
        assert "Max-Age=1209600" in _session_cookie(remembered.history[0])
        assert "unless used again" in _field(remembered, "expires")
        assert "stay signed in for 2 weeks" in remembered.text

        # Sign out: flush() forgets everything; the flash starts a new session.
        signed_out = client.post("/sign-out")
        assert "You are signed out" in signed_out.text
        assert "not signed in" in signed_out.text
        assert _visits(signed_out) == 1


def test_secret_from_the_environment_survives_a_restart(live_demo):
    first = live_demo(SESSION_CORE_SECRET_KEY=SECRET)
    assert not any("restart" in line for line in first.banner)
    with httpx.Client(base_url=first.url, follow_redirects=True, timeout=10) as client:
        client.post("/sign-in", data={"name": "grace", "remember": "1"})
        cookie = client.cookies["sessionid"]
    first.stop()

    second = live_demo(SESSION_CORE_SECRET_KEY=SECRET)
    with httpx.Client(base_url=second.url, cookies={"sessionid": cookie}, timeout=10) as client:
        assert 'Signed in as <strong id="user">grace</strong>' in client.get("/").text


def test_unknown_paths_and_methods(live_demo):
    demo = live_demo(SESSION_CORE_SECRET_KEY=SECRET)
    with httpx.Client(base_url=demo.url, timeout=10) as client:
        assert client.get("/nowhere").status_code == 404
        wrong = client.get("/sign-in")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "POST"
        assert client.post("/").status_code == 405
        empty_name = client.post("/sign-in", data={"name": "   "}, follow_redirects=True)
        assert "Type a name to sign in." in empty_name.text
        # A page that reads no session data costs no cookie.
        assert "set-cookie" not in client.get("/nowhere").headers


# ---------------------------------------------------------------------- failures


class FlakyStore(OutageStore):
    """A server-side store that can be switched off (``fail()``), or made to hang until
    released."""

    name = "flaky"

    def __init__(self) -> None:
        super().__init__()
        self.hang: threading.Event | None = None  # set to hang every call until it is set
        self.hanging = threading.Event()  # set once a call hangs

    def _maybe_hang(self) -> None:
        if self.hang is not None:
            self.hanging.set()
            self.hang.wait(60)  # bounded, so a failed test cannot keep the thread forever

    def load(self, key: str) -> SessionRecord | None:
        self._maybe_hang()
        return super().load(key)

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        self._maybe_hang()
        return super().save(key, record, changes)


def test_a_store_that_goes_down_gives_503_pages(live_asgi_server, capsys):
    store = FlakyStore()
    url = live_asgi_server(DemoApp(SessionConfig(secret_key=SECRET, store=store)))
    with httpx.Client(base_url=url, follow_redirects=True, timeout=10) as client:
        assert _visits(client.get("/")) == 1
        store.fail()
        for path in ("/", "/session"):
            page = client.get(path)
            assert page.status_code == 503
            assert "is not available right now" in page.text
            assert page.headers["retry-after"] == "5"
        store.recover()
        assert _visits(client.get("/")) == 2
    assert "503, the store failed" in capsys.readouterr().err


def test_a_store_that_hangs_gives_503_not_a_hang(live_asgi_server, monkeypatch, capsys):
    monkeypatch.setattr(demo_module, "REQUEST_TIMEOUT", 0.3)
    store = FlakyStore()
    url = live_asgi_server(DemoApp(SessionConfig(secret_key=SECRET, store=store)))
    with httpx.Client(base_url=url, timeout=10) as client:
        client.get("/")
        store.hang = threading.Event()
        try:
            page = client.get("/")
            # The answer came while the store was still hanging: the demo did not wait for it.
            assert page.status_code == 503
            assert store.hanging.is_set()
            assert not store.hang.is_set()
        finally:
            store.hang.set()
    assert "no answer within" in capsys.readouterr().err


def test_a_store_down_at_start_stops_the_demo_with_one_line(monkeypatch, capsys):
    store = FlakyStore()
    store.fail()
    monkeypatch.setattr("session_core.asgi.create_store", lambda config: store)
    code = main(["demo", "--store", "flaky", "--port", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1, err
    assert "could not load" in err
    assert "--store cookie" in err
    assert "Traceback" not in err


def test_without_uvicorn_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(
        DemoError,
        match=r"pip install 'session-core\[demo\]' \(or, from a clone of session-core, pip install '\.\[demo\]'\)",
    ):
        serve(port=1)


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["--store", "no-such-store"], 2, "no session store named 'no-such-store'"),
        (["--config", "missing.toml"], 2, "cannot read the configuration file"),
        (["--store-option", "url"], 2, "write NAME=VALUE"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(args, code, expected, tmp_path, live_clean_env):
    result = subprocess.run(
        [sys.executable, "-m", "session_core", "demo", *args],
        cwd=tmp_path,
        env=live_clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == code, result.stderr
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def _run_demo(tmp_path, live_clean_env, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``session-core demo ARGS`` with a secret, to the end (these runs fail at start)."""
    return subprocess.run(
        [sys.executable, "-m", "session_core", "demo", *args],
        cwd=tmp_path,
        env=live_clean_env(SESSION_CORE_SECRET_KEY=SECRET),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_busy_port_is_one_line(tmp_path, live_clean_env):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run_demo(tmp_path, live_clean_env, "--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "another program uses that port: choose another one with --port" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------- configuration


def test_config_generates_a_secret_only_when_none_is_set(tmp_path):
    config, generated = demo_config(environ={})
    assert generated
    assert len(config.secret_key) >= 32
    assert config.store == "cookie"
    config, generated = demo_config(environ={"SESSION_CORE_SECRET_KEY": SECRET})
    assert not generated
    assert config.secret_key == SECRET


def test_config_file_env_and_command_line_in_that_order(tmp_path):
    file = tmp_path / "session.toml"
    file.write_text(
        f'secret_key = "{SECRET}"\nstore = "redis"\ncookie_name = "fromfile"\n'
        '[store_options]\nurl = "redis://10.0.0.1"\n'
    )
    env = {"SESSION_CORE_COOKIE_NAME": "fromenv"}
    config, generated = demo_config(file, environ=env)
    assert not generated
    assert (config.store, config.cookie_name) == ("redis", "fromenv")
    assert dict(config.store_options) == {"url": "redis://10.0.0.1"}
    # The same store keeps its options; another store does not inherit them.
    config, _ = demo_config(file, store="redis", environ=env)
    assert dict(config.store_options) == {"url": "redis://10.0.0.1"}
    config, _ = demo_config(file, store="db", environ=env)
    assert (config.store, dict(config.store_options)) == ("db", {})
    config, _ = demo_config(file, store="db", store_options={"url": "sqlite:///x"}, environ=env)
    assert dict(config.store_options) == {"url": "sqlite:///x"}


# ---------------------------------------------------------------------- what the demo says

REDIS_URL = os.environ.get("SESSION_CORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def test_the_lifetime_shown_is_the_configured_one(live_demo):
    demo = live_demo(SESSION_CORE_SECRET_KEY=SECRET, SESSION_CORE_COOKIE_MAX_AGE="3600")
    with httpx.Client(base_url=demo.url, follow_redirects=True, timeout=10) as client:
        assert "Remember me for 1 hour" in client.get("/").text
        client.post("/sign-in", data={"name": "ada"})
        remembered = client.post("/remember", data={"remember": "1", "next": "/"})
        assert "stay signed in for 1 hour" in remembered.text
        assert "weeks" not in remembered.text


def test_details_of_a_visitor_with_nothing_saved(live_demo):
    demo = live_demo(SESSION_CORE_SECRET_KEY=SECRET)
    with httpx.Client(base_url=demo.url, timeout=10) as client:
        details = client.get("/session")
    assert _field(details, "expires").startswith("nothing: no session is saved yet")
    assert _field(details, "cookie-holds") == "nothing yet"
    assert "set-cookie" not in details.headers


def test_the_cookie_size_says_when_it_still_holds_the_message_shown(live_demo):
    demo = live_demo(SESSION_CORE_SECRET_KEY=SECRET)
    with httpx.Client(base_url=demo.url, follow_redirects=True, timeout=10) as client:
        client.post("/sign-in", data={"name": "ada"})
        with_message = client.post("/remember", data={"remember": "1", "next": "/session"})
        assert "stay signed in" in with_message.text
        assert "with the message shown above in it" in _field(with_message, "cookie")
        without = client.get("/session")
        assert "message" not in _field(without, "cookie")
        # The message is gone from the cookie that came back.
        sent_with = int(_field(with_message, "cookie").split()[0])
        assert int(_field(without, "cookie").split()[0]) < sent_with


def test_a_server_side_store_shows_where_its_data_is(live_demo):
    """On redis, with no secret configured: sessions survive a restart, so the banner does not
    say otherwise; the page names the server and says the cookie holds only the key."""
    demo = live_demo("--store", "redis", "--store-option", f"url={REDIS_URL}")
    assert not any("restart" in line for line in demo.banner), demo.banner
    with httpx.Client(base_url=demo.url, follow_redirects=True, timeout=10) as client:
        client.get("/")
        details = client.get("/session")
        # Leave nothing behind in the test database: sign-out flushes, and the details page
        # takes the sign-out message, which empties the session, which deletes its record.
        client.post("/sign-out", follow_redirects=False)
        client.get("/session")
        assert _field(client.get("/session"), "key") == "none: nothing is saved yet"
    assert _field(details, "where") == REDIS_URL
    assert re.match(r"\S{10}… \(\d+ chars\)", _field(details, "key"))
    assert _field(details, "cookie-holds").startswith("only the session key")
    assert "under a SHA-256 hash of the session key" in details.text
    assert "the old record is deleted" in details.text


def test_a_method_not_allowed_is_a_page(live_demo):
    demo = live_demo(SESSION_CORE_SECRET_KEY=SECRET)
    with httpx.Client(base_url=demo.url, timeout=10) as client:
        page = client.get("/sign-in")
    assert page.status_code == 405
    assert page.headers["allow"] == "POST"
    assert "<h1>Method not allowed</h1>" in page.text
    assert "<style>" in page.text
    assert '<a href="/">home page</a>' in page.text


def test_an_address_that_is_not_this_machines_says_to_choose_another_host(tmp_path, live_clean_env):
    result = _run_demo(tmp_path, live_clean_env, "--host", "192.0.2.1")  # TEST-NET-1
    assert result.returncode == 1
    assert "cannot listen on 192.0.2.1:8000" in result.stderr
    assert "choose one with --host" in result.stderr
    assert "--port" not in result.stderr


CLOSING_STORE = """
import os
import session_core
from session_core.testing import MemoryStore

class ClosingStore(MemoryStore):
    name = "closing"

    def close(self):
        with open(os.environ["CLOSED_MARKER"], "w") as marker:
            marker.write("closed")

@session_core.hookimpl
def session_core_store_api_version():
    return 1

@session_core.hookimpl
def session_core_create_store(config):
    return ClosingStore()
"""


def test_sigterm_closes_the_store(live_demo, tmp_path):
    from plugin_site import Installer

    folder = tmp_path / "site"
    folder.mkdir()
    Installer(folder).install("session-core-closing", "1.0", ["closing"], CLOSING_STORE)
    marker = tmp_path / "closed"
    demo = live_demo(
        "--store",
        "closing",
        SESSION_CORE_SECRET_KEY=SECRET,
        PYTHONPATH=str(folder),
        CLOSED_MARKER=str(marker),
    )
    assert not marker.exists()
    demo.process.send_signal(signal.SIGTERM)
    out, _ = demo.process.communicate(timeout=30)
    assert marker.read_text() == "closed"
    assert "session-core demo stopped" in out
