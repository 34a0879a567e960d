"""Finding plugins: the built-in ``cookie`` store plus plugins from the ``session_core.stores``
entry-point group, and extensions from the ``session_core.extensions`` group, loaded through
pluggy.

Resolution happens once, at start-up (when a middleware is built): the configured store's entry
point alone is imported, its hooks are validated, and the store object it builds is handed to the
middleware, which calls it directly from then on. The default (``cookie``) path scans no
installed distribution at all. Extensions are loaded only when something asks for them: the
``session-core`` command (for their commands and the listing) and
:attr:`StoreRegistry.observes_events`.
"""

from __future__ import annotations

import importlib
import os
import secrets
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import pluggy

from . import cookie, hookspecs, migrate, tiered
from ._compat import Subparsers
from ._hook_checks import hook_problems
from .config import SessionConfig
from .errors import (
    ConfigurationError,
    DuplicateStoreError,
    IncompatiblePluginError,
    PluginLoadError,
    SessionCoreError,
    StoreDisabledError,
    StoreNotFoundError,
)
from .events import EventEmitter, Observer, SessionEvent
from .store import SUPPORTED_STORE_API, SessionStore

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "BUILTIN_STORES",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "EXTENSION_GROUP",
    "ExtensionInfo",
    "LoadedPlugin",
    "PluginInfo",
    "PluginLoadWarning",
    "StoreInfo",
    "StoreRegistry",
    "available_stores",
    "create_store",
    "default_registry",
    "refresh",
]

ENTRY_POINT_GROUP = "session_core.stores"
"""The entry-point group store plugins register in; the entry point's name is the store's name."""

EXTENSION_GROUP = "session_core.extensions"
"""The entry-point group of extensions: plugins that are not stores (commands, observers)."""

DISABLE_ENV = "SESSION_CORE_DISABLE_PLUGINS"
"""Environment variable naming plugins not to load (comma-separated), or ``*`` for all."""

BUILTIN_STORES = ("cookie", "migrate", "tiered")
"""Stores registered in code, found without scanning installed distributions."""

_BUILTIN_MODULES = {"cookie": cookie, "migrate": migrate, "tiered": tiered}

_CORE_DIST = "session-core"


_SESSION_EVENT_HOOK = "session_core_session_event"


def _observer(call: Any) -> Observer:
    def observe(event: SessionEvent) -> None:
        call(event=event)

    return observe


class PluginLoadWarning(UserWarning):
    """A plugin failed to load while listing plugins or loading extensions (the rest goes on
    without it)."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One installed plugin and whether it loads: what :class:`StoreInfo` and
    :class:`ExtensionInfo` share.

    Attributes:
        name: the plugin's entry-point name.
        distribution: the distribution that provides it.
        version: that distribution's version.
        module: where the plugin lives (the entry point's value).
        status: ``"ok"``, ``"error"`` (it failed to load), ``"conflict"`` (its name is claimed
            more than once) or ``"disabled"`` (blocked by ``SESSION_CORE_DISABLE_PLUGINS``).
        error: for any status but ``"ok"``, what is wrong, in one line.
    """

    name: str
    distribution: str
    version: str
    module: str
    status: str = "ok"
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the plugin loaded and can be used."""
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class StoreInfo(PluginInfo):
    """One store as :func:`available_stores` reports it; its ``name`` is the store's public name
    (what ``store = ...`` takes), and a ``"conflict"`` means two distributions claim it."""


@dataclass(frozen=True, slots=True)
class ExtensionInfo(PluginInfo):
    """One extension (a plugin in :data:`EXTENSION_GROUP`) as :meth:`StoreRegistry.extensions`
    reports it; a ``"conflict"`` means a store or another distribution's extension has its name.

    Attributes:
        hooks: the hooks it implements, when it loaded.
    """

    hooks: tuple[str, ...] = ()


class LoadedPlugin(NamedTuple):
    """A plugin that loaded: its name, where it comes from, and the plugin object."""

    name: str
    distribution: str
    version: str
    plugin: object


def _scan_entry_points(group: str = ENTRY_POINT_GROUP) -> tuple[EntryPoint, ...]:
    """Every installed entry point in ``group`` (importlib.metadata is imported only here: the
    default, built-in path never needs it)."""
    from importlib.metadata import entry_points

    return tuple(entry_points(group=group))


def _dist_of(ep: EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:  # pragma: no cover - entry_points() always sets it
        return ("unknown", "unknown")
    return (dist.metadata["Name"] or dist.name, dist.version)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _disabled_names(environ: Any = None) -> frozenset[str]:
    raw = (os.environ if environ is None else environ).get(DISABLE_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


class StoreRegistry:
    """The plugins one process can use: the built-in stores, store plugins and extensions found
    through entry points.

    Entry points are read once, when first needed, and a plugin is imported only when it is
    configured or listed. Most code uses the process-wide :func:`default_registry` through
    :func:`create_store` and :func:`available_stores`.

    Args:
        entry_points: the plugins' entry points, stores and extensions told apart by their
            group; by default those installed in :data:`ENTRY_POINT_GROUP` and
            :data:`EXTENSION_GROUP`.
        disabled: plugin names not to load (``"*"`` for all); by default read from
            ``SESSION_CORE_DISABLE_PLUGINS``.
    """

    def __init__(
        self,
        entry_points: Iterable[EntryPoint] | None = None,
        disabled: Iterable[str] | None = None,
    ) -> None:
        self._given_entry_points = None if entry_points is None else tuple(entry_points)
        self._scanned: dict[str, dict[str, list[EntryPoint]]] = {}
        self._disabled = frozenset(disabled) if disabled is not None else _disabled_names()
        self._lock = threading.RLock()
        self._aliases: dict[str, str] = {}  # entry-point name -> pluggy name of the same object
        self._stores = set(BUILTIN_STORES)  # names loaded as stores (not extensions)
        self._extensions: list[ExtensionInfo] | None = None
        self._observes_events: bool | None = None
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        for builtin, module in _BUILTIN_MODULES.items():
            self._pm.register(module, name=builtin)
        for name in self._disabled:
            if name != "*" and name not in BUILTIN_STORES:
                self._pm.set_blocked(name)

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy plugin manager holding the loaded plugins."""
        return self._pm

    # ------------------------------------------------------------------ discovery

    def _rescan(self) -> None:
        # Distributions installed since the last scan become visible (new dist-info folders).
        importlib.invalidate_caches()
        with self._lock:
            self._scanned = {}

    def _entry_points(self, group: str = ENTRY_POINT_GROUP) -> dict[str, list[EntryPoint]]:
        with self._lock:
            if group not in self._scanned:
                found = (
                    [ep for ep in self._given_entry_points if ep.group == group]
                    if self._given_entry_points is not None
                    else _scan_entry_points(group)
                )
                by_name: dict[str, list[EntryPoint]] = {}
                for ep in found:
                    claimants = by_name.setdefault(ep.name, [])
                    if all(_dist_of(ep)[0] != _dist_of(other)[0] for other in claimants):
                        claimants.append(ep)
                self._scanned[group] = by_name
            return self._scanned[group]

    def _is_disabled(self, name: str) -> bool:
        return name not in BUILTIN_STORES and ("*" in self._disabled or name in self._disabled)

    def names(self) -> list[str]:
        """Every store name: the built-ins and every installed plugin, loadable or not."""
        return sorted({*BUILTIN_STORES, *self._entry_points()})

    def _usable_names(self) -> list[str]:
        return [n for n in self.names() if not self._is_disabled(n)]

    # ------------------------------------------------------------------ loading

    def _plugin(self, name: str) -> object:
        """The loaded store plugin for ``name``, importing and validating it on first use."""
        with self._lock:
            if name in self._stores:
                return self._pm.get_plugin(self._aliases.get(name, name))
            if self._is_disabled(name):
                raise StoreDisabledError(name, self._usable_names())
            claimants = self._entry_points().get(name, [])
            if not claimants and self._given_entry_points is None:
                self._rescan()  # installed after the first scan? Look once more before failing.
                claimants = self._entry_points().get(name, [])
            if not claimants:
                raise StoreNotFoundError(name, self._usable_names())
            if len(claimants) > 1:
                raise DuplicateStoreError(name, [" ".join(_dist_of(ep)) for ep in claimants])
            plugin = self._register(name, claimants[0])
            try:
                self._check_store_hooks(name, claimants[0], plugin)
            except PluginLoadError:
                self._forget(name, plugin)
                raise
            self._stores.add(name)
            return plugin

    def _register(self, name: str, ep: EntryPoint) -> object:
        """Import the plugin ``ep`` names and register it under ``name`` after checking its
        hooks; a plugin object already registered under another name (a second entry point on
        the same module) is the same plugin, known by one more name."""
        dist, version = _dist_of(ep)
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginLoadError(name, dist, version, _one_line(exc)) from exc
        if self._pm.is_registered(plugin):
            self._aliases[name] = self._pm.get_name(plugin) or name
            return plugin
        problems = hook_problems(self._pm, plugin)
        if problems:
            raise PluginLoadError(
                name, dist, version, f"invalid hook implementation: {'; '.join(problems)}"
            )
        try:
            self._pm.register(plugin, name=name)
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            raise PluginLoadError(
                name, dist, version, f"invalid hook implementation: {_one_line(exc)}"
            ) from exc
        self._observes_events = None
        return plugin

    def _forget(self, name: str, plugin: object) -> None:
        if self._aliases.pop(name, None) is None and self._pm.is_registered(plugin):
            self._pm.unregister(plugin)

    def _check_store_hooks(self, name: str, ep: EntryPoint, plugin: object) -> None:
        dist, version = _dist_of(ep)
        api = self._call(plugin, "session_core_store_api_version")
        if api is None:
            raise PluginLoadError(
                name,
                dist,
                version,
                "it does not implement the hook session_core_store_api_version (a store "
                "plugin implements it and session_core_create_store, each marked with "
                "@session_core.hookimpl); is it meant to be an extension, in the entry-point "
                f"group {EXTENSION_GROUP}?",
            )
        if not isinstance(api, int) or api not in SUPPORTED_STORE_API:
            raise IncompatiblePluginError(
                name, dist, version, api if isinstance(api, int) else -1, SUPPORTED_STORE_API
            )
        if not self._implements(plugin, "session_core_create_store"):
            raise PluginLoadError(
                name, dist, version, "it does not implement the hook session_core_create_store"
            )

    def _implements(self, plugin: object, hook: str) -> bool:
        caller = getattr(self._pm.hook, hook)
        return any(impl.plugin is plugin for impl in caller.get_hookimpls())

    def _call(self, plugin: object, hook: str, **kwargs: Any) -> Any:
        others = [p for p in self._pm.get_plugins() if p is not plugin]
        return self._pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)

    # ------------------------------------------------------------------ stores

    def create(self, config: SessionConfig) -> SessionStore:
        """Build the store ``config`` names (or return it, if ``config.store`` is a store).

        Raises:
            StoreNotFoundError: no store has that name.
            StoreDisabledError: the plugin is blocked by ``SESSION_CORE_DISABLE_PLUGINS``.
            DuplicateStoreError: two distributions claim the name.
            PluginLoadError: the plugin failed to import, has invalid hooks, its create hook
                raised something else than a :class:`~session_core.SessionCoreError`, or it
                built no store, or one with another name.
            IncompatiblePluginError: the plugin was written for another store API.
            ConfigurationError: the store refused its options.
        """
        if isinstance(config.store, SessionStore):
            return config.store
        name = config.store
        plugin = self._plugin(name)
        try:
            store = self._call(plugin, "session_core_create_store", config=config)
        except SessionCoreError:
            raise
        except Exception as exc:
            raise PluginLoadError(
                name,
                *self._describe(name),
                f"its session_core_create_store hook raised {_one_line(exc)}; if that is about "
                f"store_options, correct them (the plugin should raise "
                f"session_core.ConfigurationError for bad options)",
            ) from exc
        return self._checked(name, store)

    def _checked(self, name: str, store: object) -> SessionStore:
        """``store``, after checking it is a store that bears ``name`` (or an alias of it)."""
        if not isinstance(store, SessionStore):
            raise PluginLoadError(
                name,
                *self._describe(name),
                f"session_core_create_store returned {type(store).__name__}, "
                f"not a session_core.SessionStore",
            )
        names = self._names_of(name)
        if store.name not in names:
            raise PluginLoadError(
                name,
                *self._describe(name),
                f"it built a {type(store).__name__} whose name is {store.name!r}, but the "
                f"store's entry point is {name!r}: set name = {name!r} in the class (errors "
                f"and the session-core command name the store by it)",
            )
        return store

    def _names_of(self, name: str) -> set[str]:
        """``name`` and every other entry-point name of the same plugin (its aliases)."""
        if name in BUILTIN_STORES:
            return {name}
        ep = self._entry_points()[name][0]
        return {
            other.name
            for claimants in self._entry_points().values()
            for other in claimants
            if other.value == ep.value and _dist_of(other) == _dist_of(ep)
        }

    def _describe(self, name: str) -> tuple[str, str]:
        if name in BUILTIN_STORES:
            from . import __version__

            return (_CORE_DIST, __version__)
        return _dist_of(self._entry_points()[name][0])

    def info(self) -> list[StoreInfo]:
        """Every store with its distribution, version and load status; see
        :func:`available_stores`. Listing scans the installed distributions afresh."""
        from . import __version__

        if self._given_entry_points is None:
            self._rescan()
        result: list[StoreInfo] = [
            StoreInfo(name, _CORE_DIST, __version__, module.__name__)
            for name, module in _BUILTIN_MODULES.items()
        ]
        for name, claimants in sorted(self._entry_points().items()):
            for ep in claimants:
                result.append(self._info_for(name, ep, claimants))
        return result

    def _info_for(self, name: str, ep: EntryPoint, claimants: Sequence[EntryPoint]) -> StoreInfo:
        dist, version = _dist_of(ep)
        if name in BUILTIN_STORES or len(claimants) > 1:
            others = [
                f"{_CORE_DIST} (built in)" if name in BUILTIN_STORES else " ".join(_dist_of(o))
                for o in claimants
                if o is not ep or name in BUILTIN_STORES
            ]
            others = [o for o in others if o != f"{dist} {version}"]
            return StoreInfo(
                name, dist, version, ep.value, "conflict", f"also claimed by {', '.join(others)}"
            )
        if self._is_disabled(name):
            return StoreInfo(name, dist, version, ep.value, "disabled", f"blocked by {DISABLE_ENV}")
        try:
            self._plugin(name)
            self._try_building(name)
        except PluginLoadError as exc:
            warnings.warn(str(exc), PluginLoadWarning, stacklevel=3)
            return StoreInfo(name, dist, version, ep.value, "error", exc.reason)
        return StoreInfo(name, dist, version, ep.value)

    def _try_building(self, name: str) -> None:
        """Call the store's create hook with no store options, as listing does: the hook runs
        its validation and builds without connecting (so it costs no round trip), then the
        store is closed. Refusing empty options is fine (the store needs some); any other
        failure is the plugin's, raised as :class:`PluginLoadError`."""
        config = SessionConfig(secret_key=secrets.token_urlsafe(32), store=name)
        try:
            store = self.create(config)
        except ConfigurationError:
            return
        except SessionCoreError as exc:
            if isinstance(exc, PluginLoadError):
                raise
            raise PluginLoadError(
                name,
                *self._describe(name),
                f"building it with no options raised {_one_line(exc)}; a store's create hook "
                f"should connect on first use, not at start-up",
            ) from exc
        store.close()

    # ------------------------------------------------------------------ extensions

    def extensions(self) -> list[ExtensionInfo]:
        """Every installed extension with its distribution, version and load status, loading
        (importing and validating) each one the first time; one that fails is reported with
        status ``"error"`` and a :class:`PluginLoadWarning`, and the others are used without
        it."""
        with self._lock:
            if self._extensions is None:
                self._extensions = [
                    self._load_extension(name, ep, claimants)
                    for name, claimants in sorted(self._entry_points(EXTENSION_GROUP).items())
                    for ep in claimants
                ]
            return list(self._extensions)

    def _load_extension(
        self, name: str, ep: EntryPoint, claimants: Sequence[EntryPoint]
    ) -> ExtensionInfo:
        dist, version = _dist_of(ep)
        conflict = [" ".join(_dist_of(o)) + " (extension)" for o in claimants if o is not ep]
        if name in BUILTIN_STORES or name in self._entry_points():
            conflict.append(f"the store {name!r}")
        if conflict:
            error = f"the name is also claimed by {', '.join(conflict)}; rename the entry point"
            return ExtensionInfo(name, dist, version, ep.value, "conflict", error)
        if self._is_disabled(name):
            error = f"blocked by {DISABLE_ENV}"
            return ExtensionInfo(name, dist, version, ep.value, "disabled", error)
        try:
            plugin = self._register(name, ep)
        except PluginLoadError as exc:
            warnings.warn(str(exc), PluginLoadWarning, stacklevel=4)
            return ExtensionInfo(name, dist, version, ep.value, "error", exc.reason)
        hooks = tuple(
            caller.name for caller in self._pm.get_hookcallers(plugin) or () if caller.spec
        )
        return ExtensionInfo(name, dist, version, ep.value, hooks=tuple(sorted(hooks)))

    @property
    def observes_events(self) -> bool:
        """Whether any loaded plugin implements ``session_core_session_event``.

        The first read loads the extensions (see :meth:`extensions`); the answer is then kept
        until another plugin loads, so a middleware can read it once at start-up and, when it
        is false, build no event at all per request.
        """
        if self._observes_events is None:
            self.extensions()
            with self._lock:
                caller = getattr(self._pm.hook, _SESSION_EVENT_HOOK)
                self._observes_events = bool(caller.get_hookimpls())
        return self._observes_events

    def event_emitter(self, store: SessionStore) -> EventEmitter | None:
        """What reports ``store``'s calls to the plugins observing session events, or ``None``
        when no plugin does (then nothing is built or timed per request).

        Called once per middleware, at start-up; the observers are those loaded then, called
        in pluggy's order. Each plugin's hook is called on its own, so one that raises does
        not keep the event from the others.
        """
        if not self.observes_events:
            return None
        with self._lock:
            caller = getattr(self._pm.hook, _SESSION_EVENT_HOOK)
            observers: list[tuple[str, Observer]] = []
            for impl in reversed(caller.get_hookimpls()):  # pluggy's order: the last first
                if impl.hookwrapper or impl.wrapper or impl.argnames != ("event",):
                    # Rare shapes go through pluggy, which knows them all.
                    others = [p for p in self._pm.get_plugins() if p is not impl.plugin]
                    call = self._pm.subset_hook_caller(_SESSION_EVENT_HOOK, remove_plugins=others)
                    observers.append((impl.plugin_name, _observer(call)))
                else:
                    # A plain hook is called directly: pluggy's dispatch would cost more than
                    # the event itself, on every save.
                    observers.append((impl.plugin_name, impl.function))
        return EventEmitter(store.name, observers)

    # ------------------------------------------------------------------ every plugin

    def load_plugins(self) -> tuple[list[LoadedPlugin], list[PluginLoadError]]:
        """Load every usable store plugin and extension (for the ``session-core`` command):
        what loaded, and what failed, each failure a :class:`PluginLoadError` saying why."""
        loaded: list[LoadedPlugin] = [
            LoadedPlugin(name, *self._describe(name), module)
            for name, module in _BUILTIN_MODULES.items()
        ]
        failed: list[PluginLoadError] = []
        for name, claimants in sorted(self._entry_points().items()):
            if len(claimants) > 1 or name in BUILTIN_STORES or self._is_disabled(name):
                continue  # reported by `session-core stores`; their commands stay out
            try:
                loaded.append(LoadedPlugin(name, *_dist_of(claimants[0]), self._plugin(name)))
            except PluginLoadError as exc:
                failed.append(exc)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginLoadWarning)  # returned instead
            extensions = self.extensions()
        for ext in extensions:
            if ext.status == "ok":
                plugin = self._pm.get_plugin(self._aliases.get(ext.name, ext.name))
                loaded.append(LoadedPlugin(ext.name, ext.distribution, ext.version, plugin))
            elif ext.status == "error":
                failed.append(
                    PluginLoadError(ext.name, ext.distribution, ext.version, ext.error or "")
                )
        unique = {id(p.plugin): p for p in reversed(loaded)}  # aliases add their commands once
        return [p for p in loaded if unique[id(p.plugin)] is p], failed

    def add_commands(self, plugin: LoadedPlugin, subparsers: Subparsers) -> None:
        """Let ``plugin`` add its ``session-core`` subcommands (its
        ``session_core_add_commands`` hook, called on it alone)."""
        self._call(plugin.plugin, "session_core_add_commands", subparsers=subparsers)


_default: StoreRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> StoreRegistry:
    """The process-wide registry (entry points are scanned once, on first need)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = StoreRegistry()
        return _default


def refresh() -> None:
    """Forget what the process-wide registry found, so the next call scans again (after
    installing a store into a running process, or when ``SESSION_CORE_DISABLE_PLUGINS``
    changed)."""
    global _default
    with _default_lock:
        _default = None


def create_store(config: SessionConfig) -> SessionStore:
    """Build the store ``config`` names; see :meth:`StoreRegistry.create`."""
    return default_registry().create(config)


def available_stores() -> list[StoreInfo]:
    """Every installed store with its distribution name, version and load status.

    Importing each plugin is part of listing; one that fails is reported with status
    ``"error"`` (and a :class:`PluginLoadWarning`) instead of stopping the listing.
    """
    return default_registry().info()
