"""The ``session-core`` command (also ``python -m session_core``).

Subcommands: ``stores`` lists the installed stores and extensions, ``check`` validates the
configuration, makes a real round trip to the configured store and prints what the store reports
about itself (a store's optional ``check_report()``, such as the redis store's persistence mode),
``clear-expired`` removes expired sessions, and ``demo`` serves a small app that shows sessions
at work. Every subcommand reads the TOML file given by ``--config`` (or ``SESSION_CORE_CONFIG``)
and ``SESSION_CORE_*`` variables. Plugins add their own subcommands (the hook
``session_core_add_commands``); they are loaded only when the command line names no built-in
subcommand, and one that fails to load is reported on stderr while the rest carries on.

Bad input is reported in one line naming the problem and the fix, with a non-zero exit code:
2 for a configuration problem (an unknown store included), 1 for a store that failed.

``check`` and ``clear-expired`` take ``--app module:app`` (the settings of a Flask, Starlette or
FastAPI app), read a Django project's settings when ``DJANGO_SETTINGS_MODULE`` is set, and take
``--store`` (another store starts with no options) and ``--store-option NAME=VALUE``; see
``_command_config``. ``clear-expired`` needs no secret key.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TextIO, TypeVar

from . import __version__
from ._command_config import (
    add_store_arguments,
    load_command_config,
    parse_store_options,
    store_target,
)
from ._compat import Subparsers
from .errors import (
    ConfigurationError,
    SessionCoreError,
    StoreNotFoundError,
    StoreUnreachableError,
)
from .registry import (
    LoadedPlugin,
    PluginInfo,
    available_stores,
    create_store,
    default_registry,
)
from .session import Session
from .store import SessionStore

__all__ = ["CheckNote", "main"]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

BUILTIN_COMMANDS = ("stores", "check", "clear-expired", "demo", "migrate")

_T = TypeVar("_T")


# ---------------------------------------------------------------------- stores


def _cmd_stores(args: argparse.Namespace, out: TextIO) -> int:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # failures are shown in the table instead
        stores = available_stores()
        extensions = default_registry().extensions()
    if args.json:
        rows = [_row(s, "store") for s in stores]
        rows += [{**_row(e, "extension"), "hooks": list(e.hooks)} for e in extensions]
        json.dump(rows, out, indent=2)
        out.write("\n")
        return EXIT_OK
    _table(out, stores)
    out.write("\nEXTENSIONS\n")
    if extensions:
        _table(out, extensions)
    else:
        out.write("none installed\n")
    return EXIT_OK


def _row(info: PluginInfo, kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": info.name,
        "distribution": info.distribution,
        "version": info.version,
        "module": info.module,
        "status": info.status,
        "error": info.error,
    }


def _table(out: TextIO, plugins: Sequence[PluginInfo]) -> None:
    table = [("NAME", "DISTRIBUTION", "VERSION", "MODULE", "STATUS")]
    for p in plugins:
        status = p.status if p.ok else f"{p.status}: {p.error}"
        table.append((p.name, p.distribution, p.version, p.module, status))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.write("  ".join([*cells, row[4]]).rstrip() + "\n")


# ---------------------------------------------------------------------- check


def _cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    loaded = load_command_config(args)
    config = loaded.config
    store = create_store(config)  # the store's name and options are part of the configuration
    target = store_target(store, config)
    out.write(
        f"ok   configuration is valid (store {config.store_name!r}; settings from "
        f"{loaded.source})\n"
    )
    out.write(f"ok   store {config.store_name!r} loaded ({type(store).__module__})\n")
    out.write(f"     probing {target}\n")
    try:
        code = _probe(store, out, store.name or config.store_name, target)
        if code == EXIT_OK:
            warnings = _report(store, out)
            out.write("all checks passed" + (f", {warnings} warning(s)\n" if warnings else "\n"))
        return code
    finally:
        store.close()


class CheckNote(Protocol):
    """A line a store adds to ``session-core check``: see :func:`_report`."""

    @property
    def text(self) -> str: ...  # what was found, and the fix for a warning
    @property
    def warning(self) -> bool: ...  # whether it needs attention (printed as "warn")


def _report(store: SessionStore, out: TextIO) -> int:
    """Print what the store itself has to say (its server's durability, limits, ...): a store
    may define ``check_report() -> Iterable[CheckNote]``. Returns the number of warnings."""
    report: Callable[[], Iterable[CheckNote]] | None = getattr(store, "check_report", None)
    warnings = 0
    for note in report() if report is not None else ():
        warnings += note.warning
        out.write(f"{'warn' if note.warning else 'ok  '} {note.text}\n")
    return warnings


def _probe(store: SessionStore, out: TextIO, name: str, target: str) -> int:
    token = secrets.token_hex(8)
    session = Session(store)
    session["session_core_check"] = token
    started = time.perf_counter()
    key = _step(lambda: session.save(), name, target, "save a probe session")
    if key is None:
        out.write("FAIL save returned no key\n")
        return EXIT_FAILED
    out.write(f"ok   wrote a probe session ({_ms(started)})\n")
    started = time.perf_counter()
    loaded = Session(store, key)
    if _step(lambda: loaded.get("session_core_check"), name, target, "read it back") != token:
        out.write("FAIL the probe session did not read back\n")
        return EXIT_FAILED
    out.write(f"ok   read it back ({_ms(started)})\n")
    started = time.perf_counter()
    _step(lambda: store.delete(key), name, target, "delete it")
    if not store.local and _step(lambda: store.load(key), name, target, "load") is not None:
        out.write("FAIL the probe session is still there after delete\n")
        return EXIT_FAILED
    out.write(f"ok   deleted it ({_ms(started)})\n")
    return EXIT_OK


def _step(call: Callable[[], _T], name: str, target: str, operation: str) -> _T:
    """Run one probe step; a driver's own exception becomes a :class:`StoreUnreachableError`
    that names the store and where it points."""
    try:
        return call()
    except SessionCoreError:
        raise
    except Exception as exc:
        raise StoreUnreachableError(name, target, operation, _one_line(exc)) from exc


def _ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.1f} ms"


# ---------------------------------------------------------------------- clear-expired


def _cmd_clear_expired(args: argparse.Namespace, out: TextIO) -> int:
    # No secret needed: the secret signs cookies, and this only deletes server records.
    config = load_command_config(args, needs_secret=False).config
    store = create_store(config)
    try:
        if not type(store).needs_cleanup:
            out.write(
                f"store {config.store_name!r} needs no cleanup: its sessions expire by themselves\n"
            )
            return EXIT_OK
        target = store_target(store, config)
        started = time.monotonic()
        progress = _progress_printer(sys.stderr, started)
        removed = (
            _step(
                lambda: store.clear_expired(progress),
                store.name or config.store_name,
                target,
                "clear expired sessions",
            )
            or 0
        )
    finally:
        store.close()
    elapsed = time.monotonic() - started
    out.write(
        f"removed {removed} expired session{'s' if removed != 1 else ''} from {target} "
        f"in {elapsed:.1f}s\n"
    )
    return EXIT_OK


def _progress_printer(err: TextIO, started: float) -> Callable[[int], None]:
    interactive = err.isatty()
    last = [0.0]

    def progress(removed: int) -> None:
        now = time.monotonic()
        # Nothing removed yet says nothing the final line will not: stay quiet.
        if removed == 0 or now - last[0] < 0.5:
            return
        last[0] = now
        line = f"removed {removed} so far ({removed / max(now - started, 1e-6):.0f}/s)"
        err.write(f"\r{line}" if interactive else f"{line}\n")
        err.flush()

    return progress


# ---------------------------------------------------------------------- demo


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from .demo import serve  # type: ignore[import-not-found,unused-ignore]

    options = parse_store_options(args.store_option)
    code: int = serve(
        config_path=args.config,
        store=args.store,
        store_options=options or None,
        host=args.host,
        port=args.port,
        out=out,
    )
    return code


# ---------------------------------------------------------------------- migrate


def _add_migrate_command(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    migrate = commands.add_parser(
        "migrate",
        parents=[common],
        help="copy every live session from the old store to the new one of the migrate store",
        description="Copy every live session from store_options.old to store_options.new of "
        "the configured migrate store, page by page, while the site serves traffic on it. "
        "Sessions already in the new store are left as they are.",
    )
    migrate.add_argument(
        "--state",
        metavar="FILE",
        help="keep the progress in FILE after each page, and resume from it when it exists",
    )
    migrate.add_argument("--batch", type=int, default=500, help="records per page (default 500)")
    migrate.set_defaults(run=_cmd_migrate)


def _cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    from .copying import CopyProgress, check_copyable, copy_sessions
    from .migrate import MigrateStore

    if args.batch < 1:
        raise ConfigurationError(None, f"--batch must be at least 1, not {args.batch}")
    # No secret needed: copying moves server records as they are.
    config = load_command_config(args, needs_secret=False).config
    store = create_store(config)
    try:
        if not isinstance(store, MigrateStore):
            raise ConfigurationError(
                "store",
                f"session-core migrate copies between the two stores of a migrate store, and "
                f'the configured store is {config.store_name!r}: set store = "migrate" with '
                f"store_options old = {{store = ...}} and new = {{store = ...}}",
            )
        check_copyable(store.old, store.new)
        start = _read_state(args.state) if args.state else None
        if start is not None and start.done:
            out.write(f"already done ({args.state}): {_describe_copy(start)}\n")
            return EXIT_OK

        def report(progress: CopyProgress) -> None:
            if args.state:
                _write_state(args.state, progress)
            print(_describe_copy(progress), file=sys.stderr, flush=True)

        final = copy_sessions(
            store.old, store.new, start=start or CopyProgress(), batch=args.batch, on_page=report
        )
    finally:
        store.close()
    out.write(f"done: {_describe_copy(final)}\n")
    return EXIT_OK


def _describe_copy(progress: Any) -> str:
    return (
        f"{progress.listed} listed, {progress.copied} copied, {progress.present} already in the "
        f"new store, {progress.dropped} deleted while copied"
    )


def _read_state(path: str) -> Any:
    import dataclasses
    import os

    from .copying import CopyProgress

    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)
        names = {f.name for f in dataclasses.fields(CopyProgress)}
        return CopyProgress(**{k: v for k, v in saved.items() if k in names})
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            None,
            f"--state {path}: not a progress file of session-core migrate ({exc}); "
            f"remove it to start over",
        ) from exc


def _write_state(path: str, progress: Any) -> None:
    import dataclasses
    import os

    # Written aside then renamed: a copy stopped mid-write resumes from the previous page.
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(dataclasses.asdict(progress), file)
    os.replace(temporary, path)


# ---------------------------------------------------------------------- main


def _parser() -> tuple[argparse.ArgumentParser, Subparsers]:
    parser = argparse.ArgumentParser(
        prog="session-core",
        description="Sessions for WSGI and ASGI apps: list stores, check a configuration, "
        "clear expired sessions, run the demo.",
    )
    parser.add_argument("--version", action="version", version=f"session-core {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file with the settings (default: $SESSION_CORE_CONFIG); "
        "SESSION_CORE_* environment variables override it",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    stores = commands.add_parser(
        "stores", parents=[common], help="list every installed store and whether it loads"
    )
    stores.add_argument("--json", action="store_true", help="print JSON for scripts")
    stores.set_defaults(run=_cmd_stores)

    check = commands.add_parser(
        "check",
        parents=[common],
        help="validate the configuration and make a round trip to the store",
    )
    add_store_arguments(check, what="check")
    check.set_defaults(run=_cmd_check)

    clear = commands.add_parser(
        "clear-expired", parents=[common], help="remove expired sessions from the store"
    )
    add_store_arguments(clear, what="clean")
    clear.set_defaults(run=_cmd_clear_expired)

    demo = commands.add_parser("demo", parents=[common], help="serve the demo app")
    demo.add_argument("--store", help="the store to use (default: cookie)")
    demo.add_argument(
        "--store-option",
        action="append",
        metavar="NAME=VALUE",
        help="a store option, such as url=redis://127.0.0.1:6379/0 (repeatable)",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on")
    demo.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    demo.set_defaults(run=_cmd_demo)
    _add_migrate_command(commands, common)
    return parser, commands


# ---------------------------------------------------------------------- plugin commands


def _needs_plugins(argv: Sequence[str]) -> bool:
    """Whether the command line may name a plugin's command (or asks for the help that lists
    them): loading every plugin is skipped for the built-in commands."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first not in BUILTIN_COMMANDS


def _add_plugin_commands(commands: Subparsers) -> dict[str, LoadedPlugin]:
    """Let every plugin that loads add its commands; returns which plugin added each one. A
    plugin that fails is reported on stderr and left out."""
    registry = default_registry()
    loaded, failed = registry.load_plugins()
    for error in failed:
        _warn(f"{error}; its commands are not available (see `session-core stores`)")
    owners: dict[str, LoadedPlugin] = {}
    for plugin in loaded:
        before = set(commands.choices)
        try:
            registry.add_commands(plugin, commands)
        except Exception as exc:  # a plugin's bug must not take the command line down
            _warn(
                f"the plugin {plugin.name!r} ({plugin.distribution} {plugin.version}) could not "
                f"add its commands: {_one_line(exc)}"
            )
        owners.update((name, plugin) for name in set(commands.choices) - before)
    return owners


def _warn(message: str) -> None:
    print(f"session-core: warning: {message}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    detail = " ".join(str(exc).split()) or "no details"
    return f"{type(exc).__name__}: {detail}"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, commands = _parser()
    owners = _add_plugin_commands(commands) if _needs_plugins(argv) else {}
    args = parser.parse_args(argv)
    stream = out if out is not None else sys.stdout
    run = getattr(args, "run", None)
    if run is None:
        owner = owners.get(args.command)
        where = f" (from {owner.distribution} {owner.version})" if owner else ""
        print(
            f"session-core: error: the {args.command} command{where} set no handler: its "
            f"plugin must call set_defaults(run=...) on the parser it adds",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        code: int | None = run(args, stream)
    except (ConfigurationError, StoreNotFoundError) as exc:  # the command line's to fix
        print(f"session-core: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SessionCoreError as exc:
        print(f"session-core: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("session-core: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a plugin's own error: one line, not a traceback
        owner = owners.get(args.command)
        where = f" (from {owner.distribution} {owner.version})" if owner else ""
        print(
            f"session-core: error: the {args.command} command{where} failed: {_one_line(exc)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK if code is None else code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
