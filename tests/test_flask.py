"""The Flask integration, driven over real HTTP: Flask apps under waitress, a client that keeps
cookies and follows redirects. Also the plain WSGI middleware under the same server."""

from __future__ import annotations

import subprocess
import sys

import flask
import httpx
import pytest

from session_core import ConfigurationError, SessionConfig
from session_core.integrations.flask import EXTENSION_KEY, FlaskSession, init_app
from session_core.testing import MemoryStore
from session_core.wsgi import SessionMiddleware as WSGISessionMiddleware

SECRET = "flask-test-secret-" + "f" * 40


def make_app(**settings) -> flask.Flask:
    app = flask.Flask(__name__)
    init_app(app, secret_key=SECRET, **settings)
    session = flask.session

    @app.get("/")
    def index():
        session["visits"] = session.get("visits", 0) + 1
        return {"visits": session["visits"], "user": session.get("user")}

    @app.get("/untouched")
    def untouched():
        return "nothing to do with sessions"

    @app.get("/info")
    def info():
        return {
            "type": type(session._get_current_object()).__name__,
            "user": session.get("user"),
            "permanent": session.permanent,
            "new": session.new,
            "cart": session.get("cart", []),
        }

    @app.post("/login")
    def login():
        session.cycle_key()
        session["user"] = flask.request.form["name"]
        session.permanent = flask.request.form.get("remember") == "1"
        flask.flash("welcome")
        return flask.redirect("/info")

    @app.post("/logout")
    def logout():
        session.flush()
        return flask.redirect("/info")

    @app.get("/cart/<item>")
    def add(item):
        session.setdefault("cart", []).append(item)  # changed in place: still saved
        return {"cart": session["cart"]}

    @app.get("/flashes")
    def flashes():
        return {"flashes": flask.get_flashed_messages()}

    @app.get("/boom")
    def boom():
        session["doomed"] = True
        raise RuntimeError("boom")

    return app


@pytest.fixture(params=["cookie", "memory"])
def flask_server(request, live_wsgi_server):
    store = "cookie" if request.param == "cookie" else MemoryStore()
    app = make_app(store=store)
    url = live_wsgi_server(app)
    with httpx.Client(base_url=url, follow_redirects=True, timeout=10) as client:
        yield request.param, client


def test_session_is_a_dict_that_survives_requests(flask_server, live_checks):
    _, client = flask_server
    live_checks.counter_then_untouched(client)
    info = client.get("/info").json()
    assert info["type"] == "FlaskSession"
    assert info["permanent"] is True
    assert info["new"] is False


def test_login_cycles_the_key_and_permanent_maps_to_expiry(flask_server, live_checks):
    kind, client = flask_server
    client.get("/")
    before = client.cookies["sessionid"]
    response = client.post("/login", data={"name": "ada"})
    login_cookie = response.history[0].headers["set-cookie"]
    assert "Max-Age" not in login_cookie  # permanent = False: ends at browser close
    assert response.json()["user"] == "ada"
    assert response.json()["permanent"] is False
    assert client.cookies["sessionid"] != before
    assert client.get("/flashes").json() == {"flashes": ["welcome"]}
    assert client.get("/flashes").json() == {"flashes": []}
    if kind == "memory":  # a server-side store forgets the old key
        stale = live_checks.as_another_browser(client, "/info", before)
        assert stale.json()["user"] is None
        assert stale.json()["new"] is True

    remembered = client.post("/login", data={"name": "ada", "remember": "1"})
    assert "Max-Age=1209600" in remembered.history[0].headers["set-cookie"]
    assert remembered.json()["permanent"] is True


def test_logout_flushes_and_deletes_the_cookie(flask_server, live_checks):
    kind, client = flask_server
    client.post("/login", data={"name": "ada", "remember": "1"})
    signed_in = client.cookies["sessionid"]
    response = client.post("/logout")
    assert "Max-Age=0" in response.history[0].headers["set-cookie"]
    assert "sessionid" not in client.cookies
    assert response.json()["user"] is None
    if kind == "memory":
        stale = live_checks.as_another_browser(client, "/info", signed_in)
        assert stale.json()["user"] is None


def test_in_place_changes_are_saved(flask_server):
    _, client = flask_server
    client.get("/cart/apple")
    assert client.get("/cart/pear").json() == {"cart": ["apple", "pear"]}
    assert client.get("/info").json()["cart"] == ["apple", "pear"]


def test_an_error_response_saves_nothing(flask_server):
    _, client = flask_server
    client.get("/")
    before = client.cookies["sessionid"]
    assert client.get("/boom").status_code == 500
    assert client.cookies["sessionid"] == before
    assert client.get("/").json()["visits"] == 2


# ---------------------------------------------------------------------- configuration


def test_settings_come_from_app_config_env_and_arguments(monkeypatch):
    monkeypatch.setenv("SESSION_CORE_COOKIE_NAME", "from_env")
    monkeypatch.setenv("SESSION_CORE_COOKIE_PATH", "/env")
    app = flask.Flask(__name__)
    app.secret_key = SECRET
    app.config["SESSION_CORE"] = {"cookie_path": "/app"}
    interface = init_app(app, cookie_secure=True)
    assert app.session_interface is interface
    assert app.extensions[EXTENSION_KEY] is interface
    config = interface.config
    assert config.secret_key == SECRET  # app.secret_key, being long enough
    assert (config.cookie_name, config.cookie_path, config.cookie_secure) == (
        "from_env",
        "/app",
        True,
    )


def test_a_short_flask_secret_is_not_used(monkeypatch):
    monkeypatch.delenv("SESSION_CORE_SECRET_KEY", raising=False)
    app = flask.Flask(__name__)
    app.secret_key = "short"
    with pytest.raises(ConfigurationError, match="SECRET_KEY is only 5 bytes"):
        init_app(app)
    app.config["SESSION_CORE"] = {"secret_key": SECRET}
    assert init_app(app).config.secret_key == SECRET


def test_an_explicit_config_wins():
    app = flask.Flask(__name__)
    interface = init_app(app, SessionConfig(secret_key=SECRET), cookie_name="explicit")
    assert interface.config.cookie_name == "explicit"
    with app.test_request_context("/"):
        assert isinstance(flask.session._get_current_object(), FlaskSession)


def test_modified_can_be_set_after_an_unseen_change(live_wsgi_server):
    app = flask.Flask(__name__)
    init_app(app, secret_key=SECRET)

    @app.get("/")
    def index():
        flask.session["n"] = 1
        return "ok"

    @app.get("/resave")
    def resave():
        flask.session.modified = True
        return str(flask.session.modified)

    @app.get("/noop")
    def noop():
        flask.session.modified = False
        return str(flask.session.modified)

    url = live_wsgi_server(app)
    with httpx.Client(base_url=url, timeout=10) as client:
        client.get("/")
        assert client.get("/noop").text == "False"
        resaved = client.get("/resave")
        assert resaved.text == "True"
        assert "set-cookie" in resaved.headers


def test_vary_cookie_is_added_once_beside_the_apps_own_vary():
    app = flask.Flask(__name__)
    init_app(app, secret_key=SECRET)

    @app.get("/plain")
    def plain():
        return str(flask.session.get("n"))

    @app.get("/negotiated")
    def negotiated():
        response = flask.make_response(str(flask.session.get("n")))
        response.headers["Vary"] = "Accept-Encoding, cookie"  # already varies by cookie
        return response

    @app.get("/encoded")
    def encoded():
        response = flask.make_response(str(flask.session.get("n")))
        response.headers["Vary"] = "Accept-Encoding"
        return response

    client = app.test_client()
    assert client.get("/plain").headers.getlist("Vary") == ["Cookie"]
    assert client.get("/negotiated").headers.getlist("Vary") == ["Accept-Encoding, cookie"]
    assert client.get("/encoded").headers.getlist("Vary") == ["Accept-Encoding, Cookie"]


# ---------------------------------------------------------------------- plain WSGI


def test_plain_wsgi_app_under_waitress(live_wsgi_server):
    def app(environ, start_response):
        session = environ["session_core.session"]
        if environ["PATH_INFO"] == "/logout":
            session.flush()
        else:
            session["visits"] = session.get("visits", 0) + 1
        body = str(session.get("visits", 0)).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    url = live_wsgi_server(WSGISessionMiddleware(app, secret_key=SECRET, store=MemoryStore()))
    with httpx.Client(base_url=url, timeout=10) as client:
        assert [client.get("/").text for _ in range(3)] == ["1", "2", "3"]
        assert client.get("/logout").text == "0"
        assert "sessionid" not in client.cookies
        assert client.get("/").text == "1"


def test_importing_session_core_imports_no_framework():
    code = (
        "import sys, session_core, session_core.integrations, session_core.wsgi, "
        "session_core.asgi, session_core.cli, session_core.demo\n"
        "loaded = [m for m in ('flask', 'django', 'starlette', 'fastapi', 'uvicorn') "
        "if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
