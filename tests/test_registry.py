"""The store registry, against real installed distributions (dist-info folders on sys.path that
importlib.metadata finds exactly as it finds pip-installed ones)."""

import sys
import textwrap

import pytest

import session_core.registry as registry_module
from session_core import (
    DuplicateStoreError,
    IncompatiblePluginError,
    PluginLoadError,
    SessionConfig,
    StoreDisabledError,
    StoreNotFoundError,
    available_stores,
    create_store,
)
from session_core.cookie import CookieStore
from session_core.registry import PluginLoadWarning, StoreRegistry, refresh
from session_core.testing import MemoryStore

SECRET = "s" * 40

GOOD_PLUGIN = """
import session_core
from session_core.testing import MemoryStore

@session_core.hookimpl
def session_core_store_api_version():
    return {api}

@session_core.hookimpl
def session_core_create_store(config):
    store = MemoryStore()
    store.options = dict(config.store_options)
    return store
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path to install throwaway distributions into."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv("SESSION_CORE_DISABLE_PLUGINS", raising=False)
    before = set(sys.modules)
    yield Installer(folder)
    for name in set(sys.modules) - before:
        if name.startswith("plug_"):
            del sys.modules[name]
    refresh()


class Installer:
    def __init__(self, folder):
        self.folder = folder

    def install(self, dist, version, stores, source=None, module=None):
        """Install distribution ``dist`` whose entry points map each store name in ``stores``
        to a module with ``source``."""
        module = module or "plug_" + dist.replace("-", "_")
        (self.folder / f"{module}.py").write_text(
            textwrap.dedent(source or GOOD_PLUGIN.format(api=1))
        )
        info = self.folder / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "\n".join(f"{name} = {module}" for name in stores)
        (info / "entry_points.txt").write_text(f"[session_core.stores]\n{lines}\n")
        return module


def config(store, **options):
    return SessionConfig(secret_key=SECRET, store=store, store_options=options)


def test_cookie_is_built_in_and_scans_nothing(monkeypatch):
    def no_scan():
        raise AssertionError("the default path must not scan entry points")

    monkeypatch.setattr(registry_module, "_scan_entry_points", no_scan)
    assert isinstance(StoreRegistry().create(config("cookie")), CookieStore)


def test_plugin_found_by_entry_point_name(site):
    site.install("session-core-acme", "1.2.3", ["acme"])
    store = StoreRegistry().create(config("acme", url="x"))
    assert isinstance(store, MemoryStore)
    assert store.options == {"url": "x"}


def test_entry_points_are_scanned_once(site, monkeypatch):
    site.install("session-core-acme", "1.0", ["acme"])
    calls = []
    real = registry_module._scan_entry_points
    monkeypatch.setattr(registry_module, "_scan_entry_points", lambda: calls.append(1) or real())
    registry = StoreRegistry()
    registry.create(config("acme"))
    registry.create(config("acme"))
    registry.names()
    assert calls == [1]


def test_store_installed_after_the_first_scan_is_found(site):
    registry = StoreRegistry()
    registry.create(config("cookie"))
    registry.names()
    site.install("session-core-late", "1.0", ["late"])
    assert isinstance(registry.create(config("late")), MemoryStore)
    assert "late" in {s.name for s in registry.info()}


def test_only_the_configured_plugin_is_imported(site):
    site.install("session-core-good", "1.0", ["good"])
    broken = site.install("session-core-broken", "1.0", ["broken"], "raise RuntimeError('boom')\n")
    StoreRegistry().create(config("good"))
    assert broken not in sys.modules


def test_unknown_store_lists_available_and_pip_hint(site):
    site.install("session-core-acme", "1.0", ["acme"])
    with pytest.raises(StoreNotFoundError) as info:
        StoreRegistry().create(config("redsi"))
    assert info.value.name == "redsi"
    assert {"acme", "cookie"} <= set(info.value.available)
    assert "pip install session-core-redsi" in str(info.value)


def test_two_distributions_claiming_one_name(site):
    site.install("session-core-alpha", "1.0", ["shared"])
    site.install("other-shared-store", "2.5", ["shared"])
    with pytest.raises(DuplicateStoreError) as info:
        StoreRegistry().create(config("shared"))
    assert set(info.value.distributions) == {"session-core-alpha 1.0", "other-shared-store 2.5"}
    assert "session-core-alpha 1.0" in str(info.value)
    assert "other-shared-store 2.5" in str(info.value)


def test_plugin_import_failure_names_entry_point_distribution_and_version(site):
    site.install("session-core-broken", "0.4.1", ["broken"], "import not_a_module_anywhere\n")
    with pytest.raises(PluginLoadError) as info:
        StoreRegistry().create(config("broken"))
    error = info.value
    assert (error.name, error.distribution, error.version) == (
        "broken",
        "session-core-broken",
        "0.4.1",
    )
    assert isinstance(error.__cause__, ModuleNotFoundError)
    assert "'broken'" in str(error)
    assert "session-core-broken 0.4.1" in str(error)
    assert "not_a_module_anywhere" in str(error)


def test_listing_reports_a_broken_plugin_and_warns(site):
    site.install("session-core-good", "1.0", ["good"])
    site.install("session-core-broken", "0.1", ["broken"], "raise RuntimeError('boom at import')\n")
    with pytest.warns(PluginLoadWarning, match="boom at import"):
        stores = {s.name: s for s in StoreRegistry().info()}
    assert stores["good"].ok
    assert (stores["good"].distribution, stores["good"].version) == ("session-core-good", "1.0")
    assert stores["broken"].status == "error"
    assert "RuntimeError: boom at import" in stores["broken"].error
    assert stores["cookie"].distribution == "session-core"


def test_misspelt_hook_is_caught(site):
    source = GOOD_PLUGIN.format(api=1).replace(
        "def session_core_create_store(", "def session_core_create_stor("
    )
    site.install("session-core-typo", "1.0", ["typo"], source)
    with pytest.raises(
        PluginLoadError, match=r"invalid hook implementation.*session_core_create_stor"
    ):
        StoreRegistry().create(config("typo"))


def test_hook_with_wrong_arguments_is_caught(site):
    source = GOOD_PLUGIN.format(api=1).replace("(config):", "(config, extra):")
    site.install("session-core-args", "1.0", ["args"], source)
    with pytest.raises(PluginLoadError, match="invalid hook implementation"):
        StoreRegistry().create(config("args"))


def test_old_plugin_on_new_core_fails_clearly(site):
    site.install("session-core-ancient", "0.0.1", ["ancient"], GOOD_PLUGIN.format(api=0))
    with pytest.raises(IncompatiblePluginError) as info:
        StoreRegistry().create(config("ancient"))
    assert info.value.plugin_api == 0
    assert "upgrade session-core-ancient" in str(info.value)


def test_plugin_for_a_newer_core_says_upgrade_the_core(site):
    site.install("session-core-future", "9.0", ["future"], GOOD_PLUGIN.format(api=99))
    with pytest.raises(IncompatiblePluginError, match=r"upgrade session-core$"):
        StoreRegistry().create(config("future"))


def test_plugin_without_api_version_hook(site):
    source = "import session_core\n@session_core.hookimpl\ndef session_core_create_store(config):\n    return None\n"
    site.install("session-core-noversion", "1.0", ["noversion"], source)
    with pytest.raises(
        PluginLoadError, match=r"does not implement the hook session_core_store_api_version"
    ):
        StoreRegistry().create(config("noversion"))


def test_plugin_returning_something_else_than_a_store(site):
    source = GOOD_PLUGIN.format(api=1).replace("return store", "return 'not a store'")
    site.install("session-core-weird", "1.0", ["weird"], source)
    with pytest.raises(PluginLoadError, match=r"returned str, not a session_core\.SessionStore"):
        StoreRegistry().create(config("weird"))


@pytest.mark.parametrize("blocked", ["acme", "other,acme", "*"])
def test_disable_plugins(site, monkeypatch, blocked):
    site.install("session-core-acme", "1.0", ["acme"])
    monkeypatch.setenv("SESSION_CORE_DISABLE_PLUGINS", blocked)
    registry = StoreRegistry()
    with pytest.raises(StoreDisabledError, match="SESSION_CORE_DISABLE_PLUGINS"):
        registry.create(config("acme"))
    assert isinstance(registry.create(config("cookie")), CookieStore), "built-ins stay available"
    stores = {s.name: s for s in registry.info()}
    assert stores["acme"].status == "disabled"


def test_plugin_claiming_the_builtin_name_is_reported_not_used(site):
    site.install("evil-cookie", "1.0", ["cookie"])
    registry = StoreRegistry()
    assert isinstance(registry.create(config("cookie")), CookieStore)
    conflicts = [s for s in registry.info() if s.status == "conflict"]
    assert [c.distribution for c in conflicts] == ["evil-cookie"]
    assert "session-core (built in)" in conflicts[0].error


def test_listing_shows_both_claimants_of_a_name(site):
    site.install("session-core-alpha", "1.0", ["shared"])
    site.install("beta-store", "3.0", ["shared"])
    shared = [s for s in StoreRegistry().info() if s.name == "shared"]
    assert {s.distribution for s in shared} == {"session-core-alpha", "beta-store"}
    assert all(s.status == "conflict" for s in shared)


def test_module_level_api_uses_the_process_registry(site):
    site.install("session-core-acme", "1.0", ["acme"])
    refresh()
    assert "acme" in {s.name for s in available_stores()}
    assert isinstance(create_store(config("acme")), MemoryStore)


def test_store_instance_in_config_bypasses_lookup():
    store = MemoryStore()
    assert create_store(SessionConfig(secret_key=SECRET, store=store)) is store
