"""The error contract: every error derives from SessionCoreError, builds its message once from
typed attributes, survives pickling, and the core raises no bare built-in error to users."""

from __future__ import annotations

import ast
import builtins
import pickle
from pathlib import Path

import pytest

import session_core
from session_core import errors
from session_core.errors import (
    ConfigurationError,
    CookieTooLargeError,
    DuplicateStoreError,
    EncryptionUnavailableError,
    IncompatiblePluginError,
    InvalidExpiryError,
    ListingUnsupportedError,
    PluginLoadError,
    SessionCoreError,
    SessionNotLoadedError,
    SessionTooLargeError,
    StoreContractError,
    StoreDisabledError,
    StoreNotFoundError,
    StoreUnreachableError,
    UserIndexUnsupportedError,
)
from session_core.testing import MemoryStore, make_record

EXAMPLES: dict[type[SessionCoreError], tuple[SessionCoreError, dict[str, object]]] = {
    ListingUnsupportedError: (ListingUnsupportedError("cookie"), {"store": "cookie"}),
    SessionTooLargeError: (
        SessionTooLargeError("db", 20, 10, "sqlite:///s.db", "max_allowed_packet"),
        {"store": "db", "size": 20, "limit": 10, "target": "sqlite:///s.db"},
    ),
    ConfigurationError: (
        ConfigurationError("cookie_path", "must start with '/'"),
        {"key": "cookie_path", "problem": "must start with '/'"},
    ),
    EncryptionUnavailableError: (EncryptionUnavailableError(), {"key": "store_options"}),
    StoreNotFoundError: (
        StoreNotFoundError("nosuch", ["cookie", "db"]),
        {"name": "nosuch", "available": ("cookie", "db")},
    ),
    StoreDisabledError: (
        StoreDisabledError("redis", ["cookie"]),
        {"name": "redis", "available": ("cookie",)},
    ),
    DuplicateStoreError: (
        DuplicateStoreError("x", ["a 1.0", "b 2.0"]),
        {"name": "x", "distributions": ("a 1.0", "b 2.0")},
    ),
    PluginLoadError: (
        PluginLoadError("x", "dist", "1.0", "boom"),
        {"name": "x", "distribution": "dist", "version": "1.0", "reason": "boom"},
    ),
    IncompatiblePluginError: (
        IncompatiblePluginError("x", "dist", "1.0", 9, range(1, 2)),
        {"name": "x", "plugin_api": 9, "supported": range(1, 2)},
    ),
    CookieTooLargeError: (
        CookieTooLargeError(5000, 4096, "cookie"),
        {"size": 5000, "limit": 4096, "store": "cookie"},
    ),
    SessionNotLoadedError: (SessionNotLoadedError("redis"), {"store": "redis"}),
    StoreUnreachableError: (
        StoreUnreachableError("redis", "127.0.0.1:1", "load", "refused"),
        {"store": "redis", "target": "127.0.0.1:1", "operation": "load"},
    ),
    InvalidExpiryError: (InvalidExpiryError(-1, "negative"), {"value": -1, "problem": "negative"}),
    StoreContractError: (
        StoreContractError("mine", "save", "no key"),
        {"store": "mine", "method": "save", "problem": "no key"},
    ),
    UserIndexUnsupportedError: (
        UserIndexUnsupportedError("files", "list the sessions of a user"),
        {
            "store": "files",
            "operation": "list the sessions of a user",
            "reason": "it keeps no index of sessions by user",
        },
    ),
}


def test_every_error_class_has_an_example():
    classes = {getattr(errors, name) for name in errors.__all__}
    missing = sorted(c.__name__ for c in classes - {SessionCoreError} - set(EXAMPLES))
    assert not missing, f"add an example of {missing} to EXAMPLES, with its attributes"
    assert set(EXAMPLES) <= classes
    assert all(getattr(session_core, name) is getattr(errors, name) for name in errors.__all__)


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda c: c.__name__)
def test_each_error_carries_its_data_and_one_message(cls):
    error, attributes = EXAMPLES[cls]
    assert isinstance(error, SessionCoreError)
    assert error.args == (str(error),)
    for name, value in attributes.items():
        assert getattr(error, name) == value


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda c: c.__name__)
def test_each_error_survives_pickling(cls):
    error, attributes = EXAMPLES[cls]
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    assert copy.args == error.args
    for name, value in attributes.items():
        assert getattr(copy, name) == value


def test_the_disabled_store_message_is_its_own():
    error = StoreDisabledError("redis", ["cookie"])
    assert "SESSION_CORE_DISABLE_PLUGINS" in str(error)
    assert "is installed" not in str(error)
    assert isinstance(error, StoreNotFoundError)


def test_no_error_class_rewrites_its_args():
    tree = ast.parse(Path(errors.__file__).read_text())
    rewrites = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "args"
        and isinstance(node.ctx, ast.Store)
    ]
    assert rewrites == []


# What the core may raise that is not a SessionCoreError, and why.
_ALLOWED = {
    # The documented contract: a value of the wrong type (a session value JSON cannot hold, a
    # set_expiry argument, a key that is not a str).
    "TypeError": "*",
    # The conformance suite's hooks that a store's test class must override.
    "NotImplementedError": {"testing.py"},
    # Parsers whose callers catch it: a cookie that does not inflate is an empty session, and
    # decode_json fails like json.loads for the stores that call it on corrupt data. And a test
    # helper given an operation it does not have (OutageStore.fail): a mistake in the test.
    "ValueError": {"cookie.py", "store.py", "testing.py"},
    # The mapping contract: the session is a dict, whose pop() and popitem() raise KeyError.
    "KeyError": {"session.py"},
}
_BUILTIN_ERRORS = {name for name in dir(builtins) if name.endswith(("Error", "Exception"))}


def test_the_core_raises_no_bare_builtin_error():
    root = Path(session_core.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = call.id if isinstance(call, ast.Name) else None
            if name not in _BUILTIN_ERRORS:
                continue
            allowed = _ALLOWED.get(name, set())
            if allowed != "*" and path.name not in allowed:
                found.append(f"{path.relative_to(root)}:{node.lineno} raises {name}")
    assert found == []


def test_a_store_that_returns_no_key_for_a_new_session_is_named():
    class Forgetful(MemoryStore):
        name = "forgetful"

        def save(self, key, record, changes):
            return None if key is None else super().save(key, record, changes)

    store = Forgetful()
    with pytest.raises(StoreContractError, match=r"'forgetful'.*save") as info:
        store.cycle_key("k" * 43, make_record({"a": 1}))
    assert info.value.store == "forgetful"
    assert isinstance(info.value, RuntimeError)  # what it raised before
