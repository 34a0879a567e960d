"""The Django integration: the engine (Django's engine tests ported, plus what this engine adds
and where it matches Django's engines), its settings, its system checks, its middleware's answer
to a store outage, then a Django app under waitress driven over real HTTP. Django's own session
tests, unchanged, run in tests/upstream/django_test_sessions.py."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import time
import types
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from session_core import (
    ConfigurationError,
    CookieTooLargeError,
    SessionCoreError,
    StoreUnreachableError,
)
from session_core.session import check_json_value
from session_core.testing import MemoryStore, OutageStore

sys.path.insert(0, str(Path(__file__).parent / "upstream"))
from django_test_settings import (
    DJANGO_SECRET,
    URLCONF,
    configure,
    without_session_core_environment,
)

configure()

from django.contrib.sessions.backends.base import UpdateError  # noqa: E402
from django.contrib.sessions.exceptions import SessionInterrupted  # noqa: E402
from django.contrib.sessions.middleware import (  # noqa: E402
    SessionMiddleware as DjangoSessionMiddleware,
)
from django.core import checks  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse  # noqa: E402
from django.test import AsyncClient, Client, RequestFactory, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils import timezone  # noqa: E402
from django.utils.log import log_response  # noqa: E402

from session_core.integrations import django as engine  # noqa: E402
from session_core.integrations.django import SessionStore  # noqa: E402


@pytest.fixture(autouse=True)
def _own_settings_only(monkeypatch):
    without_session_core_environment(monkeypatch)


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


@pytest.mark.parametrize("value", ["\ud800", ["ok", {"x": "\udfff"}]])
def test_a_lone_surrogate_is_refused_before_the_store_sees_it(session, value):
    # JSON request bodies can carry one; UTF-8 cannot, so every store's save would fail.
    session["text"] = value
    with pytest.raises(TypeError, match=r"request.session\['text'\]"):
        session.save()
    session["text"] = "fine"
    session.save()
    assert SessionStore(session.session_key)["text"] == "fine"


@pytest.mark.parametrize(
    "value", ["\ud800", ["ok", {"x": "\udfff"}], float("nan"), {"when": object()}]
)
def test_a_refused_value_gets_the_core_s_message(session, value):
    # One check for every integration: Django's engine says what Session assignment says.
    with pytest.raises(TypeError) as core:
        check_json_value(value, "text", name="request.session")
    session["text"] = value
    with pytest.raises(TypeError) as django:
        session.save()
    assert str(django.value) == str(core.value)


def test_what_django_s_json_keeps_is_still_kept(session):
    # Django's JSONSerializer keeps a tuple as a list and an int dict key as text; so does this
    # engine, though the core's Session refuses both at assignment.
    session["pair"] = (1, 2)
    session["by_id"] = {7: "x"}
    session.save()
    assert dict(SessionStore(session.session_key).items()) == {"pair": [1, 2], "by_id": {"7": "x"}}


def test_a_cookie_too_large_for_browsers_is_an_error():
    with override_settings(SESSION_CORE={"store": "cookie"}):
        session = SessionStore()
        session["blob"] = "".join(f"{n:x}" for n in range(3000))
        with pytest.raises(CookieTooLargeError):
            session.save()
    engine.reset()


def test_manage_py_clearsessions_cleans_the_store():
    store = MemoryStore()
    with override_settings(SESSION_CORE={"store": store}):
        expired, live = SessionStore(), SessionStore()
        expired["x"], live["y"] = 1, 2
        expired.set_expiry(-timedelta(seconds=1))
        expired.save()
        live.save()
        call_command("clearsessions")
        assert len(store) == 1
        assert SessionStore(live.session_key)["y"] == 2
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


@server_side
def test_django_lifetime_settings_decide_the_cookie_and_the_record(session):
    def view(request):
        request.session["user"] = "ada"
        return HttpResponse()

    with override_settings(SESSION_COOKIE_AGE=60, SESSION_EXPIRE_AT_BROWSER_CLOSE=True):
        request, response = _through_middleware(view)
        record = settings.SESSION_CORE["store"].load(request.session.session_key)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert (cookie["max-age"], cookie["expires"]) == ("", "")  # ends with the browser
    assert 0 < record.expires_at - time.time() <= 60  # the server keeps it SESSION_COOKIE_AGE


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


# ---------------------------------------------------------------------- keyless save, interruptions


def _through_middleware(view, cookie=None, middleware=DjangoSessionMiddleware):
    request = RequestFactory().get("/")
    if cookie is not None:
        request.COOKIES[settings.SESSION_COOKIE_NAME] = cookie
    return request, middleware(view)(request)


def _give_a_key(request):
    if not request.session.session_key:
        request.session.save()
    return HttpResponse(request.session.session_key)


def test_a_keyless_save_sends_the_cookie_of_the_record_it_made(django_store):
    # The common "give this visitor a key" pattern: the key must reach the browser, and a
    # server store must hold the record it names (and no other).
    request, response = _through_middleware(_give_a_key)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME].value
    assert cookie == request.session.session_key
    assert SessionStore(cookie).load() == {}
    assert SessionStore(cookie).session_key == cookie
    if django_store == "memory":
        assert len(settings.SESSION_CORE["store"]) == 1
        assert response.content.decode() == cookie  # the key the view saw is the one sent


def test_a_keyless_save_marks_the_session_modified_as_djangos_engines_do(session):
    session.save()
    assert session.session_key is not None
    assert session.modified is True


@server_side
def test_a_session_deleted_before_the_middleware_saves_is_interrupted(session):
    # Django's own middleware test (test_session_update_error_redirect), on this engine.
    def view(request):
        request.session.save()
        request.session.delete()
        return HttpResponse()

    with pytest.raises(SessionInterrupted, match="deleted before the request completed"):
        _through_middleware(view)
    assert len(settings.SESSION_CORE["store"]) == 0  # not brought back


@server_side
def test_a_sign_out_in_a_concurrent_request_interrupts_the_other(session):
    session["user"] = "ada"
    session.save()
    key = session.session_key

    def view(request):
        request.session["cart"] = ["book"]  # loads the session, then another request signs out
        SessionStore(key).flush()
        return HttpResponse()

    with pytest.raises(SessionInterrupted):
        _through_middleware(view, cookie=key)
    assert SessionStore(key).load() == {}


# ---------------------------------------------------------------------- key rotation


def _saved_under(secret, **extra):
    with override_settings(SECRET_KEY=secret, SESSION_CORE={"store": "cookie"}, **extra):
        session = SessionStore()
        session["user"] = "ada"
        session.save()
        return session.session_key


NEW_SECRET = "django-new-secret-" + "n" * 40


def test_rotating_secret_key_the_django_way_keeps_visitors_signed_in():
    key = _saved_under(DJANGO_SECRET)
    with override_settings(
        SECRET_KEY=NEW_SECRET, SECRET_KEY_FALLBACKS=[DJANGO_SECRET], SESSION_CORE={}
    ):
        assert engine.backend().config.fallback_secret_keys == (DJANGO_SECRET,)
        assert SessionStore(key)["user"] == "ada"
    engine.reset()


def test_the_new_secret_key_signs_and_a_retired_one_verifies_nothing():
    old = _saved_under(DJANGO_SECRET)
    with override_settings(
        SECRET_KEY=NEW_SECRET, SECRET_KEY_FALLBACKS=[DJANGO_SECRET], SESSION_CORE={}
    ):
        session = SessionStore(old)
        session["seen"] = True
        session.save()
        resigned = session.session_key
    with override_settings(SECRET_KEY=NEW_SECRET, SECRET_KEY_FALLBACKS=[], SESSION_CORE={}):
        assert SessionStore(resigned)["user"] == "ada"  # signed with the new key
        assert SessionStore(old).get("user") is None  # the retired key verifies nothing
    engine.reset()


def test_fallbacks_in_both_places_must_agree():
    with (
        override_settings(
            SECRET_KEY_FALLBACKS=[NEW_SECRET],
            SESSION_CORE={"fallback_secret_keys": ["another-old-secret-" + "o" * 40]},
        ),
        pytest.raises(ConfigurationError, match="SECRET_KEY_FALLBACKS only"),
    ):
        engine.backend()
    with override_settings(
        SECRET_KEY_FALLBACKS=[NEW_SECRET], SESSION_CORE={"fallback_secret_keys": [NEW_SECRET]}
    ):
        assert engine.backend().config.fallback_secret_keys == (NEW_SECRET,)
    engine.reset()


def test_a_short_django_fallback_is_refused_by_name():
    with (
        override_settings(SECRET_KEY_FALLBACKS=["short"], SESSION_CORE={}),
        pytest.raises(ConfigurationError, match="SECRET_KEY_FALLBACKS is only 5 bytes"),
    ):
        engine.backend()
    engine.reset()


def test_djangos_fallbacks_belong_to_djangos_key_only():
    own = "session-core-own-secret-" + "s" * 40
    with override_settings(
        SECRET_KEY_FALLBACKS=[NEW_SECRET], SESSION_CORE={"secret_key": own, "store": "cookie"}
    ):
        assert engine.backend().config.fallback_secret_keys == ()
    engine.reset()


def test_a_partitioned_cookie_is_refused_as_django_cannot_write_it():
    with (
        override_settings(SESSION_COOKIE_SECURE=True, SESSION_CORE={"cookie_partitioned": True}),
        pytest.raises(ConfigurationError, match="cannot add the Partitioned attribute"),
    ):
        engine.backend()
    engine.reset()


# ---------------------------------------------------------------------- system checks


def _session_core_checks():
    return {m.id: m for m in checks.run_checks(tags=["session_core"])}


def test_the_check_passes_a_valid_configuration(django_store):
    assert _session_core_checks() == {}


def test_the_check_names_a_store_that_is_not_installed():
    with override_settings(SESSION_CORE={"store": "nosuchstore"}):
        found = _session_core_checks()
    assert list(found) == ["session_core.E002"]
    assert "no session store named 'nosuchstore' is installed" in found["session_core.E002"].msg
    engine.reset()


def test_the_check_names_an_invalid_setting():
    with override_settings(SESSION_CORE={"cokie_name": "x"}):
        found = _session_core_checks()
    assert list(found) == ["session_core.E001"]
    assert "did you mean 'cookie_name'" in found["session_core.E001"].msg
    engine.reset()


def test_the_check_names_an_option_the_store_refuses():
    with override_settings(SESSION_CORE={"store": "cookie", "store_options": {"encrpyt": True}}):
        found = _session_core_checks()
    assert list(found) == ["session_core.E001"]
    assert "has no option 'encrpyt'" in found["session_core.E001"].msg
    engine.reset()


def test_the_check_warns_about_djangos_middleware_and_an_unused_setting():
    with override_settings(MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"]):
        assert list(_session_core_checks()) == ["session_core.W002"]
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache"):
        assert list(_session_core_checks()) == ["session_core.W001"]
    with override_settings(SESSION_SERIALIZER="myapp.serializers.PickleSerializer"):
        assert list(_session_core_checks()) == ["session_core.W003"]
    engine.reset()


def test_manage_py_check_fails_with_the_real_message(tmp_path, live_clean_env):
    (tmp_path / "project_settings.py").write_text(
        textwrap.dedent(f"""
            SECRET_KEY = {DJANGO_SECRET!r}
            INSTALLED_APPS = ["django.contrib.sessions", "session_core.integrations.django_checks"]
            MIDDLEWARE = ["session_core.integrations.django.SessionMiddleware"]
            SESSION_ENGINE = "session_core.integrations.django"
            SESSION_CORE = {{"store": "nosuchstore"}}
        """)
    )
    result = subprocess.run(
        [sys.executable, "-m", "django", "check", "--settings=project_settings"],
        cwd=tmp_path,
        env=live_clean_env(PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path])),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "session_core.E002" in result.stderr
    assert "no session store named 'nosuchstore' is installed" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------- store outages


@pytest.fixture
def outage():
    store = OutageStore()
    with override_settings(SESSION_CORE={"store": store}):
        yield store
    engine.reset()


def _assert_503(response, caplog):
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in logged] == ["session_core"]  # once, and not again by Django
    assert "could not " in logged[0].getMessage()
    assert "connection refused" in logged[0].getMessage()


def test_an_outage_at_first_use_in_the_view_is_a_503(outage, caplog):
    client = Client()
    assert client.get("/").status_code == 200
    outage.fail("load")
    _assert_503(client.get("/"), caplog)


def test_an_outage_when_the_middleware_saves_is_a_503(outage, caplog):
    outage.fail("save")
    _assert_503(Client().get("/"), caplog)


def test_an_outage_under_asgi_is_a_503_too(outage, caplog):
    outage.fail("save")
    response = asyncio.run(AsyncClient().get("/"))
    _assert_503(response, caplog)


def test_a_redis_server_that_is_down_is_a_503_over_http(live_wsgi_server, live_free_port, caplog):
    # A real outage: the redis store pointed at a port nothing listens on (the core and
    # django-upstream environments install the plugin).
    dead = f"redis://127.0.0.1:{live_free_port()}/0"
    with override_settings(SESSION_CORE={"store": "redis", "store_options": {"url": dead}}):
        url = live_wsgi_server(WSGIHandler())
        with httpx.Client(base_url=url, timeout=30) as client:
            writes = client.get("/")  # nothing to load: the save fails
            reads = client.get("/", headers={"Cookie": "sessionid=" + "k" * 43})  # load fails
    engine.reset()
    for response in (writes, reads):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "set-cookie" not in response.headers
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warnings] == ["session_core", "session_core"]
    assert all(dead.rsplit("/", 1)[0] in r.getMessage() for r in warnings)


class HandlesOutages:
    """An app's own middleware that answers store outages itself."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, StoreUnreachableError):
            return HttpResponse("read-only mode", status=200)
        return None


def test_an_app_that_handles_the_outage_itself_keeps_its_answer(outage):
    with override_settings(
        MIDDLEWARE=[
            "session_core.integrations.django.SessionMiddleware",
            f"{__name__}.HandlesOutages",
        ]
    ):
        client = Client()  # loads MIDDLEWARE at its first request
        client.get("/")
        outage.fail("load")
        response = client.get("/")
    assert (response.status_code, response.content) == (200, b"read-only mode")


class MaintenancePage(engine.SessionMiddleware):
    def store_unavailable(self, request, error):
        return HttpResponse(f"back soon ({error.store})", status=503)


def test_the_503_is_customised_by_overriding_store_unavailable(outage):
    outage.fail("save")
    with override_settings(MIDDLEWARE=[f"{__name__}.MaintenancePage"]):
        response = Client().get("/")
    assert (response.status_code, response.content) == (503, b"back soon (memory)")


def test_djangos_own_middleware_still_gives_its_500(outage):
    outage.fail("save")
    with override_settings(MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"]):
        client = Client(raise_request_exception=False)
        assert client.get("/").status_code == 500


def test_compat_django_skips_logging_a_response_marked_logged(caplog):
    from session_core._compat import mark_logged

    response = HttpResponse(status=503)
    mark_logged(response)
    log_response("%s", "x", response=response)
    unmarked = HttpResponse(status=503)
    log_response("%s", "y", response=unmarked)
    assert [r.getMessage() for r in caplog.records] == ["y"]


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


# ---------------------------------------------------------------------- sessions per user


class _User:
    """What django.contrib.auth's helpers need of a user (the auth app is not installed)."""

    def __init__(self, pk: int) -> None:
        self.pk = pk

    def get_session_auth_hash(self) -> str:
        return f"hash-of-the-new-password-{self.pk}"


def _signed_in(user_pk: int) -> SessionStore:
    """A session signed in as ``user_pk`` the way django.contrib.auth.login leaves it."""
    session = SessionStore()
    session["cart"] = [1]
    session.save()
    session.cycle_key()
    session["_auth_user_id"] = str(user_pk)  # login() stores the pk as text
    session.save()
    return session


@server_side
def test_a_signed_in_session_is_bound_to_its_user_under_a_new_key(django_store):
    session = SessionStore()
    session["cart"] = [1]
    session.save()
    anonymous = session.session_key
    session["_auth_user_id"] = "7"
    session.save()
    store = engine.backend().store
    assert session.session_key != anonymous
    assert store.load(anonymous) is None
    (info,) = store.sessions_of(7)
    assert info.is_key(session.session_key)
    session["cart"] = [1, 2]  # later saves keep the binding and the key
    session.save()
    assert store.sessions_of(7)[0].is_key(session.session_key)


@server_side
def test_update_session_auth_hash_signs_out_the_other_sessions(django_store):
    others = [_signed_in(7) for _ in range(2)]
    bystander = _signed_in(8)
    request = RequestFactory().post("/password")
    request.session = _signed_in(7)
    request.user = user = _User(7)
    old_key = request.session.session_key
    assert engine.update_session_auth_hash(request, user) == 2
    request.session.save()
    assert request.session.session_key != old_key
    assert request.session["_auth_user_hash"] == "hash-of-the-new-password-7"
    store = engine.backend().store
    assert [info.is_key(request.session.session_key) for info in store.sessions_of(7)] == [True]
    assert all(SessionStore(other.session_key).load() == {} for other in others)
    assert SessionStore(bystander.session_key).load()["_auth_user_id"] == "8"


def test_sign_out_user_on_the_cookie_store_says_which_stores_can(django_store):
    if django_store != "cookie":
        assert engine.sign_out_user(9) == 0
        return
    with pytest.raises(SessionCoreError, match="indexes_users = True"):
        engine.sign_out_user(9)


# ---------------------------------------------------------------------- session events


def test_the_engine_reports_each_store_call_to_event_observers(tmp_path, monkeypatch):
    from event_observers import DownStore, install_observers

    from session_core import EventKind, hash_key

    (recorder,) = install_observers(tmp_path / "site", monkeypatch)

    store = DownStore()
    try:
        with override_settings(SESSION_CORE={"store": store}):
            engine.reset()
            session = SessionStore()
            session["a"] = 1
            session.save()
            created = session.session_key
            session["a"] = 2
            session.save()
            session.cycle_key()
            cycled = session.session_key
            session.flush()
            fresh = SessionStore()
            fresh["b"] = 1
            fresh.save()
            store.down = True
            fresh["b"] = 2
            with pytest.raises(StoreUnreachableError):
                fresh.save()
    finally:
        engine.reset()
    assert [(e.kind, e.store, e.key_hash) for e in recorder.seen] == [
        (EventKind.CREATED, "memory", hash_key(created)),
        (EventKind.SAVED, "memory", hash_key(created)),
        (EventKind.CYCLED, "memory", hash_key(cycled)),
        (EventKind.FLUSHED, "memory", hash_key(cycled)),
        (EventKind.CREATED, "memory", hash_key(fresh.session_key)),
        (EventKind.STORE_ERROR, "memory", hash_key(fresh.session_key)),
    ]
    assert all(e.duration >= 0 and e.user_id is None for e in recorder.seen)
