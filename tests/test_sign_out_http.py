"""Sessions per user over real HTTP: the demo served by uvicorn on the redis store, two
"devices" (clients with their own cookie jars) signed in as one user. Revoking through the app
(the demo's buttons) or through ``session-core sign-out`` with the app's own configuration makes
the other devices' next request arrive as a fresh anonymous session."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

SECRET = "sign-out-http-secret-" + "s" * 40


def _sign_in(demo_url: str, name: str, agent: str) -> httpx.Client:
    client = httpx.Client(
        base_url=demo_url, follow_redirects=True, timeout=10, headers={"user-agent": agent}
    )
    page = client.post("/sign-in", data={"name": name, "remember": "1"})
    assert page.status_code == 200
    assert f"Welcome, {name}!" in page.text
    return client


def _signed_in(client: httpx.Client) -> bool:
    page = client.get("/")
    assert page.status_code == 200
    return 'id="user"' in page.text


def _listed(client: httpx.Client) -> list[str]:
    page = client.get("/sessions")
    assert page.status_code == 200
    return [
        agent.strip() for agent in re.findall(r'<tr class="device[^"]*"><td>([^<]*)', page.text)
    ]


def test_sign_out_other_devices_through_the_app(live_demo, redis_app_env):
    demo = live_demo(**redis_app_env)
    laptop = _sign_in(demo.url, "ada", "Laptop/1.0")
    phone = _sign_in(demo.url, "ada", "Phone/2.0")
    bystander = _sign_in(demo.url, "bob", "Other/3.0")
    try:
        assert sorted(_listed(laptop)) == ["Laptop/1.0", "Phone/2.0"]
        page = laptop.get("/sessions")
        assert page.text.count("(this device)") == 1
        assert re.search(r"Laptop/1\.0 <strong class=\"this-device\">", page.text)
        phone_cookie = phone.cookies["sessionid"]

        done = laptop.post("/sessions/sign-out-others")
        assert "Signed out of 1 other session(s)." in done.text
        assert _signed_in(laptop)
        assert _listed(laptop) == ["Laptop/1.0"]
        # The phone's next request: its cookie names a session that is gone, so it is a new
        # visitor, and the cookie it had is never adopted again.
        assert not _signed_in(phone)
        assert phone.cookies.get("sessionid") != phone_cookie
        assert _signed_in(bystander), "another user's session must be untouched"

        phone.close()
        phone = _sign_in(demo.url, "ada", "Phone/2.0")
        done = phone.post("/sessions/sign-out-everywhere")
        assert "Signed out everywhere (2 session(s))." in done.text
        assert not _signed_in(laptop)
        assert not _signed_in(phone)
        assert _signed_in(bystander)
    finally:
        for client in (laptop, phone, bystander):
            client.close()


def test_sign_out_command_with_the_apps_configuration(
    live_demo, live_clean_env, redis_app_env, tmp_path
):
    demo = live_demo(**redis_app_env)
    devices = [_sign_in(demo.url, "ada", f"Device/{n}") for n in range(3)]
    bystander = _sign_in(demo.url, "bob", "Other/3.0")
    try:
        assert len(_listed(devices[0])) == 3
        result = subprocess.run(
            [sys.executable, "-m", "session_core", "sign-out", "--user", "ada"],
            cwd=tmp_path,
            env=live_clean_env(**redis_app_env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "signed user 'ada' out of 3 sessions\n"
        assert not any(_signed_in(device) for device in devices)
        assert _signed_in(bystander)
    finally:
        for client in (*devices, bystander):
            client.close()


def test_the_cookie_store_explains_why_there_is_no_listing(live_demo):
    demo = live_demo(SESSION_CORE_SECRET_KEY=SECRET)
    client = _sign_in(demo.url, "ada", "Laptop/1.0")
    try:
        page = client.get("/sessions")
        assert page.status_code == 200
        assert 'id="sessions-unavailable"' in page.text
        assert "cannot list or sign out your other sessions" in page.text
        assert "--store redis" in page.text
        assert "Sign in first" in client.post("/sessions/sign-out-others").text
    finally:
        client.close()
