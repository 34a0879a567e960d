"""The shared pieces of error messages: suggestions for misspelt names and install commands."""

from __future__ import annotations

import pytest

from session_core import ConfigurationError, SessionConfig
from session_core.cookie import CookieStore
from session_core.errors import CookieTooLargeError, EncryptionUnavailableError
from session_core.hints import did_you_mean, pip_install, unknown_option

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
