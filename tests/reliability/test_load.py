"""Load and soak: the demo app under uvicorn, many visitors on loopback, for each store.

Zero errors, no lost writes (each visitor checks its own counter at every step and at the end),
and memory flat: the server's RSS after warm-up and at the end are reported, and may not grow by
more than a small allowance.
"""

from __future__ import annotations

import json

from ._load import demo_server, run_load
from .conftest import StoreSetup, record_figure, scaled

SECONDS = scaled(6, 60)
WARM_UP = scaled(2, 10)
VISITORS = scaled(20, 40)
MiB = 1024 * 1024


def demo_options(setup: StoreSetup) -> tuple[str, dict[str, str]]:
    options = {
        name: value if isinstance(value, str) else json.dumps(value)
        for name, value in setup.settings.get("store_options", {}).items()
    }
    return setup.settings.get("store", "cookie"), options


def test_demo_under_load_has_no_errors_no_lost_writes_and_flat_memory(rel_setup, tmp_path):
    store, options = demo_options(rel_setup)
    with demo_server(store, options, tmp_path / "demo.log") as demo:
        warm = run_load(demo.url, VISITORS, WARM_UP)
        start_rss = demo.rss()
        result = run_load(demo.url, VISITORS, SECONDS)
        end_rss = demo.rss()
        log = demo.log.read_text()
    rate = result.requests / SECONDS
    record_figure(
        "load",
        f"{rel_setup.kind}: {VISITORS} visitors, {SECONDS} s under uvicorn: {result.requests} "
        f"requests ({rate:.0f}/s), {result.errors} errors, {len(result.lost_writes)} lost writes, "
        f"slowest {result.slowest * 1000:.0f} ms, RSS {start_rss / MiB:.1f} -> "
        f"{end_rss / MiB:.1f} MiB",
    )
    assert warm.errors == 0, (warm.statuses, warm.exceptions, log[-3000:])
    assert result.errors == 0, (result.statuses, result.exceptions, log[-3000:])
    assert not result.lost_writes, result.lost_writes[:10]
    assert result.requests > VISITORS * 10
    # Flat: a few MiB of allocator and cache noise at most, never growth with the request count.
    assert end_rss - start_rss < 8 * MiB + start_rss // 10, (start_rss, end_rss)
