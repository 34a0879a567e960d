"""Plugins observing session events, installed for real (a throwaway distribution on sys.path)
and found by the process-wide registry, as middleware built afterwards finds them."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from plugin_site import Installer

from session_core import StoreUnreachableError
from session_core.registry import refresh
from session_core.store import Changes, SessionRecord
from session_core.testing import MemoryStore

RECORDER = """
import session_core

seen = []
fail_with = []

@session_core.hookimpl
def session_core_session_event(event):
    if fail_with:
        raise fail_with[0]("the observer failed")
    seen.append(event)
"""


def install_observers(
    folder: Path, monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...] = ("recorder",)
) -> list[types.ModuleType]:
    """Install one recording extension per name (each records into its module's ``seen``
    and raises ``fail_with[0]`` when given one); the example extensions stay out."""
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("SESSION_CORE_DISABLE_PLUGINS", "prometheus,audit")
    for name in [m for m in sys.modules if m.startswith("plug_events_")]:
        monkeypatch.delitem(sys.modules, name)  # a fresh import for this test's folder
    installer = Installer(folder)
    modules = [
        installer.install(f"events-{name}", "1.0", extensions=[name], source=RECORDER)
        for name in names
    ]
    refresh()
    found = []
    for module in modules:
        __import__(module)
        found.append(sys.modules[module])
    return found


class DownStore(MemoryStore):
    """Saves fail, once ``down`` is set, as a store whose server went away fails them."""

    down = False

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        if self.down:
            raise StoreUnreachableError(self.name, "memory://", "save", "the server went away")
        return super().save(key, record, changes)
