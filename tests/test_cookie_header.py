"""Finding the session cookie in a ``Cookie`` request header."""

from __future__ import annotations

import pytest

from session_core._http import parse_cookie_value


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("sessionid=abc", "abc"),
        ("theme=dark; sessionid=abc; other=1", "abc"),
        ("theme=dark;sessionid=abc", "abc"),
        ("xsessionid=nope; sessionid=abc", "abc"),
        ("sessionidx=nope; sessionid=abc", "abc"),
        ("other=sessionid=nope; sessionid=abc", "abc"),
        ("other=a sessionid=nope", None),
        ('sessionid="abc"', "abc"),
        ('sessionid="', '"'),
        ("sessionid=", None),
        ("sessionid", None),
        ("sessionid=abc; sessionid=def", "abc"),
        ("  \tsessionid = abc ;x=1", "abc"),
        ("sessionid =first; sessionid=second", "first"),
        ("flag; sessionid=abc", "abc"),
        ("sessionid=a=b", "a=b"),
    ],
)
def test_finds_the_first_cookie_of_that_name(header, expected):
    assert parse_cookie_value(header, "sessionid") == expected
