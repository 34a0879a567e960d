"""The message of a test database that cannot be opened says what was found (no server, no
such database, a refused user) and what to do about each, against the real servers."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa
from conftest import SERVER_URLS, unreachable_message


def _failure(kind: str, url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with pytest.raises(sa.exc.OperationalError) as info, engine.connect():
            pass
    finally:
        engine.dispose()
    return unreachable_message(kind, url, info.value.orig or info.value)


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_each_failure_says_what_was_found_and_what_to_do(kind):
    url = sa.make_url(SERVER_URLS[kind])
    missing = _failure(kind, url.set(database="no_such_db_for_the_fixture").render_as_string())
    assert "the server answers but has no database 'no_such_db_for_the_fixture'" in missing
    assert "create it (`" in missing
    assert ".ci/services" not in missing

    refused = _failure(kind, url.set(host="127.0.0.1", port=_refused_port()).render_as_string())
    assert "nothing answers at 127.0.0.1:" in refused
    assert "bash .ci/services" in refused

    stranger = _failure(kind, url.set(username="no_such_user_x", password="pw").render_as_string())
    assert "refuses the user 'no_such_user_x'" in stranger
    assert "pw@" not in stranger
    assert f"SESSION_CORE_TEST_{kind.upper()}_URL" in stranger
