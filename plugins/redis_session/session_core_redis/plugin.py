"""The pluggy hooks that make this distribution the ``redis`` store of session-core.

Registered as the entry point ``redis`` in the group ``session_core.stores``; session-core calls
these hooks once, at start-up, and only when ``store = "redis"`` is configured.
"""

from __future__ import annotations

import session_core
from session_core import SessionConfig

from .store import RedisStore

__all__ = ["session_core_create_store", "session_core_store_api_version"]


@session_core.hookimpl
def session_core_store_api_version() -> int:
    """The store API this plugin was written against."""
    return 1


@session_core.hookimpl
def session_core_create_store(config: SessionConfig) -> RedisStore:
    """The redis store for ``config``, from its ``store_options`` (validated, not connected)."""
    return RedisStore(config.store_options)
