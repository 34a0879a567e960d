"""The shared pieces of error messages: suggestions for misspelt names and install commands."""

from __future__ import annotations

import pytest

from session_core import ConfigurationError, SessionConfig, StoreUnreachableError
from session_core.cookie import CookieStore
from session_core.errors import CookieTooLargeError, EncryptionUnavailableError
from session_core.hints import did_you_mean, pip_install, unknown_option, unreachable_advice

SECRET = "s" * 40


@pytest.mark.parametrize(
    ("word", "expected"),
    [("encrpyt", "encrypt"), ("ENCRYPT", "encrypt"), ("url", None), ("colour", None)],
)
def test_did_you_mean(word, expected):
    assert did_you_mean(word, ["encrypt", "max_size"]) == expected


def test_unknown_option_suggests_and_lists():
    message = unknown_option("db", "pool_sise", ["url", "pool_size", "table"])
    assert message == (
        "the db store has no option 'pool_sise'; did you mean 'pool_size'? "
        "(its options are: pool_size, table, url)"
    )


def test_unknown_option_without_a_close_name_only_lists():
    message = unknown_option("redis", "zzz", ["url", "prefix"])
    assert "did you mean" not in message
    assert message.endswith("(its options are: prefix, url)")


def test_pip_install_names_the_published_distribution_and_the_clone_path():
    assert pip_install("session-core-db", "postgresql") == (
        "pip install 'session-core-db[postgresql]' (or, from a clone of session-core, "
        "pip install './plugins/db_session[postgresql]')"
    )
    assert pip_install("session-core") == (
        "pip install session-core (or, from a clone of session-core, pip install .)"
    )


def test_pip_install_of_another_distribution_names_no_clone_path():
    assert pip_install("somebody-else") == "pip install somebody-else"


def test_cookie_store_option_typo_gets_a_suggestion():
    config = SessionConfig(secret_key=SECRET, store_options={"encrpyt": True})
    with pytest.raises(ConfigurationError) as info:
        CookieStore.from_config(config)
    assert "the cookie store has no option 'encrpyt'; did you mean 'encrypt'?" in str(info.value)


def test_install_hints_in_core_errors_name_the_clone_path():
    assert "pip install '.[encryption]'" in str(EncryptionUnavailableError())
    too_large = str(CookieTooLargeError(5000, 4096, "cookie"))
    assert "pip install ./plugins/db_session" in too_large
    assert "pip install ./plugins/redis_session" in too_large


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        ("ConnectionError: Error 111 connecting to 127.0.0.1:6390. Connection refused.", "start"),
        ('OperationalError: FATAL:  role "bob" does not exist', "user or password"),
        (
            "OperationalError: (1045, \"Access denied for user 'x'@'localhost'\")",
            "user or password",
        ),
        ('OperationalError: FATAL:  database "nope" does not exist', "database is missing"),
        ("OperationalError: (1049, \"Unknown database 'nope'\")", "database is missing"),
        ("ResponseError: DB index is out of range", "fewer databases"),
        ("TimeoutError: timed out", "did not answer in time"),
    ],
)
def test_unreachable_advice_by_cause(reason, advice):
    found = unreachable_advice(reason)
    assert found is not None
    assert advice in found


def test_no_advice_is_made_up_for_an_unknown_cause():
    assert unreachable_advice("RuntimeError: something else") is None
    error = StoreUnreachableError("db", "sqlite:///x", "save", "RuntimeError: something else")
    assert error.hint is None
    assert (
        str(error)
        == "session store 'db' could not save at sqlite:///x: RuntimeError: something else"
    )


def test_store_unreachable_error_carries_its_advice():
    error = StoreUnreachableError("redis", "redis://h:1/0", "load", "Connection refused.")
    assert error.hint is not None
    assert (
        str(error)
        == f"session store 'redis' could not load at redis://h:1/0: Connection refused; {error.hint}"
    )
    explicit = StoreUnreachableError("x", "t", "load", "Connection refused", hint="call us")
    assert str(explicit).endswith("; call us")


def test_the_example_third_party_store_uses_the_shared_wording():
    from session_core_files import session_core_create_store

    config = SessionConfig(secret_key=SECRET, store="files", store_options={"directroy": "x"})
    with pytest.raises(ConfigurationError, match="did you mean 'directory'"):
        session_core_create_store(config)
