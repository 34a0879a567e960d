"""``python -m bench --quick`` (tox -e bench-quick) is a smoke run: it says so first, and judges
no timing, so nothing it prints can read as a failed target."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_mode_says_it_is_a_smoke_run_and_judges_no_target(tmp_path):
    report = tmp_path / "RESULTS.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "headers", "--markdown", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("bench --quick is a smoke run")
    assert "no target is judged" in lines[0]
    targets = [line for line in lines[1:] if "goal" in line]
    assert targets, result.stdout  # the headers area has targets: they are printed
    for line in targets:
        assert line.startswith("-    ")
        assert line.endswith("; not judged)")
    assert "MISS" not in result.stdout
    text = report.read_text()
    assert "| target | full-run goal | measured |" in text
    assert "**no**" not in text
