"""The dependencies' private names the core uses (session_core/_compat.py): each test fails when
the dependency changes the name, its signature or its output, and the fallbacks are correct."""

from __future__ import annotations

import json
import platform
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session_core import _compat
from session_core.store import encode_json

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
SAMPLES: list[Any] = [
    {},
    [],
    "",
    {"user": 42, "cart": [1, 2.5, None, True], "name": "Zoë \u2603 😀", "q": '"\\\n\t\x00'},
    [{"a": {"b": [{"c": -0.0}]}}, 1e300, -(2**70)],
    "plain",
]


def reference(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


on_cpython = pytest.mark.skipif(
    platform.python_implementation() != "CPython", reason="the C encoder is CPython's"
)


@on_cpython
def test_cpython_still_has_the_c_encoder_with_the_signature_we_call():
    # c_encoder() calls json.encoder.c_make_encoder with the nine positional arguments of
    # CPython 3.11 to 3.14: a rename, a removal or a new signature fails here.
    assert json.encoder.c_make_encoder is not None
    encode = _compat.c_encoder()
    assert encode is not None
    for value in SAMPLES:
        assert encode(value) == reference(value)


@on_cpython
def test_the_core_uses_the_c_encoder_on_cpython():
    # A silent fallback would cost speed on every save: noticed here, not in production.
    assert _compat.compact_json_encoder().__qualname__.startswith("c_encoder")


@on_cpython
@settings(deadline=None)  # no per-example time limit: the machine may be busy
@given(json_values)
def test_the_c_encoder_writes_what_json_dumps_writes(value):
    encode = _compat.c_encoder()
    assert encode is not None
    assert encode(value) == reference(value)
    assert encode_json(value) == reference(value)


def test_encode_basestring_keeps_characters_and_escapes_like_json_dumps():
    text = 'Zoë "quoted" \\ \n \x1f \u2028 😀'
    assert json.encoder.encode_basestring(text) == reference(text)


@settings(deadline=None)
@given(json_values)
def test_without_the_c_encoder_the_fallback_is_exact(value):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json.encoder, "c_make_encoder", None)
        assert _compat.c_encoder() is None
        encode = _compat.compact_json_encoder()
    assert encode(value) == reference(value)


def _changed_signature(*args: Any) -> Any:
    raise TypeError(f"c_make_encoder() takes 10 arguments ({len(args)} given)")


def _changed_output(*args: Any) -> Any:
    return lambda value, level: ["something else"]


@pytest.mark.parametrize("changed", [_changed_signature, _changed_output])
def test_a_changed_c_encoder_is_not_used(changed):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json.encoder, "c_make_encoder", changed)
        encode = _compat.compact_json_encoder()
    # (json.JSONEncoder, the fallback, is checked with the real module: a Python that changed
    # c_make_encoder changed its own JSONEncoder to match.)
    assert not encode.__qualname__.startswith("c_encoder")
    for value in SAMPLES:
        assert encode(value) == reference(value)


def test_the_probe_is_what_json_dumps_writes():
    assert reference(_compat._PROBE) == _compat._PROBE_JSON


def test_add_subparsers_returns_the_class_subparsers_names():
    import argparse

    action = argparse.ArgumentParser().add_subparsers()
    assert type(action) is argparse._SubParsersAction
    assert _compat.Subparsers == "argparse._SubParsersAction[argparse.ArgumentParser]"
    assert callable(action.add_parser)
    assert isinstance(action.choices, dict)
