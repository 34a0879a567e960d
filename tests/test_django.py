"""The Django session engine: Django's own engine tests (tests/sessions_tests in Django) ported to
``session_core.integrations.django`` on the cookie store and a server-side store, then a Django
app under waitress driven over real HTTP."""

from __future__ import annotations

import sys
import types
from datetime import timedelta

import django
import httpx
import pytest
from django.conf import settings

from session_core import ConfigurationError, CookieTooLargeError
from session_core.testing import MemoryStore

DJANGO_SECRET = "django-test-secret-" + "d" * 40
URLCONF = "session_core_test_django_urls"

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY=DJANGO_SECRET,
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
        ROOT_URLCONF=URLCONF,
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        INSTALLED_APPS=[],
        SESSION_ENGINE="session_core.integrations.django",
        SESSION_CORE={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()

from django.contrib.sessions.backends.base import UpdateError  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.http import HttpResponseRedirect, JsonResponse  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils import timezone  # noqa: E402

from session_core.integrations import django as engine  # noqa: E402
from session_core.integrations.django import SessionStore  # noqa: E402


@pytest.fixture(params=["cookie", "memory"])
def django_store(request):
    """Run the test on the cookie store and on a server-side store."""
    store = "cookie" if request.param == "cookie" else MemoryStore()
    with override_settings(SESSION_CORE={"store": store}):
        yield request.param
    engine.reset()


@pytest.fixture
def session(django_store):
    return SessionStore()


server_side = pytest.mark.parametrize("django_store", ["memory"], indirect=True)


# ---------------------------------------------------------------------- Django's engine tests


def test_new_session(session):
    assert session.modified is False
    assert session.accessed is False


def test_get_empty(session):
    assert session.get("cat") is None


def test_store(session):
    session["cat"] = "dog"
    assert session.modified is True
    assert session.pop("cat") == "dog"


def test_pop(session):
    session["some key"] = "exists"
    session.accessed = False
    session.modified = False
    assert session.pop("some key") == "exists"
    assert session.accessed is True
    assert session.modified is True
    assert session.get("some key") is None


def test_pop_default_and_missing(session):
    assert session.pop("some key", "does not exist") == "does not exist"
    assert session.accessed is True
    assert session.modified is False
    with pytest.raises(KeyError):
        session.pop("some key")


def test_setdefault(session):
    assert session.setdefault("foo", "bar") == "bar"
    assert session.setdefault("foo", "baz") == "bar"
    assert session.modified is True


def test_update_keys_values_items_clear(session):
    session.update({"update key": 1, "x": [1, 2]})
    assert session.modified is True
    assert session.get("update key") == 1
    assert "x" in session
    assert sorted(session.keys()) == ["update key", "x"]
    assert list(session.items()) == [("update key", 1), ("x", [1, 2])]
    session.clear()
    assert list(session.items()) == []


def test_save_and_load(session):
    session["a"] = "b"
    session.save()
    again = SessionStore(session.session_key)
    assert again["a"] == "b"


@server_side
def test_save_then_exists_then_delete(session):
    session.save()
    assert session.exists(session.session_key) is True
    session.delete()
    assert session.exists(session.session_key) is False


def test_flush(session, django_store):
    session["foo"] = "bar"
    session.save()
    prev_key = session.session_key
    session.flush()
    if django_store != "cookie":
        assert session.exists(prev_key) is False
    assert session.session_key is None
    assert session.modified is True
    assert session.accessed is True


@server_side
def test_cycle(session):
    session["a"], session["b"] = "c", "d"
    session.save()
    prev_key = session.session_key
    prev_data = list(session.items())
    session.cycle_key()
    assert session.exists(prev_key) is False
    assert session.session_key != prev_key
    assert list(session.items()) == prev_data
    assert SessionStore(session.session_key)["a"] == "c"


def test_cycle_with_no_session_cache(session):
    session["a"], session["b"] = "c", "d"
    session.save()
    prev_data = sorted(session.items())
    fresh = SessionStore(session.session_key)
    assert not hasattr(fresh, "_session_cache")
    fresh.cycle_key()
    assert sorted(fresh.items()) == prev_data


def test_save_doesnt_clear_data(session):
    session["a"] = "b"
    session.save()
    assert session["a"] == "b"


def test_invalid_key(session):
    invalid = SessionStore("1")
    invalid.save()
    assert invalid.session_key != "1"
    assert invalid.get("cat") is None
    invalid.delete()


@pytest.mark.parametrize("key", ["", "1234567"])
def test_short_or_empty_keys_are_refused(key):
    assert SessionStore(key).session_key is None


@server_side
def test_session_key_valid_string_saved(session):
    session.save()
    assert SessionStore(session.session_key).session_key == session.session_key


def test_session_key_is_read_only(session):
    with pytest.raises(AttributeError):
        session.session_key = "a" * 43


def test_default_expiry(session):
    assert session.get_expiry_age() == settings.SESSION_COOKIE_AGE
    session.set_expiry(0)
    assert session.get_expiry_age() == settings.SESSION_COOKIE_AGE


def test_custom_expiry_seconds_timedelta_datetime_and_reset(session):
    session.set_expiry(10)
    assert session.get_expiry_age() == 10
    session.set_expiry(timedelta(seconds=10))
    assert session.get_expiry_age() in (9, 10)
    session.set_expiry(timezone.now() + timedelta(seconds=10))
    assert session.get_expiry_age() in (9, 10)
    session.set_expiry(None)
    assert session.get_expiry_age() == settings.SESSION_COOKIE_AGE


def test_get_expire_at_browser_close(session):
    session.set_expiry(10)
    assert session.get_expire_at_browser_close() is False
    session.set_expiry(0)
    assert session.get_expire_at_browser_close() is True
    session.set_expiry(None)
    assert session.get_expire_at_browser_close() is False
    with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=True):
        assert session.get_expire_at_browser_close() is True


def test_expiry_is_enforced_by_the_store(session):
    session["foo"] = "bar"
    session.set_expiry(-timedelta(seconds=10))
    session.save()
    expired = SessionStore(session.session_key)
    assert "foo" not in expired
    assert expired.session_key is None


def test_expiry_round_trips(session):
    session["foo"] = "bar"
    session.set_expiry(123)
    session.save()
    assert SessionStore(session.session_key).get_expiry_age() == 123


@server_side
def test_load_does_not_create_a_record(session):
    unknown = SessionStore("someunknownkey")
    unknown.load()
    assert unknown.session_key is None
    assert unknown.exists(unknown.session_key) is False
    assert len(settings.SESSION_CORE["store"]) == 0


@server_side
def test_save_does_not_resurrect_a_session_logged_out_elsewhere(session):
    s1 = SessionStore()
    s1["test_data"] = "value1"
    s1.save(must_create=True)
    s2 = SessionStore(s1.session_key)
    s2.delete()
    s1["test_data"] = "value2"
    with pytest.raises(UpdateError):
        s1.save()
    assert s1.load() == {}


# ---------------------------------------------------------------------- what this engine adds


@server_side
def test_concurrent_requests_changing_different_keys_both_keep_their_change(session):
    session.update({"a": 1, "b": 1})
    session.save()
    first, second = SessionStore(session.session_key), SessionStore(session.session_key)
    first["a"], second["b"] = 2, 2
    del first["b"]
    first.save()
    second.save()
    assert dict(SessionStore(session.session_key).items()) == {"a": 2, "b": 2}


@server_side
def test_keys_are_hashed_at_rest(session):
    session["a"] = 1
    session.save()
    dump = settings.SESSION_CORE["store"].dump()
    assert session.session_key not in dump


def test_values_must_be_json(session):
    session["when"] = timezone.now()
    with pytest.raises(TypeError, match=r"request.session\['when'\]"):
        session.save()


def test_a_cookie_too_large_for_browsers_is_an_error():
    with override_settings(SESSION_CORE={"store": "cookie"}):
        session = SessionStore()
        session["blob"] = "".join(f"{n:x}" for n in range(3000))
        with pytest.raises(CookieTooLargeError):
            session.save()
    engine.reset()


def test_clear_expired_uses_the_store():
    store = MemoryStore()
    with override_settings(SESSION_CORE={"store": store}):
        session = SessionStore()
        session["x"] = 1
        session.set_expiry(-timedelta(seconds=1))
        session.save()
        assert len(store) == 1
        SessionStore.clear_expired()
        assert len(store) == 0
    engine.reset()


# ---------------------------------------------------------------------- configuration


def test_cookie_settings_are_djangos():
    with override_settings(
        SESSION_COOKIE_NAME="djangosid",
        SESSION_COOKIE_AGE=600,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_CORE={},
    ):
        config = engine.backend().config
        assert config.cookie_name == "djangosid"
        assert config.cookie_max_age == 600
        assert config.cookie_secure is True
        assert config.cookie_same_site == "Strict"
        assert config.secret_key == DJANGO_SECRET
    engine.reset()


def test_a_conflicting_cookie_setting_is_an_error():
    with (
        override_settings(SESSION_CORE={"cookie_name": "other"}),
        pytest.raises(ConfigurationError, match="set SESSION_COOKIE_NAME instead"),
    ):
        engine.backend()
    engine.reset()


def test_a_short_django_secret_is_not_used(monkeypatch):
    monkeypatch.delenv("SESSION_CORE_SECRET_KEY", raising=False)
    with (
        override_settings(SECRET_KEY="too-short", SESSION_CORE={}),
        pytest.raises(ConfigurationError, match="SECRET_KEY is only 9 bytes"),
    ):
        engine.backend()
    with override_settings(SECRET_KEY="too-short", SESSION_CORE={"secret_key": DJANGO_SECRET}):
        assert engine.backend().config.secret_key == DJANGO_SECRET
    engine.reset()


def test_session_core_must_be_a_dict():
    with (
        override_settings(SESSION_CORE="redis"),
        pytest.raises(ConfigurationError, match="must be a dict"),
    ):
        engine.backend()
    engine.reset()


# ---------------------------------------------------------------------- over HTTP


def _counter(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return JsonResponse({"visits": request.session["visits"], "user": request.session.get("user")})


def _untouched(request):
    return JsonResponse({})


def _login(request):
    request.session.cycle_key()
    request.session["user"] = request.POST["name"]
    request.session.set_expiry(None if request.POST.get("remember") else 0)
    return HttpResponseRedirect("/")


def _logout(request):
    request.session.flush()
    return HttpResponseRedirect("/untouched")


urls = types.ModuleType(URLCONF)
urls.urlpatterns = [  # type: ignore[attr-defined]
    path("", _counter),
    path("untouched", _untouched),
    path("login", _login),
    path("logout", _logout),
]
sys.modules[URLCONF] = urls


def test_a_django_app_over_http(django_store, live_wsgi_server, live_checks):
    url = live_wsgi_server(WSGIHandler())
    with httpx.Client(base_url=url, follow_redirects=True, timeout=10) as client:
        live_checks.counter_then_untouched(client)
        before = client.cookies["sessionid"]
        signed_in = client.post("/login", data={"name": "ada"})
        assert signed_in.json() == {"visits": 3, "user": "ada"}
        assert "Max-Age" not in signed_in.history[0].headers["set-cookie"]
        assert client.cookies["sessionid"] != before
        if django_store == "memory":
            assert live_checks.as_another_browser(client, "/", before).json()["user"] is None

        signed_in_key = client.cookies["sessionid"]
        signed_out = client.post("/logout")
        assert "Max-Age=0" in signed_out.history[0].headers["set-cookie"]
        assert "sessionid" not in client.cookies
        assert client.get("/").json() == {"visits": 1, "user": None}
        if django_store == "memory":
            assert live_checks.as_another_browser(client, "/", signed_in_key).json()["user"] is None
