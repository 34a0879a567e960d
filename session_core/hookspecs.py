"""The hook specifications plugins implement.

A store plugin is a module (or any object) named by an entry point in the group
``session_core.stores``; the entry point's name is the store's public name. It implements the two
store hooks below with :data:`session_core.hookimpl`::

    import session_core

    @session_core.hookimpl
    def session_core_store_api_version() -> int:
        return 1  # session_core.STORE_API_VERSION when the plugin was written

    @session_core.hookimpl
    def session_core_create_store(config: session_core.SessionConfig) -> session_core.SessionStore:
        return MyStore(**config.store_options)

The store hooks are called once, at start-up, and only on the configured plugin: nothing here
runs per request.

An extension is a plugin that is not a store, named by an entry point in the group
``session_core.extensions``. Extensions (and store plugins) may implement the other hooks:
:func:`session_core_add_commands` adds subcommands to the ``session-core`` command, and
:func:`session_core_session_event` observes what happens to sessions. Every hook's name starts
with ``session_core_``; a misspelt one fails to load with a "did you mean".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from ._compat import Subparsers

if TYPE_CHECKING:
    from .config import SessionConfig
    from .events import SessionEvent
    from .store import SessionStore

__all__ = ["PROJECT_NAME", "Subparsers", "hookimpl", "hookspec"]

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


@hookspec
def session_core_add_commands(subparsers: Subparsers) -> None:
    """Add subcommands to the ``session-core`` command.

    ``subparsers`` is the command's :meth:`argparse.ArgumentParser.add_subparsers` action. Add a
    parser for each command and give it a handler with ``set_defaults(run=handler)``; the
    handler takes the parsed ``argparse.Namespace`` and the text stream to write to, and returns
    the exit code::

        def hello(args: argparse.Namespace, out: TextIO) -> int:
            out.write(f"hello {args.name}\\n")
            return 0

        @session_core.hookimpl
        def session_core_add_commands(subparsers):
            parser = subparsers.add_parser("hello", help="say hello")
            parser.add_argument("--name", default="world")
            parser.set_defaults(run=hello)

    Called when ``session-core`` starts with a command line that names no built-in command
    (``--help`` included), on every plugin that loads; a plugin that fails to load (or whose
    hook raises) is reported on stderr and the command carries on without it.
    Name commands after your plugin (the db store adds ``session-core db``): a name already taken
    is refused.
    """


@hookspec
def session_core_session_event(event: SessionEvent) -> None:
    """Observe one store call of a request: a session created, saved, cycled, flushed, revoked,
    or a store error.

    ``event`` is a :class:`~session_core.events.SessionEvent`: ``event.kind`` (an
    :class:`~session_core.events.EventKind`, equal to ``"created"``, ``"saved"``, ``"cycled"``,
    ``"flushed"``, ``"revoked"`` or ``"store_error"``), ``event.store`` (the store's name),
    ``event.key_hash`` (never the key), ``event.user_id`` (``None`` when there is none) and
    ``event.duration`` (seconds the store call took). The return value is ignored.

    Called in the request, right after each store call the session middleware (WSGI, ASGI,
    Starlette, Flask) or the Django engine makes: ``"created"`` when a new session is first
    saved, ``"saved"`` when an existing one is, ``"cycled"`` after ``cycle_key()`` (the new
    key's hash: a sign-in when ``user_id`` is set), ``"flushed"`` when a flushed or emptied
    session's record is deleted (a sign-out), ``"store_error"`` when the call raised
    :class:`~session_core.StoreUnreachableError` (then the error goes on as before), and
    ``"revoked"`` from code that deletes a user's sessions (see
    :class:`~session_core.events.EventEmitter`). Reads send no event, nor does a save that
    finds its session deleted by another request.

    Keep it fast (count, time, queue; no I/O inline): it runs in the visitor's request. An
    exception it raises is logged once per plugin and exception type and the request goes on;
    the other plugins still get the event. With no plugin implementing this hook nothing is
    built, timed or called per request (see
    :meth:`session_core.registry.StoreRegistry.event_emitter`); the plugins observing are
    those installed when the middleware was built.
    """
