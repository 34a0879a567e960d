"""Every private name of a dependency that the core uses, fenced here, each with a test in
``tests/test_compat.py`` that fails when the dependency changes it.

- ``json.encoder.c_make_encoder`` (CPython's C encoder, undocumented) and
  ``json.encoder.encode_basestring`` (its string encoder, undocumented): building the encoder once
  makes encoding a session several times cheaper than ``json.dumps``. A Python without them, or
  whose encoder no longer takes the arguments used here, gets ``json.JSONEncoder`` instead.
- Django's ``HttpResponse._has_been_logged`` (``django.utils.log.log_response``): marks the 503
  of a store outage as logged, see :func:`mark_logged`.
- ``argparse._SubParsersAction``: the type of what ``ArgumentParser.add_subparsers()`` returns,
  which argparse does not name publicly; :data:`Subparsers` names it for the
  ``session_core_add_commands`` hook's annotations (argparse is not imported at run time).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import argparse

__all__ = ["Subparsers", "compact_json_encoder", "mark_logged"]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""The type of :meth:`argparse.ArgumentParser.add_subparsers`'s result."""

# A value that exercises every branch of the encoder, and the JSON it must give.
_PROBE: Any = {"s": 'é"\\\n', "i": -1, "f": 0.5, "b": [True, False, None], "d": {}}
_PROBE_JSON = '{"s":"é\\"\\\\\\n","i":-1,"f":0.5,"b":[true,false,null],"d":{}}'


def _not_json(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _fallback() -> Callable[[Any], str]:
    return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def c_encoder() -> Callable[[Any], str] | None:
    """CPython's C encoder, made once with compact separators and UTF-8 characters kept; ``None``
    when it is missing.

    It skips the circular-reference check (which needs a fresh dict per call): sessions check
    their values when they are set, and a cycle made afterwards fails with RecursionError.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (PyPy)
        return None
    encode = make(
        None,  # markers: no circular-reference check
        _not_json,  # default
        json.encoder.encode_basestring,  # encoder: keeps non-ASCII characters
        None,  # indent
        ":",  # key_separator
        ",",  # item_separator
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )
    return lambda value: "".join(encode(value, 0))


def compact_json_encoder() -> Callable[[Any], str]:
    """A function giving ``value`` as compact JSON (no spaces, UTF-8 characters kept), exactly as
    ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)`` does.

    The C encoder when it is there and still gives that output for a probe value; otherwise
    ``json.JSONEncoder``, so a change of its signature or behaviour costs speed, not correctness.
    """
    try:
        encode = c_encoder()
        works = encode is not None and encode(_PROBE) == _PROBE_JSON
    except Exception:  # any failure of a private API means: do not use it
        return _fallback()
    return encode if works and encode is not None else _fallback()


def mark_logged(response: Any) -> None:
    """Tell Django's request logging that ``response`` was logged already.

    The 503 of a store outage is logged once, by :func:`session_core._http.store_unavailable`,
    with the store's message; without this, Django's handler logs it a second time as an error
    ("Service Unavailable: /path"). Django marks the responses it logged with this attribute
    (``django.utils.log.log_response``); there is no public way to do it.
    """
    response._has_been_logged = True
