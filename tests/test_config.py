"""SessionConfig: every source, every key, and a clear error for each kind of mistake."""

import pytest

from session_core import ConfigurationError, SessionConfig
from session_core.asgi import SessionMiddleware as ASGIMiddleware
from session_core.config import MAX_COOKIE_AGE
from session_core.testing import MemoryStore
from session_core.wsgi import SessionMiddleware as WSGIMiddleware

SECRET = "s" * 40


def test_defaults_follow_the_design():
    config = SessionConfig(secret_key=SECRET)
    assert config.store == "cookie"
    assert config.fallback_secret_keys == ()
    assert config.cookie_name == "sessionid"
    assert config.cookie_domain is None
    assert config.cookie_path == "/"
    assert config.cookie_max_age == 1209600
    assert config.cookie_secure is False
    assert config.cookie_http_only is True
    assert config.cookie_same_site == "Lax"
    assert config.save_every_request is False
    assert config.asgi_preload is True
    assert dict(config.store_options) == {}


def test_from_mapping_and_keywords_agree():
    settings = {
        "secret_key": SECRET,
        "fallback_secret_keys": ["o" * 32],
        "store": "redis",
        "cookie_name": "sid",
        "cookie_domain": "example.com",
        "cookie_path": "/app",
        "cookie_max_age": 60,
        "cookie_secure": True,
        "cookie_http_only": False,
        "cookie_same_site": "strict",
        "save_every_request": True,
        "store_options": {"url": "redis://localhost"},
    }
    config = SessionConfig.from_mapping(settings)
    assert config == SessionConfig(**{**settings, "fallback_secret_keys": ("o" * 32,)})
    assert config.cookie_same_site == "Strict"
    assert config.secret_keys == (SECRET.encode(), b"o" * 32)


def test_from_env_parses_every_type():
    env = {
        "SESSION_CORE_SECRET_KEY": SECRET,
        "SESSION_CORE_FALLBACK_SECRET_KEYS": f"{'a' * 32}, {'b' * 32}",
        "SESSION_CORE_STORE": "db",
        "SESSION_CORE_COOKIE_MAX_AGE": "300",
        "SESSION_CORE_COOKIE_SECURE": "true",
        "SESSION_CORE_COOKIE_HTTP_ONLY": "0",
        "SESSION_CORE_ASGI_PRELOAD": "false",
        "SESSION_CORE_COOKIE_DOMAIN": "",
        "SESSION_CORE_STORE_OPTIONS": '{"url": "sqlite:///x.db"}',
        "SESSION_CORE_DISABLE_PLUGINS": "x",
        "OTHER": "ignored",
    }
    config = SessionConfig.from_env(env)
    assert config.fallback_secret_keys == ("a" * 32, "b" * 32)
    assert config.store == "db"
    assert config.cookie_max_age == 300
    assert config.cookie_secure is True
    assert config.cookie_http_only is False
    assert config.asgi_preload is False
    assert config.cookie_domain is None
    assert config.store_options["url"] == "sqlite:///x.db"


def test_test_suite_variables_are_not_settings():
    env = {"SESSION_CORE_SECRET_KEY": SECRET, "SESSION_CORE_TEST_REDIS_URL": "redis://x"}
    assert SessionConfig.from_env(env).store == "cookie"


def test_from_env_json_list_of_fallback_keys():
    env = {
        "SESSION_CORE_SECRET_KEY": SECRET,
        "SESSION_CORE_FALLBACK_SECRET_KEYS": '["' + "k" * 32 + '"]',
    }
    assert SessionConfig.from_env(env).fallback_secret_keys == ("k" * 32,)


def test_keyword_overrides_beat_env():
    config = SessionConfig.from_env({"SESSION_CORE_SECRET_KEY": SECRET}, cookie_name="other")
    assert config.cookie_name == "other"


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("SESSION_CORE_COOKIE_SECURE", "maybe", "not a boolean; write true or false"),
        ("SESSION_CORE_ASGI_PRELOAD", "sometimes", "not a boolean; write true or false"),
        ("SESSION_CORE_COOKIE_MAX_AGE", "two weeks", "not a whole number"),
        ("SESSION_CORE_STORE_OPTIONS", "url=x", "must be a JSON object"),
        ("SESSION_CORE_COOKIE_NAMME", "x", "names no setting"),
    ],
)
def test_bad_env_values(var, value, message):
    with pytest.raises(ConfigurationError, match=message):
        SessionConfig.from_env({"SESSION_CORE_SECRET_KEY": SECRET, var: value})


@pytest.mark.parametrize("table", ["[session_core]\n", "[tool.session_core]\n", ""])
def test_from_toml(tmp_path, table):
    path = tmp_path / "session.toml"
    path.write_text(
        f'{table}secret_key = "{SECRET}"\nstore = "redis"\ncookie_max_age = 10\n'
        f'store_options = {{ url = "redis://127.0.0.1:6379/0" }}\n'
    )
    config = SessionConfig.from_toml(path)
    assert config.store == "redis"
    assert config.cookie_max_age == 10
    assert config.store_options == {"url": "redis://127.0.0.1:6379/0"}


def test_load_layers_file_env_and_keywords(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(f'secret_key = "{SECRET}"\ncookie_name = "fromfile"\ncookie_path = "/file"\n')
    env = {"SESSION_CORE_CONFIG": str(path), "SESSION_CORE_COOKIE_PATH": "/env"}
    config = SessionConfig.load(environ=env, cookie_max_age=5)
    assert (config.cookie_name, config.cookie_path, config.cookie_max_age) == (
        "fromfile",
        "/env",
        5,
    )


def test_unreadable_and_invalid_toml(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read the configuration file"):
        SessionConfig.from_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("secret_key = \n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        SessionConfig.from_toml(bad)


def test_unknown_key_in_toml_names_the_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(f'secret_key = "{SECRET}"\ncookie_max_agee = 1\n')
    with pytest.raises(ConfigurationError, match="did you mean 'cookie_max_age'") as info:
        SessionConfig.from_toml(path)
    assert str(path) in str(info.value)
    assert info.value.key == "cookie_max_agee"


@pytest.mark.parametrize(
    ("settings", "key", "message"),
    [
        ({}, "secret_key", "a secret key is required; generate one with"),
        ({"secret_key": "short"}, "secret_key", "is 5 bytes long; it must be at least 32"),
        ({"secret_key": 12345}, "secret_key", "must be a string"),
        ({"fallback_secret_keys": ["short"]}, "fallback_secret_keys", "at least 32"),
        ({"cookie_same_site": "sometimes"}, "cookie_same_site", 'write "Strict", "Lax" or "None"'),
        ({"cookie_same_site": "None"}, "cookie_same_site", "set cookie_secure = true"),
        ({"cookie_max_age": "300"}, "cookie_max_age", "must be a whole number of seconds"),
        ({"cookie_max_age": 0}, "cookie_max_age", "set_expiry\\(0\\)"),
        ({"cookie_max_age": True}, "cookie_max_age", "whole number"),
        ({"cookie_secure": "yes"}, "cookie_secure", "true or false"),
        ({"cookie_name": "bad name;"}, "cookie_name", "not a valid cookie name"),
        ({"cookie_path": "app"}, "cookie_path", "must start with '/'"),
        ({"cookie_domain": "a;b"}, "cookie_domain", "is not a domain"),
        ({"store": ""}, "store", "must name a store"),
        ({"store": 3}, "store", "a store name or a SessionStore"),
        ({"store_options": ["url"]}, "store_options", "a mapping"),
        ({"colour": "blue"}, "colour", "unknown setting"),
        ({"cookie_partitioned": True}, "cookie_partitioned", "without Secure"),
        ({"cookie_partitioned": "yes"}, "cookie_partitioned", "true or false"),
        # Settings that used to pass start-up and fail at the first request:
        ({"cookie_max_age": 10**17}, "cookie_max_age", "the maximum is 34560000 \\(400 days\\)"),
        ({"cookie_max_age": MAX_COOKIE_AGE + 1}, "cookie_max_age", "longer than browsers keep"),
        ({"secret_key": "\udcff" * 40}, "secret_key", "not valid UTF-8"),
        ({"fallback_secret_keys": ["\udcff" * 40]}, "fallback_secret_keys", "not valid UTF-8"),
        ({"cookie_path": "/" + "p" * 1024}, "cookie_path", "longer than 1024 bytes"),
        ({"cookie_domain": "d" * 1025}, "cookie_domain", "longer than 1024 bytes"),
        ({"cookie_name": "n" * 4000}, "cookie_name", "longer than 1024 bytes"),
        ({"cookie_name": "__Secure-sid"}, "cookie_name", "without Secure"),
        ({"cookie_name": "__SECURE-sid"}, "cookie_name", "without Secure"),
        ({"cookie_name": "__Host-sid"}, "cookie_name", "unless it is Secure"),
        (
            {"cookie_name": "__Host-sid", "cookie_secure": True, "cookie_path": "/app"},
            "cookie_name",
            "cookie_path '/'",
        ),
        (
            {"cookie_name": "__host-sid", "cookie_secure": True, "cookie_domain": "a.example"},
            "cookie_name",
            "no cookie_domain",
        ),
        (
            {"store": MemoryStore(), "store_options": {"url": "redis://x"}},
            "store_options",
            "is ignored when store is a ready store instance \\(MemoryStore\\)",
        ),
    ],
)
def test_each_mistake_is_a_clear_error(settings, key, message):
    full = {"secret_key": SECRET, **settings} if "secret_key" not in settings else settings
    if settings == {}:
        full = {}
    with pytest.raises(ConfigurationError, match=message) as info:
        SessionConfig.from_mapping(full)
    assert info.value.key == key


def test_the_limits_themselves_are_accepted():
    config = SessionConfig(
        secret_key=SECRET,
        cookie_max_age=MAX_COOKIE_AGE,
        cookie_path="/" + "p" * 1023,
    )
    assert config.cookie_max_age == 34_560_000
    assert SessionConfig(secret_key=SECRET, cookie_name="__Host-sid", cookie_secure=True)
    assert SessionConfig(secret_key=SECRET, cookie_name="__Secure-x", cookie_secure=True)


def test_a_store_instance_with_options_from_the_environment_is_refused_at_start_up():
    env = {"SESSION_CORE_SECRET_KEY": SECRET, "SESSION_CORE_STORE_OPTIONS": '{"url": "x"}'}
    with pytest.raises(ConfigurationError, match="pass the options to the store") as info:
        SessionConfig.from_env(env, store=MemoryStore())
    assert info.value.key == "store_options"


@pytest.mark.parametrize("middleware", [WSGIMiddleware, ASGIMiddleware])
def test_middleware_refuse_bad_settings_at_start_up(middleware):
    with pytest.raises(ConfigurationError, match="cookie_max_age"):
        middleware(lambda *a: None, secret_key=SECRET, cookie_max_age=10**17)
    with pytest.raises(ConfigurationError, match="config must be a SessionConfig, not dict"):
        middleware(lambda *a: None, {"secret_key": SECRET})


def test_same_site_none_with_secure_is_fine():
    config = SessionConfig(secret_key=SECRET, cookie_same_site="none", cookie_secure=True)
    assert config.cookie_same_site == "None"


def test_a_store_instance_is_accepted_in_code():
    store = MemoryStore()
    config = SessionConfig(secret_key=SECRET, store=store)
    assert config.store is store
    assert config.store_name == "memory"


def test_config_is_immutable_and_replace_validates():
    config = SessionConfig(secret_key=SECRET)
    with pytest.raises(AttributeError):
        config.cookie_name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.store_options["url"] = "x"  # type: ignore[index]
    assert config.replace(cookie_name="x").cookie_name == "x"
    with pytest.raises(ConfigurationError):
        config.replace(cookie_path="nope")
    with pytest.raises(ConfigurationError, match="unknown setting"):
        config.replace(nope=1)


def test_repr_hides_secrets():
    config = SessionConfig(secret_key=SECRET, fallback_secret_keys=["o" * 32])
    assert SECRET not in repr(config)
    assert "o" * 32 not in repr(config)
    assert "cookie_name='sessionid'" in repr(config)
