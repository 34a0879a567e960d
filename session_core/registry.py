"""Finding stores: the built-in ``cookie`` store plus plugins from the ``session_core.stores``
entry-point group, loaded through pluggy.

Resolution happens once, at start-up (when a middleware is built): the configured store's entry
point alone is imported, its hooks are validated, and the store object it builds is handed to the
middleware, which calls it directly from then on. The default (``cookie``) path scans no
installed distribution at all.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from . import cookie, hookspecs
from .config import SessionConfig
from .errors import (
    DuplicateStoreError,
    IncompatiblePluginError,
    PluginLoadError,
    StoreDisabledError,
    StoreNotFoundError,
)
from .store import SUPPORTED_STORE_API, SessionStore

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "BUILTIN_STORES",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
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

DISABLE_ENV = "SESSION_CORE_DISABLE_PLUGINS"
"""Environment variable naming plugins not to load (comma-separated), or ``*`` for all."""

BUILTIN_STORES = ("cookie",)
"""Stores registered in code, found without scanning installed distributions."""

_CORE_DIST = "session-core"


class PluginLoadWarning(UserWarning):
    """A store plugin failed to load while listing stores (listing goes on without it)."""


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """One store as :func:`available_stores` reports it.

    Attributes:
        name: the store's public name (what ``store = ...`` takes).
        distribution: the distribution that provides it.
        version: that distribution's version.
        module: where the plugin lives (the entry point's value).
        status: ``"ok"``, ``"error"`` (it failed to load), ``"conflict"`` (two distributions
            claim the name) or ``"disabled"`` (blocked by ``SESSION_CORE_DISABLE_PLUGINS``).
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
        """Whether the store can be used."""
        return self.status == "ok"


def _scan_entry_points() -> tuple[EntryPoint, ...]:
    """Every installed entry point in :data:`ENTRY_POINT_GROUP` (importlib.metadata is imported
    only here: the default, built-in path never needs it)."""
    from importlib.metadata import entry_points

    return tuple(entry_points(group=ENTRY_POINT_GROUP))


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
    """The stores one process can use: the built-ins, and plugins found through entry points.

    Entry points are read once, when first needed, and a plugin is imported only when it is
    configured or listed. Most code uses the process-wide :func:`default_registry` through
    :func:`create_store` and :func:`available_stores`.

    Args:
        entry_points: the plugins' entry points; by default those installed in the group
            :data:`ENTRY_POINT_GROUP`.
        disabled: plugin names not to load (``"*"`` for all); by default read from
            ``SESSION_CORE_DISABLE_PLUGINS``.
    """

    def __init__(
        self,
        entry_points: Iterable[EntryPoint] | None = None,
        disabled: Iterable[str] | None = None,
    ) -> None:
        self._given_entry_points = None if entry_points is None else tuple(entry_points)
        self._scanned: dict[str, list[EntryPoint]] | None = None
        self._disabled = frozenset(disabled) if disabled is not None else _disabled_names()
        self._lock = threading.RLock()
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._pm.register(cookie, name="cookie")
        for name in self._disabled:
            if name != "*" and name not in BUILTIN_STORES:
                self._pm.set_blocked(name)

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy plugin manager holding the loaded store plugins."""
        return self._pm

    # ------------------------------------------------------------------ discovery

    def _rescan(self) -> None:
        # Distributions installed since the last scan become visible (new dist-info folders).
        importlib.invalidate_caches()
        with self._lock:
            self._scanned = None

    def _entry_points(self) -> dict[str, list[EntryPoint]]:
        with self._lock:
            if self._scanned is None:
                found = (
                    self._given_entry_points
                    if self._given_entry_points is not None
                    else _scan_entry_points()
                )
                by_name: dict[str, list[EntryPoint]] = {}
                for ep in found:
                    claimants = by_name.setdefault(ep.name, [])
                    if all(_dist_of(ep)[0] != _dist_of(other)[0] for other in claimants):
                        claimants.append(ep)
                self._scanned = by_name
            return self._scanned

    def _is_disabled(self, name: str) -> bool:
        return name not in BUILTIN_STORES and ("*" in self._disabled or name in self._disabled)

    def names(self) -> list[str]:
        """Every store name: the built-ins and every installed plugin, loadable or not."""
        return sorted({*BUILTIN_STORES, *self._entry_points()})

    def _usable_names(self) -> list[str]:
        return [n for n in self.names() if not self._is_disabled(n)]

    # ------------------------------------------------------------------ loading

    def _plugin(self, name: str) -> object:
        """The loaded plugin for ``name``, importing and validating it on first use."""
        with self._lock:
            plugin = self._pm.get_plugin(name)
            if plugin is not None:
                return plugin
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
            return self._load(name, claimants[0])

    def _load(self, name: str, ep: EntryPoint) -> object:
        dist, version = _dist_of(ep)
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginLoadError(name, dist, version, _one_line(exc)) from exc
        try:
            self._pm.register(plugin, name=name)
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            raise PluginLoadError(
                name, dist, version, f"invalid hook implementation: {_one_line(exc)}"
            ) from exc
        try:
            api = self._call(plugin, "session_core_store_api_version")
            if api is None:
                raise PluginLoadError(
                    name,
                    dist,
                    version,
                    "it does not implement the hook session_core_store_api_version; "
                    "it may be written for another session-core",
                )
            if not isinstance(api, int) or api not in SUPPORTED_STORE_API:
                raise IncompatiblePluginError(
                    name, dist, version, api if isinstance(api, int) else -1, SUPPORTED_STORE_API
                )
            if not self._implements(plugin, "session_core_create_store"):
                raise PluginLoadError(
                    name, dist, version, "it does not implement the hook session_core_create_store"
                )
        except PluginLoadError:
            self._pm.unregister(plugin)
            raise
        return plugin

    def _implements(self, plugin: object, hook: str) -> bool:
        caller = getattr(self._pm.hook, hook)
        return any(impl.plugin is plugin for impl in caller.get_hookimpls())

    def _call(self, plugin: object, hook: str, **kwargs: Any) -> Any:
        others = [p for p in self._pm.get_plugins() if p is not plugin]
        return self._pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)

    # ------------------------------------------------------------------ public API

    def create(self, config: SessionConfig) -> SessionStore:
        """Build the store ``config`` names (or return it, if ``config.store`` is a store).

        Raises:
            StoreNotFoundError: no store has that name.
            StoreDisabledError: the plugin is blocked by ``SESSION_CORE_DISABLE_PLUGINS``.
            DuplicateStoreError: two distributions claim the name.
            PluginLoadError: the plugin failed to import, has invalid hooks, or built no store.
            IncompatiblePluginError: the plugin was written for another store API.
            ConfigurationError: the store refused its options.
        """
        if isinstance(config.store, SessionStore):
            return config.store
        name = config.store
        plugin = self._plugin(name)
        store = self._call(plugin, "session_core_create_store", config=config)
        if not isinstance(store, SessionStore):
            dist, version = self._describe(name)
            raise PluginLoadError(
                name,
                dist,
                version,
                f"session_core_create_store returned {type(store).__name__}, "
                f"not a session_core.SessionStore",
            )
        return store

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
            StoreInfo("cookie", _CORE_DIST, __version__, "session_core.cookie")
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
        except PluginLoadError as exc:
            warnings.warn(str(exc), PluginLoadWarning, stacklevel=3)
            return StoreInfo(name, dist, version, ep.value, "error", exc.reason)
        return StoreInfo(name, dist, version, ep.value)


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
