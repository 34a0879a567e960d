"""The hook specifications a store plugin implements.

A store plugin is a module (or any object) named by an entry point in the group
``session_core.stores``; the entry point's name is the store's public name. It implements both
hooks below with :data:`session_core.hookimpl`::

    import session_core

    @session_core.hookimpl
    def session_core_store_api_version() -> int:
        return 1  # session_core.STORE_API_VERSION when the plugin was written

    @session_core.hookimpl
    def session_core_create_store(config: session_core.SessionConfig) -> session_core.SessionStore:
        return MyStore(**config.store_options)

The hooks are called once, at start-up, and only on the configured plugin: nothing here runs per
request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .config import SessionConfig
    from .store import SessionStore

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "session_core"
"""The pluggy project name; every hook's name starts with ``session_core_``."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marks the hook specifications below."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin's hook implementations; re-exported as ``session_core.hookimpl``."""


@hookspec(firstresult=True)
def session_core_store_api_version() -> int:  # type: ignore[empty-body]
    """Return the store API version the plugin was written against.

    Return the literal value of :data:`session_core.STORE_API_VERSION` at the time of writing (not
    the attribute itself, which would always match). A plugin outside the range this session-core
    supports fails to load with :class:`~session_core.IncompatiblePluginError`, naming the fix.
    """


@hookspec(firstresult=True)
def session_core_create_store(config: SessionConfig) -> SessionStore:  # type: ignore[empty-body]
    """Build the store for an app configured with ``config``.

    Called once per middleware (app), at start-up. Read the store's own settings from
    ``config.store_options``, and raise :class:`~session_core.ConfigurationError` for bad ones so
    that the app fails to start instead of failing its first request.
    """
