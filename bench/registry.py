"""Registry: what resolving a store costs at start-up, and what ``import session_core`` costs.

Each measurement is a fresh interpreter (``python -I -S``) whose only importable distributions are
the core, its dependencies and a set of throwaway distributions made here: 10 or 200 of them,
each with entry points, one of which provides the store ``benchstore``. So the entry-point scan
sees exactly that many distributions. Times are taken inside the child, around the import and
around ``create_store``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .harness import SECRET, AreaResult, Settings, Stat, Table

COUNTS = (10, 200)
STORES = ("cookie", "benchstore")

_PLUGIN = '''"""A throwaway store plugin for the registry benchmark."""
from session_core import SessionStore, hookimpl


class BenchStore(SessionStore):
    name = "benchstore"

    def load(self, key):
        return None

    def save(self, key, record, changes):
        return key or self.generate_key()

    def delete(self, key):
        return None


@hookimpl
def session_core_store_api_version():
    return 1


@hookimpl
def session_core_create_store(config):
    return BenchStore()
'''

_CHILD = """
import json, sys, time
sys.path[:0] = [{lib!r}]
started = time.perf_counter()
import session_core
imported = time.perf_counter()
from session_core.registry import create_store
config = session_core.SessionConfig(secret_key={secret!r}, store={store!r})
resolving = time.perf_counter()
create_store(config)
done = time.perf_counter()
print(json.dumps({{"import_ms": (imported - started) * 1e3,
                  "resolve_ms": (done - resolving) * 1e3}}))
"""


def _module_dir(name: str) -> Path:
    module = __import__(name)
    assert module.__file__ is not None
    return Path(module.__file__).parent


def make_site(root: Path, count: int) -> Path:
    """A folder holding the core, its dependencies and ``count`` throwaway distributions."""
    lib = root / f"site-{count}"
    lib.mkdir()
    for name in ("session_core", "pluggy", "itsdangerous"):
        os.symlink(_module_dir(name), lib / name)
    (lib / "bench_store_plugin.py").write_text(_PLUGIN)
    for index in range(count):
        info = lib / f"bench_throwaway_{index}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: bench-throwaway-{index}\nVersion: 1.0\n"
        )
        points = ["[console_scripts]", f"bench-throwaway-{index} = bench_store_plugin:main", ""]
        if index == 0:
            points += ["[session_core.stores]", "benchstore = bench_store_plugin", ""]
        (info / "entry_points.txt").write_text("\n".join(points))
    return lib


def child(lib: Path, store: str) -> dict[str, float]:
    """One fresh interpreter's import and resolution times, in milliseconds."""
    code = _CHILD.format(lib=str(lib), secret=SECRET, store=store)
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def run(settings: Settings) -> AreaResult:
    """Import and resolution times for each number of distributions and each store."""
    rounds = 5 if settings.quick else 15
    root = Path(tempfile.mkdtemp(prefix="session-core-bench-registry-"))
    try:
        sites = {count: make_site(root, count) for count in COUNTS}
        samples: dict[tuple[int, str], list[dict[str, float]]] = {
            (count, store): [] for count in COUNTS for store in STORES
        }
        child(sites[COUNTS[0]], "cookie")  # warm the file system cache
        for _ in range(rounds):
            for (count, store), found in samples.items():
                found.append(child(sites[count], store))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = AreaResult("registry")
    table = Table(
        "Registry: start-up cost in a fresh interpreter, ms",
        ["installed distributions", "store", "import session_core", "resolve the store"],
        note=(
            "`cookie` is built in and never scans entry points; `benchstore` is a plugin found "
            "among the throwaway distributions. Median ±half-IQR over fresh interpreters."
        ),
    )
    for (count, store), found in samples.items():
        imported = Stat.of(s["import_ms"] for s in found)
        resolved = Stat.of(s["resolve_ms"] for s in found)
        table.rows.append([str(count), store, imported.show(2), resolved.show(2)])
        result.data[f"{count} distributions, {store}"] = {
            "import_ms": imported.as_json(),
            "resolve_ms": resolved.as_json(),
        }
    result.tables.append(table)
    return result
