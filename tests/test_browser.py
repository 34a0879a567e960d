"""The demo in a real browser: Debian's headless Chromium, driven by Playwright.

This test fails (it is never skipped) when Chromium is missing: ``bash .ci/packages`` installs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

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


def test_sign_in_survives_navigation_and_ends_at_sign_out(live_demo, tmp_path):
    assert CHROMIUM.exists() or shutil.which("chromium"), (
        "Chromium is missing: install Debian's chromium package (bash .ci/packages)"
    )
    demo = live_demo(SESSION_CORE_SECRET_KEY=SECRET)
    profile = tmp_path / "profile"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            page = context.new_page()
            page.goto(demo.url + "/")
            expect(page.locator("#visits")).to_have_text("1")
            expect(page.locator("#user-state")).to_have_text("You are not signed in.")
            page.reload()
            expect(page.locator("#visits")).to_have_text("2")
            anonymous = _session_cookie(page)
            assert anonymous

            page.fill("input[name=name]", "Ada <Lovelace>")
            page.check("input[name=remember]")
            page.click("text=Sign in")
            expect(page.locator(".flash")).to_have_text(
                "Welcome, Ada <Lovelace>! You are signed in."
            )
            expect(page.locator("#user")).to_have_text("Ada <Lovelace>")
            expect(page.locator("#visits")).to_have_text("3")  # cycle_key kept the data
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
