"""The Flask integration, driven over real HTTP (Flask apps under waitress, a client that keeps
cookies and follows redirects) and through Flask's test client: Flask's own settings, permanence,
flashed messages and store outages. Also the plain WSGI middleware under the same server."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from datetime import timedelta

import flask
import httpx
import pytest
from markupsafe import Markup

from session_core import ConfigurationError, SessionConfig, SessionCoreError, StoreUnreachableError
from session_core.integrations.flask import EXTENSION_KEY, FlaskSession, init_app
from session_core.testing import MemoryStore, OutageStore
from session_core.wsgi import SessionMiddleware as WSGISessionMiddleware

SECRET = "flask-test-secret-" + "f" * 40


def make_app(**settings) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(
        SESSION_COOKIE_NAME="sessionid", PERMANENT_SESSION_LIFETIME=timedelta(weeks=2)
    )
    init_app(app, secret_key=SECRET, **settings)
    session = flask.session

    @app.get("/")
    def index():
        session["visits"] = session.get("visits", 0) + 1
        session.permanent = True
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


# ---------------------------------------------------------------------- Flask's own settings


def flask_app(**config: object) -> flask.Flask:
    """A Flask app configured the Flask way (``config`` before init_app), with session views."""
    app = flask.Flask(__name__)
    app.config.update({"SECRET_KEY": SECRET, "TESTING": True, **config})
    return app


def add_session_views(app: flask.Flask, prefix: str = "") -> None:
    @app.get(f"{prefix}/set")
    def set_value():
        flask.session["n"] = flask.request.args.get("n", "1")
        if "permanent" in flask.request.args:
            flask.session.permanent = flask.request.args["permanent"] == "1"
        return {"permanent": flask.session.permanent}

    @app.get(f"{prefix}/write")
    def write():
        flask.session["n"] = flask.request.args.get("n", "1")  # no read: saved without a load
        return "written"

    @app.get(f"{prefix}/read")
    def read():
        return {"n": flask.session.get("n"), "age": flask.session.expiry_age}

    @app.get(f"{prefix}/untouched")
    def untouched():
        return "no session here"

    @app.get(f"{prefix}/clear")
    def clear():
        flask.session.clear()
        return "cleared"


def test_flask_cookie_settings_make_the_cookie_and_its_deletion():
    app = flask_app(
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_DOMAIN=".example.com",
        SESSION_COOKIE_PATH="/app",
        SESSION_COOKIE_HTTPONLY=False,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PARTITIONED=True,
    )
    init_app(app)
    add_session_views(app, "/app")
    client = app.test_client()
    cookie = client.get("/app/set", "https://www.example.com/").headers["Set-Cookie"]
    deletion = client.get("/app/clear", "https://www.example.com/").headers["Set-Cookie"]
    assert cookie.startswith("sid=")
    assert deletion.startswith("sid=;")
    for header in (cookie, deletion):
        attributes = header.split("; ")[1:]
        assert "Domain=example.com" in attributes
        assert "Path=/app" in attributes
        assert "Secure" in attributes
        assert "HttpOnly" not in attributes
        assert "SameSite=Strict" in attributes
        assert "Partitioned" in attributes


def test_application_root_is_the_cookie_path_and_defaults_are_flasks():
    app = flask_app(APPLICATION_ROOT="/shop")
    init_app(app)
    add_session_views(app)
    config = app.extensions[EXTENSION_KEY].config
    assert (config.cookie_name, config.cookie_path, config.cookie_max_age) == (
        "session",
        "/shop",
        int(timedelta(days=31).total_seconds()),
    )
    assert (config.cookie_secure, config.cookie_http_only, config.cookie_same_site) == (
        False,
        True,
        "Lax",  # Flask's None (no SameSite) is not kept: session-core always sends one
    )


def test_settings_made_after_init_app_count_from_the_first_request():
    app = flask_app()
    interface = init_app(app, store=MemoryStore())
    store = interface.store
    app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_NAME="late")
    add_session_views(app)
    cookie = app.test_client().get("/set").headers["Set-Cookie"]
    assert cookie.startswith("late=")
    assert "Secure" in cookie.split("; ")
    assert interface.store is store  # only the cookie changed: the store was kept


def test_a_secret_key_set_after_init_app_signs_from_the_first_request():
    later = "later-flask-secret-" + "l" * 32
    app = flask_app()
    first_store = init_app(app).store
    app.secret_key = later
    add_session_views(app)
    client = app.test_client()
    client.get("/set?n=late")
    assert app.extensions[EXTENSION_KEY].store is not first_store  # rebuilt with the new key

    other = flask_app(SECRET_KEY=later)
    init_app(other)
    add_session_views(other)
    reader = other.test_client()
    reader.set_cookie("session", client.get_cookie("session").value)
    assert reader.get("/read").json["n"] == "late"


def test_a_flask_setting_that_disagrees_with_session_core_is_refused(monkeypatch):
    app = flask_app(SESSION_COOKIE_SECURE=True, SESSION_CORE={"cookie_secure": False})
    with pytest.raises(ConfigurationError, match="SESSION_COOKIE_SECURE"):
        init_app(app)
    monkeypatch.setenv("SESSION_CORE_COOKIE_NAME", "from_env")
    with pytest.raises(ConfigurationError, match="SESSION_COOKIE_NAME"):
        init_app(flask_app(SESSION_COOKIE_NAME="sid"))
    agreeing = init_app(flask_app(SESSION_COOKIE_NAME="from_env"))
    assert agreeing.config.cookie_name == "from_env"
    # Spelled as Werkzeug spells it: "strict" is Flask's "Strict", so no disagreement.
    same = flask_app(SESSION_COOKIE_SAMESITE="strict", SESSION_CORE={"cookie_same_site": "Strict"})
    assert init_app(same).config.cookie_same_site == "Strict"


def test_a_conflict_made_after_init_app_is_refused_at_the_first_request():
    app = flask_app(SESSION_CORE={"cookie_secure": False})
    init_app(app)
    app.config["SESSION_COOKIE_SECURE"] = True
    add_session_views(app)
    with pytest.raises(ConfigurationError, match="SESSION_COOKIE_SECURE"):
        app.test_client().get("/set")


def test_session_core_wins_where_flask_keeps_its_default(monkeypatch):
    monkeypatch.setenv("SESSION_CORE_COOKIE_MAX_AGE", "600")
    app = flask_app(SESSION_CORE={"cookie_name": "sid", "cookie_secure": True})
    config = init_app(app).config
    assert (config.cookie_name, config.cookie_secure, config.cookie_max_age) == ("sid", True, 600)


def test_sessions_end_with_the_browser_unless_permanent():
    store = MemoryStore()
    app = flask_app(PERMANENT_SESSION_LIFETIME=3600)  # seconds, as Flask also allows
    init_app(app, store=store)
    add_session_views(app)
    client = app.test_client()
    browser = client.get("/set")
    assert browser.json == {"permanent": False}
    cookie = browser.headers["Set-Cookie"]
    assert "Max-Age" not in cookie
    assert "Expires" not in cookie
    key = client.get_cookie("session").value
    record = store.load(key)
    assert record is not None  # the server keeps it, for the lifetime, not for ever
    assert 3000 < record.expires_at - time.time() <= 3600

    permanent = client.get("/set?permanent=1")
    assert permanent.json == {"permanent": True}
    assert "Max-Age=3600" in permanent.headers["Set-Cookie"]
    assert client.get("/set?permanent=0").json == {"permanent": False}
    assert "Max-Age" not in client.get("/set?n=2").headers["Set-Cookie"]


@pytest.mark.parametrize("refresh", [True, False])
def test_a_permanent_session_is_refreshed_on_each_request_that_uses_it(refresh):
    store = MemoryStore()
    app = flask_app(PERMANENT_SESSION_LIFETIME=timedelta(hours=1))
    init_app(app, store=store)
    add_session_views(app)
    client = app.test_client()
    client.get("/set?permanent=1")
    key = client.get_cookie("session").value
    first_expiry = store.load(key).expires_at
    store.calls.clear()

    app.config["SESSION_REFRESH_EACH_REQUEST"] = refresh
    read = client.get("/read")
    assert read.json["n"] == "1"
    assert ("Set-Cookie" in read.headers) is refresh
    assert store.calls.get("save", 0) == (1 if refresh else 0)  # the record's expiry, renewed
    if refresh:
        assert "Max-Age=3600" in read.headers["Set-Cookie"]
        assert store.load(key).expires_at >= first_expiry
    else:
        assert store.load(key).expires_at == first_expiry

    untouched = client.get("/untouched")  # no store call, no cookie, as for any session
    assert "Set-Cookie" not in untouched.headers
    assert "Vary" not in untouched.headers


def test_a_browser_session_is_not_refreshed():
    app = flask_app()
    init_app(app)
    add_session_views(app)
    client = app.test_client()
    client.get("/set")
    assert "Set-Cookie" not in client.get("/read").headers


# ---------------------------------------------------------------------- keys


def test_secret_key_fallbacks_rotate_keys_the_flask_way():
    old, new = "old-flask-secret-" + "o" * 32, "new-flask-secret-" + "n" * 32

    def app_with(secret: str, fallbacks: list[str]) -> flask.Flask:
        app = flask_app(SECRET_KEY=secret, SECRET_KEY_FALLBACKS=fallbacks)
        init_app(app)
        add_session_views(app)
        return app

    signed = app_with(old, []).test_client()
    signed.get("/set?n=kept")
    cookie = signed.get_cookie("session").value

    rotated = app_with(new, [old]).test_client()
    rotated.set_cookie("session", cookie)
    assert rotated.get("/read").json["n"] == "kept"  # still signed in after the rotation

    dropped = app_with(new, []).test_client()
    dropped.set_cookie("session", cookie)
    response = dropped.get("/read")
    assert response.json["n"] is None  # the old key no longer verifies
    assert "Max-Age=0" in response.headers["Set-Cookie"]


def test_short_or_conflicting_fallbacks_are_refused():
    with pytest.raises(ConfigurationError, match="SECRET_KEY_FALLBACKS is only 5 bytes"):
        init_app(flask_app(SECRET_KEY_FALLBACKS=["short"]))
    conflicting = flask_app(
        SECRET_KEY_FALLBACKS=["a" * 40], SESSION_CORE={"fallback_secret_keys": ["b" * 40]}
    )
    with pytest.raises(ConfigurationError, match="SECRET_KEY_FALLBACKS"):
        init_app(conflicting)
    # With session-core's own secret, Flask's fallbacks (for Flask's key) do not apply.
    own = flask_app(SECRET_KEY_FALLBACKS=["short"], SESSION_CORE={"secret_key": "c" * 40})
    assert init_app(own).config.fallback_secret_keys == ()


# ---------------------------------------------------------------------- flashed messages


@pytest.mark.parametrize("store", ["cookie", "memory"])
def test_flashed_messages_come_back_as_flask_gives_them(store):
    app = flask_app()
    init_app(app, store="cookie" if store == "cookie" else MemoryStore())

    @app.get("/flash")
    def flash():
        flask.flash("plain")
        flask.flash("bad", "error")
        flask.flash(Markup("<em>marked</em>"), "warning")
        return ""

    @app.get("/show")
    def show():
        with_categories = flask.get_flashed_messages(with_categories=True)
        errors = flask.get_flashed_messages(category_filter=["error"])
        assert with_categories == [
            ("message", "plain"),
            ("error", "bad"),
            ("warning", Markup("<em>marked</em>")),
        ]
        assert all(type(pair) is tuple for pair in with_categories)
        assert type(with_categories[2][1]) is Markup
        assert errors == ["bad"]
        return flask.render_template_string(
            "{% for m in get_flashed_messages() %}[{{ m }}]{% endfor %}"
        )

    @app.get("/count")
    def count():
        return str(len(flask.get_flashed_messages()))

    client = app.test_client()
    client.get("/flash")
    assert client.get("/show").text == "[plain][bad][<em>marked</em>]"  # Markup not escaped
    assert client.get("/count").text == "0"  # shown once


# ---------------------------------------------------------------------- store outages


def outage_app(**config: object) -> tuple[flask.Flask, OutageStore]:
    store = OutageStore()
    app = flask_app(**config)
    init_app(app, store=store)
    add_session_views(app)
    return app, store


@pytest.mark.parametrize("testing", [True, False])
@pytest.mark.parametrize("path", ["/read", "/write?n=2"])
def test_a_store_outage_answers_503_and_logs_once(path, testing, caplog):
    app, store = outage_app(TESTING=testing)
    client = app.test_client()
    client.get("/set")  # the visitor has a session
    store.fail()
    with caplog.at_level(logging.WARNING):
        response = client.get(path)  # /read fails loading in the view, /write saving after it
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    assert b"session store" in response.data
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "connection refused" in warnings[0].getMessage()

    store.recover()
    assert client.get("/read").json["n"] == "1"  # back, and still signed in


def test_the_apps_own_handler_for_store_errors_wins():
    app, store = outage_app()

    @app.errorhandler(StoreUnreachableError)
    def own(error):
        return f"our page: {error.operation}", 502

    client = app.test_client()
    client.get("/set")
    store.fail()
    assert (client.get("/read").status_code, client.get("/read").text) == (502, "our page: load")
    saved = client.get("/write?n=2")
    assert (saved.status_code, saved.text) == (502, "our page: save")


def test_a_handler_registered_before_init_app_is_kept():
    app = flask_app()
    app.register_error_handler(StoreUnreachableError, lambda error: ("before", 599))
    store = OutageStore()
    init_app(app, store=store)
    add_session_views(app)
    store.fail()
    response = app.test_client().get("/set")
    assert (response.status_code, response.text) == (599, "before")


@pytest.mark.parametrize("base", [Exception, ConnectionError, SessionCoreError])
def test_an_apps_handler_for_a_base_class_wins(base):
    app, store = outage_app()
    app.register_error_handler(base, lambda error: (f"base: {type(error).__name__}", 500))
    store.fail()
    response = app.test_client().get("/set")
    assert (response.status_code, response.text) == (500, "base: StoreUnreachableError")


def test_a_blueprints_handler_wins_for_its_views():
    app, store = outage_app()
    shop = flask.Blueprint("shop", __name__)

    @shop.get("/shop")
    def shop_view():
        return str(flask.session.get("n"))

    @shop.errorhandler(Exception)
    def shop_error(error):
        return "shop is closed", 500

    app.register_blueprint(shop)
    client = app.test_client()
    client.get("/set")
    store.fail()
    assert client.get("/shop").text == "shop is closed"
    assert client.get("/read").status_code == 503


def test_an_outage_the_view_handles_itself_keeps_its_response(caplog):
    app, store = outage_app()

    @app.get("/careful")
    def careful():
        try:
            return str(flask.session.get("n"))
        except StoreUnreachableError:
            return "guest"

    client = app.test_client()
    client.get("/set?permanent=1")  # a permanent session, refreshed on the requests that use it
    store.fail()
    with caplog.at_level(logging.WARNING):
        response = client.get("/careful")
    assert (response.status_code, response.text) == (200, "guest")
    assert not caplog.records


# ---------------------------------------------------------------------- sessions per user


def _devices_app(store) -> flask.Flask:
    from session_core.integrations.flask import sign_out_user

    app = flask.Flask(__name__)
    init_app(app, secret_key=SECRET, store=store)
    session = flask.session

    @app.post("/login/<name>")
    def login(name):
        session["seen"] = True
        session.user_id = name
        return "ok"

    @app.get("/me")
    def me():
        return {"user": session.user_id}

    @app.post("/password-changed")
    def password_changed():
        return {"revoked": sign_out_user(session.user_id, keep_current=True)}

    @app.post("/compromised/<name>")
    def compromised(name):
        return {"revoked": sign_out_user(name)}

    return app


def test_sign_out_user_keeps_the_current_session_or_none():
    store = MemoryStore()
    app = _devices_app(store)
    laptop, phone, tablet, other = (app.test_client() for _ in range(4))
    for client, name in ((laptop, "ada"), (phone, "ada"), (tablet, "ada"), (other, "bob")):
        assert client.post(f"/login/{name}").status_code == 200
        assert client.get("/me").json == {"user": name}
    assert len(store.sessions_of("ada")) == 3

    assert laptop.post("/password-changed").json == {"revoked": 2}
    assert laptop.get("/me").json == {"user": "ada"}
    assert phone.get("/me").json == {"user": None}
    assert tablet.get("/me").json == {"user": None}

    assert phone.post("/login/ada").status_code == 200
    assert phone.post("/compromised/ada").json == {"revoked": 2}
    assert laptop.get("/me").json == {"user": None}
    assert phone.get("/me").json == {"user": None}
    assert other.get("/me").json == {"user": "bob"}


def test_sign_out_user_on_the_cookie_store_is_a_clear_error():
    app = _devices_app("cookie")
    app.testing = True  # the error reaches the test instead of a 500 page
    client = app.test_client()
    client.post("/login/ada")
    with pytest.raises(SessionCoreError, match="cannot revoke the sessions of a user"):
        client.post("/compromised/ada")
