"""The store registry, against real installed distributions (dist-info folders on sys.path that
importlib.metadata finds exactly as it finds pip-installed ones)."""

import sys

import pytest
from plugin_site import GOOD_STORE, Installer

import session_core.registry as registry_module
from session_core import (
    ConfigurationError,
    DuplicateStoreError,
    EventKind,
    IncompatiblePluginError,
    PluginLoadError,
    SessionConfig,
    StoreDisabledError,
    StoreNotFoundError,
    available_stores,
    create_store,
    hash_key,
)
from session_core.cookie import CookieStore
from session_core.registry import PluginLoadWarning, StoreRegistry, refresh
from session_core.testing import MemoryStore

SECRET = "s" * 40

GOOD_PLUGIN = GOOD_STORE


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


def create_hook_first(statement):
    """The good store plugin, with ``statement`` run first in its create hook."""
    return GOOD_PLUGIN.format(api=1).replace(
        "    store = type(", f"    {statement}\n    store = type("
    )


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
    monkeypatch.setattr(
        registry_module, "_scan_entry_points", lambda group: calls.append(group) or real(group)
    )
    registry = StoreRegistry()
    registry.create(config("acme"))
    registry.create(config("acme"))
    registry.names()
    assert calls == ["session_core.stores"]


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


def test_unknown_store_suggests_the_installed_name_it_resembles(site):
    site.install("session-core-memcached", "1.0", ["memcached"])
    with pytest.raises(StoreNotFoundError) as info:
        StoreRegistry().create(config("memcache"))
    assert info.value.name == "memcache"
    assert info.value.suggestion == "memcached"
    assert {"memcached", "cookie"} <= set(info.value.available)
    assert "did you mean 'memcached'?" in str(info.value)
    assert "pip install" not in str(info.value), "no distribution name is made up"


def test_unknown_store_never_invents_a_distribution_name(site):
    site.install("session-core-acme", "1.0", ["acme"])
    with pytest.raises(StoreNotFoundError) as info:
        StoreRegistry().create(config("zzzz"))
    assert info.value.suggestion is None
    assert "pip install" not in str(info.value)
    assert "session-core stores" in str(info.value)


@pytest.mark.parametrize(
    ("name", "dist"), [("redis", "session-core-redis"), ("db", "session-core-db")]
)
def test_our_own_stores_get_their_real_install_hint(name, dist):
    folder = {"db": "db_session", "redis": "redis_session"}[name]
    with pytest.raises(StoreNotFoundError) as info:
        StoreRegistry(entry_points=[]).create(config(name))
    # The published name, and the command that works before it is published: from a clone.
    assert str(info.value).endswith(
        f"pip install {dist} (or, from a clone of session-core, pip install ./plugins/{folder})"
    )


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


# ---------------------------------------------------------------------- author mistakes


UNDECORATED = """
from session_core.testing import MemoryStore

def session_core_store_api_version():
    return 1

def session_core_create_store(config):
    return MemoryStore()
"""


def test_missing_hookimpl_says_to_add_the_decorator(site):
    site.install("session-core-bare", "1.0", ["bare"], UNDECORATED)
    with pytest.raises(PluginLoadError) as info:
        StoreRegistry().create(config("bare"))
    message = str(info.value)
    assert "session_core_create_store is not marked as a hook implementation" in message
    assert "session_core_store_api_version is not marked" in message
    assert "@session_core.hookimpl" in message
    assert "API" not in message, "the cause is the decorator, not the store API version"


def test_misspelt_hook_says_did_you_mean(site):
    source = GOOD_PLUGIN.format(api=1).replace(
        "def session_core_create_store(", "def session_core_create_stroe("
    )
    site.install("session-core-typo", "1.0", ["typo"], source)
    with pytest.raises(PluginLoadError) as info:
        StoreRegistry().create(config("typo"))
    assert "no hook named 'session_core_create_stroe'" in str(info.value)
    assert "did you mean 'session_core_create_store'?" in str(info.value)


def test_misspelt_undecorated_hook_is_reported_too(site):
    source = UNDECORATED.replace("def session_core_create_store(", "def session_core_creat_store(")
    site.install("session-core-both", "1.0", ["both"], source)
    with pytest.raises(PluginLoadError, match="did you mean 'session_core_create_store'"):
        StoreRegistry().create(config("both"))


def test_helpers_sharing_the_prefix_are_left_alone(site):
    source = GOOD_PLUGIN.format(api=1) + "\ndef session_core_settings_from_env():\n    return {}\n"
    site.install("session-core-helper", "1.0", ["helper"], source)
    assert isinstance(StoreRegistry().create(config("helper")), MemoryStore)


def test_hook_of_a_newer_core_marked_optional_is_accepted(site):
    source = GOOD_PLUGIN.format(api=1) + (
        "\n@session_core.hookimpl(optionalhook=True)\ndef session_core_future_hook():\n    pass\n"
    )
    site.install("session-core-ahead", "1.0", ["ahead"], source)
    assert isinstance(StoreRegistry().create(config("ahead")), MemoryStore)


def test_create_hook_raising_value_error_says_what_to_do(site):
    source = create_hook_first("raise ValueError('port must be a number')")
    site.install("session-core-picky", "2.0", ["picky"], source)
    with pytest.raises(PluginLoadError) as info:
        StoreRegistry().create(config("picky"))
    message = str(info.value)
    assert "'picky' (distribution session-core-picky 2.0)" in message
    assert "session_core_create_store hook raised ValueError: port must be a number" in message
    assert "correct them" in message
    assert "session_core.ConfigurationError" in message
    assert isinstance(info.value.__cause__, ValueError)


def test_configuration_error_from_the_create_hook_passes_through(site):
    source = create_hook_first("raise session_core.ConfigurationError('store_options', 'no url')")
    site.install("session-core-strict", "1.0", ["strict"], source)
    with pytest.raises(ConfigurationError, match="no url"):
        StoreRegistry().create(config("strict"))


def test_two_entry_point_names_on_one_module_both_work(site):
    source = GOOD_PLUGIN.format(api=1).replace(
        'type("Store", (MemoryStore,), {"name": config.store})()',
        'type("Store", (MemoryStore,), {"name": "memcached"})()',
    )
    site.install("session-core-memcached", "1.0", ["memcached", "memcache"], source)
    registry = StoreRegistry()
    assert registry.create(config("memcache")).name == "memcached"
    assert registry.create(config("memcached")).name == "memcached"
    listed = {s.name: s for s in registry.info()}
    assert listed["memcache"].ok
    assert listed["memcached"].ok


def test_store_name_disagreeing_with_its_entry_point(site):
    source = GOOD_PLUGIN.format(api=1).replace(
        '{"name": config.store}', '{"name": "memcache-store"}'
    )
    site.install("session-core-mc", "1.0", ["mc"], source)
    with pytest.raises(PluginLoadError) as info:
        StoreRegistry().create(config("mc"))
    assert "whose name is 'memcache-store', but the store's entry point is 'mc'" in str(info.value)
    assert "set name = 'mc'" in str(info.value)


def test_listing_builds_each_store_and_reports_a_failing_create_hook(site):
    source = create_hook_first("import pymemcache_not_installed")
    site.install("session-core-lazy", "1.0", ["lazy"], source)
    site.install("session-core-good", "1.0", ["good"])
    with pytest.warns(PluginLoadWarning, match="pymemcache_not_installed"):
        stores = {s.name: s for s in StoreRegistry().info()}
    assert stores["lazy"].status == "error"
    assert "ModuleNotFoundError" in stores["lazy"].error
    assert stores["good"].ok


def test_listing_accepts_a_store_that_refuses_empty_options(site):
    source = create_hook_first(
        "if not config.store_options:\n"
        "        raise session_core.ConfigurationError('store_options', 'servers is required')"
    )
    site.install("session-core-needy", "1.0", ["needy"], source)
    stores = {s.name: s for s in StoreRegistry().info()}
    assert stores["needy"].ok


# ---------------------------------------------------------------------- extensions


def extension(registry, name):
    """The extension ``name`` as ``registry`` lists it (others may be installed around it)."""
    return next(e for e in registry.extensions() if e.name == name)


EXTENSION = """
import session_core

seen = []

@session_core.hookimpl
def session_core_add_commands(subparsers):
    pass
"""

OBSERVER = """
import session_core

@session_core.hookimpl
def session_core_session_event(event):
    pass
"""


def test_extensions_are_listed_with_distribution_version_and_hooks(site):
    site.install("session-core-hello", "0.3", extensions=["hello"], source=EXTENSION)
    hello = extension(StoreRegistry(), "hello")
    assert (hello.name, hello.distribution, hello.version, hello.status) == (
        "hello",
        "session-core-hello",
        "0.3",
        "ok",
    )
    assert hello.hooks == ("session_core_add_commands",)
    assert hello.module == "plug_session_core_hello"


def test_a_broken_extension_is_reported_and_the_others_load(site):
    site.install("session-core-hello", "0.3", extensions=["hello"], source=EXTENSION)
    site.install("broken-ext", "1.1", extensions=["broken"], source="raise RuntimeError('boom')\n")
    with pytest.warns(PluginLoadWarning, match="boom"):
        found = {e.name: e for e in StoreRegistry().extensions()}
    assert found["hello"].ok
    assert found["broken"].status == "error"
    assert found["broken"].error == "RuntimeError: boom"
    assert found["broken"].distribution == "broken-ext"


def test_an_extension_with_a_misspelt_hook_says_did_you_mean(site):
    source = OBSERVER.replace("session_core_session_event", "session_core_sesion_event")
    site.install("session-core-typo-ext", "1.0", extensions=["typo"], source=source)
    with pytest.warns(PluginLoadWarning):
        typo = extension(StoreRegistry(), "typo")
    assert typo.status == "error"
    assert "did you mean 'session_core_session_event'?" in typo.error


@pytest.mark.parametrize("blocked", ["hello", "*"])
def test_disable_plugins_blocks_extensions(site, monkeypatch, blocked):
    module = site.install("session-core-hello", "0.3", extensions=["hello"], source=EXTENSION)
    monkeypatch.setenv("SESSION_CORE_DISABLE_PLUGINS", blocked)
    hello = extension(StoreRegistry(), "hello")
    assert hello.status == "disabled"
    assert module not in sys.modules


def test_an_extension_may_not_take_a_store_name(site):
    site.install("session-core-acme", "1.0", ["acme"])
    site.install("acme-tools", "1.0", extensions=["acme"], source=EXTENSION)
    acme = extension(StoreRegistry(), "acme")
    assert acme.status == "conflict"
    assert "the store 'acme'" in acme.error


def test_observes_events_is_false_without_an_observer_and_computed_once(site, monkeypatch):
    site.install("session-core-hello", "0.3", extensions=["hello"], source=EXTENSION)
    # The example observers (tests/example_metrics, tests/example_audit) are installed too.
    monkeypatch.setenv("SESSION_CORE_DISABLE_PLUGINS", "prometheus,audit")
    calls = []
    real = registry_module._scan_entry_points
    monkeypatch.setattr(
        registry_module, "_scan_entry_points", lambda group: calls.append(group) or real(group)
    )
    registry = StoreRegistry()
    assert registry.observes_events is False
    assert registry.observes_events is False
    assert sorted(calls) == ["session_core.extensions", "session_core.stores"]


def test_observes_events_is_true_with_an_observer(site):
    site.install("session-core-metrics", "1.0", extensions=["metrics"], source=OBSERVER)
    registry = StoreRegistry()
    assert registry.observes_events is True
    metrics = extension(registry, "metrics")
    assert metrics.hooks == ("session_core_session_event",)


def test_event_emitter_is_none_without_an_observer(site, monkeypatch):
    site.install("session-core-hello", "0.3", extensions=["hello"], source=EXTENSION)
    monkeypatch.setenv("SESSION_CORE_DISABLE_PLUGINS", "prometheus,audit")
    assert StoreRegistry().event_emitter(MemoryStore()) is None


def test_event_emitter_calls_every_observer(site, monkeypatch):
    monkeypatch.setenv("SESSION_CORE_DISABLE_PLUGINS", "prometheus,audit")
    source = OBSERVER.replace("pass", "seen.append(event)").replace(
        "import session_core", "import session_core\nseen = []"
    )
    first = site.install("session-core-one", "1.0", extensions=["one"], source=source)
    second = site.install("session-core-two", "1.0", extensions=["two"], source=source)
    emitter = StoreRegistry().event_emitter(MemoryStore())
    assert emitter is not None
    assert emitter.store == "memory"
    emitter.emit(EventKind.SAVED, "k" * 43, None, 0.0)
    for module in (first, second):
        (event,) = sys.modules[module].seen
        assert (event.kind, event.key_hash) == (EventKind.SAVED, hash_key("k" * 43))


def test_event_emitter_calls_a_hook_that_takes_no_argument(site, monkeypatch):
    # pluggy lets a hook implementation take fewer arguments than its specification.
    monkeypatch.setenv("SESSION_CORE_DISABLE_PLUGINS", "prometheus,audit")
    source = OBSERVER.replace("(event):\n    pass", "():\n    seen.append(1)").replace(
        "import session_core", "import session_core\nseen = []"
    )
    module = site.install("session-core-bare", "1.0", extensions=["bare"], source=source)
    emitter = StoreRegistry().event_emitter(MemoryStore())
    assert emitter is not None
    emitter.emit(EventKind.FLUSHED, None, None, 0.0)
    assert sys.modules[module].seen == [1]


def test_building_a_store_loads_no_extension(site, monkeypatch):
    module = site.install("session-core-metrics", "1.0", extensions=["metrics"], source=OBSERVER)
    registry = StoreRegistry()
    registry.create(config("cookie"))
    assert module not in sys.modules


def test_session_event_is_typed():
    from session_core import EventKind, SessionEvent

    event = SessionEvent(EventKind.SAVED, "redis", "ab" * 32, 7, 0.001)
    assert event.kind == "saved"
    assert {k.value for k in EventKind} == {
        "created",
        "saved",
        "cycled",
        "flushed",
        "revoked",
        "store_error",
    }
    with pytest.raises(AttributeError):
        event.user_id = 8  # frozen


def test_an_extension_name_is_not_a_store(site):
    site.install("session-core-hello", "0.3", extensions=["hello"], source=EXTENSION)
    registry = StoreRegistry()
    assert extension(registry, "hello").ok
    with pytest.raises(StoreNotFoundError, match="no session store named 'hello'"):
        registry.create(config("hello"))
