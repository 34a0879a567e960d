"""Throwaway plugin distributions, installed for real: dist-info folders in a folder on sys.path,
which importlib.metadata finds exactly as it finds pip-installed ones (and a subprocess finds too,
with the folder on PYTHONPATH)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

GOOD_STORE = """
import session_core
from session_core.testing import MemoryStore

@session_core.hookimpl
def session_core_store_api_version():
    return {api}

@session_core.hookimpl
def session_core_create_store(config):
    store = type("Store", (MemoryStore,), {{"name": config.store}})()
    store.options = dict(config.store_options)
    return store
"""


class Installer:
    """Installs distributions into ``folder`` (which the caller puts on sys.path)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def install(
        self,
        dist: str,
        version: str,
        stores: Sequence[str] = (),
        source: str | None = None,
        module: str | None = None,
        extensions: Sequence[str] = (),
    ) -> str:
        """Install distribution ``dist`` whose entry points map each store name in ``stores``
        and each extension name in ``extensions`` to one module with ``source``; returns the
        module's name."""
        module = module or "plug_" + dist.replace("-", "_")
        (self.folder / f"{module}.py").write_text(
            textwrap.dedent(source or GOOD_STORE.format(api=1))
        )
        info = self.folder / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        sections = []
        for group, names in (
            ("session_core.stores", stores),
            ("session_core.extensions", extensions),
        ):
            if names:
                lines = "\n".join(f"{name} = {module}" for name in names)
                sections.append(f"[{group}]\n{lines}\n")
        (info / "entry_points.txt").write_text("\n".join(sections))
        return module
