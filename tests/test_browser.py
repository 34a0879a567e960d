"""The demo in a real browser: Debian's headless Chromium, driven by Playwright.

Every page is opened, screenshotted (into the test's tmp_path, or into the folder named by
``SESSION_CORE_TEST_SCREENSHOTS``, to look at them) and checked for text that overflows its box.
This test fails (it is never skipped) when Chromium is missing: ``bash .ci/packages`` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from session_core import SessionConfig
from session_core.demo import DemoApp
from session_core.testing import OutageStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "browser-test-secret-" + "b" * 40


def _session_cookie(page: Page) -> str | None:
    for cookie in page.context.cookies():
        if cookie["name"] == "sessionid":
            return cookie["value"]
    return None


@contextmanager
def _browser(tmp_path: Path) -> Iterator[BrowserContext]:
    assert CHROMIUM.exists() or shutil.which("chromium"), (
        "Chromium is missing: install Debian's chromium package (bash .ci/packages)"
    )
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 800, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def test_your_sessions_page_signs_out_another_device(live_demo, redis_app_env):
    """Two browser contexts (two devices, each its own cookie jar) signed in as one user on the
    redis store: the first lists both, marks itself, and signs the other out; the other's next
    page is a fresh anonymous session."""
    demo = live_demo(**redis_app_env)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            laptop = browser.new_context(user_agent="Laptop browser").new_page()
            phone = browser.new_context(user_agent="Phone browser").new_page()
            for page in (laptop, phone):
                page.goto(demo.url + "/")
                page.fill("input[name=name]", "Ada")
                page.click("text=Sign in")
                expect(page.locator("#user")).to_have_text("Ada")

            laptop.click("text=Your sessions")
            expect(laptop.locator("#session-count")).to_have_text("2")
            rows = laptop.locator("#session-list tr.device")
            expect(rows).to_have_count(2)
            expect(laptop.locator("tr.current")).to_contain_text("Laptop browser")
            expect(laptop.locator("tr.current .this-device")).to_have_text("(this device)")
            expect(laptop.locator("tr.device:not(.current)")).to_contain_text("Phone browser")

            laptop.click("text=Sign out other sessions")
            expect(laptop.locator(".flash")).to_have_text("Signed out of 1 other session(s).")
            expect(rows).to_have_count(1)

            phone.reload()
            expect(phone.locator("#user-state")).to_have_text("You are not signed in.")
            expect(phone.locator("#visits")).to_have_text("1")

            laptop.click("text=Sign out everywhere")
            expect(laptop.locator(".flash")).to_have_text("Signed out everywhere (1 session(s)).")
            expect(laptop.locator("#sessions-unavailable")).to_contain_text("Sign in")
        finally:
            browser.close()


def _look_at(page: Page, tmp_path: Path, name: str) -> None:
    """Screenshot the page, and fail if any text box is wider than the room it has (a line cut
    off at the edge, or one that needs a scroll bar to read)."""
    folder = Path(os.environ.get("SESSION_CORE_TEST_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    expect(page.locator("style")).to_have_count(1)  # every page is styled, errors included
    clipped = page.evaluate(
        """() => [...document.querySelectorAll('body, h1, p, pre, dd, dt, nav, code')]
            .filter(e => e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0)
            .map(e => e.tagName + (e.id ? '#' + e.id : '') + ': ' + e.textContent.slice(0, 60))"""
    )
    assert clipped == [], f"{name}: text wider than its box: {clipped}"
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{name}: the page scrolls sideways"


def test_sign_in_survives_navigation_and_ends_at_sign_out(live_demo, tmp_path):
    demo = live_demo(SESSION_CORE_SECRET_KEY=SECRET)
    with _browser(tmp_path) as context:
        page = context.new_page()
        page.goto(demo.url + "/")
        expect(page.locator("#visits")).to_have_text("1")
        expect(page.locator("#user-state")).to_have_text("You are not signed in.")
        page.reload()
        expect(page.locator("#visits")).to_have_text("2")
        _look_at(page, tmp_path, "home")
        anonymous = _session_cookie(page)
        assert anonymous

        page.fill("input[name=name]", "Ada <Lovelace>")
        page.check("input[name=remember]")
        page.click("text=Sign in")
        expect(page.locator(".flash")).to_have_text(
            "Welcome, Ada <Lovelace>! You are signed in, under a new session key."
        )
        expect(page.locator("#user")).to_have_text("Ada <Lovelace>")
        expect(page.locator("#visits")).to_have_text("3")  # cycle_key kept the data
        _look_at(page, tmp_path, "home-signed-in")
        assert _session_cookie(page) not in (None, anonymous)
        cookie = next(c for c in context.cookies() if c["name"] == "sessionid")
        assert cookie["httpOnly"] is True
        assert cookie["expires"] > 0  # remembered: a persistent cookie

        # The session survives navigation; the flash was shown once only.
        page.click("text=Session details")
        expect(page.locator("h1")).to_have_text("Session details")
        expect(page.locator(".flash")).to_have_count(0)
        expect(page.locator("#store")).to_contain_text("cookie")
        expect(page.locator("#data")).to_contain_text('"user": "Ada <Lovelace>"')
        expect(page.locator("#about")).to_contain_text("keeps the whole session in the cookie")
        _look_at(page, tmp_path, "details-cookie")
        page.click("text=Forget me at browser close")
        expect(page.locator("#expires")).to_contain_text("when the browser closes")
        cookie = next(c for c in context.cookies() if c["name"] == "sessionid")
        assert cookie["expires"] == -1  # now a browser-session cookie
        page.click("nav >> text=Home")
        expect(page.locator("#user")).to_have_text("Ada <Lovelace>")
        expect(page.locator("#visits")).to_have_text("4")
        page.go_back()
        page.reload()
        expect(page.locator("#data")).to_contain_text('"user": "Ada <Lovelace>"')

        # Sign-out ends it: data gone, counting starts again.
        page.click("nav >> text=Home")
        page.click("text=Sign out")
        expect(page.locator(".flash")).to_have_text(
            "You are signed out. Your session data is gone."
        )
        expect(page.locator("#user-state")).to_have_text("You are not signed in.")
        expect(page.locator("#visits")).to_have_text("1")
        page.click("text=Session details")
        expect(page.locator("#data")).not_to_contain_text("Ada")


REDIS_URL = os.environ.get("SESSION_CORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def test_every_other_page_is_styled_and_fits(live_demo, tmp_path):
    demo = live_demo("--store", "redis", "--store-option", f"url={REDIS_URL}")
    with _browser(tmp_path) as context:
        page = context.new_page()
        page.goto(demo.url + "/")
        page.goto(demo.url + "/session")
        expect(page.locator("#where")).to_have_text(REDIS_URL)
        expect(page.locator("#about")).to_contain_text("The cookie holds only the key")
        _look_at(page, tmp_path, "details-redis")
        page.goto(demo.url + "/sign-in")
        expect(page.locator("h1")).to_have_text("Method not allowed")
        _look_at(page, tmp_path, "405")
        page.click("text=home page")
        expect(page.locator("#visits")).to_have_text("2")
        page.goto(demo.url + "/nowhere")
        expect(page.locator("h1")).to_have_text("Not found")
        _look_at(page, tmp_path, "404")
        # Leave nothing behind in the test database: sign-out flushes, and the details page
        # takes the sign-out message, which empties the session, which deletes its record.
        page.request.post(demo.url + "/sign-out", max_redirects=0)
        page.goto(demo.url + "/session")
        page.reload()
        expect(page.locator("#key")).to_have_text("none: nothing is saved yet")


def _down_store() -> OutageStore:
    """A server-side store whose server is down, with a long address and a long error."""
    store = OutageStore(
        "ConnectionError: Error 111 connecting to sessions-primary.eu-west-1."
        "example-internal-network.test:6379. Connection refused."
    )
    store.target = "redis://sessions-primary.eu-west-1.example-internal-network.test:6379/0"
    store.fail()
    return store


def test_the_store_unavailable_page_shows_the_whole_error(live_asgi_server, tmp_path, capsys):
    url = live_asgi_server(DemoApp(SessionConfig(secret_key=SECRET, store=_down_store())))
    with _browser(tmp_path) as context:
        context.add_cookies([{"name": "sessionid", "value": "x" * 43, "url": url}])
        page = context.new_page()
        response = page.goto(url + "/")
        assert response is not None
        assert response.status == 503
        expect(page.locator("h1")).to_have_text("Store unavailable")
        expect(page.locator("pre")).to_contain_text("start the server")
        _look_at(page, tmp_path, "503")
    assert "503, the store failed" in capsys.readouterr().err
