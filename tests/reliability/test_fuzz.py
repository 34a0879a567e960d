"""The coverage-guided fuzzer (fuzz_cookie.py) on the cookie decoding path, for a bounded run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .conftest import record_figure, scaled

FUZZER = Path(__file__).with_name("fuzz_cookie.py")
RUNS = scaled(200_000, 6_000_000)
SECONDS = scaled(60, 300)  # a bound on time as well as on runs


def test_atheris_finds_no_crash_and_no_forged_session(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            str(FUZZER),
            str(corpus),
            f"-runs={RUNS}",
            f"-max_total_time={SECONDS}",
            "-max_len=6000",
            "-seed=1",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
        check=False,
    )
    output = done.stderr + done.stdout
    assert done.returncode == 0, output[-4000:]
    runs = int(re.search(r"Done (\d+) runs", output).group(1))
    coverage = re.findall(r"cov: (\d+)", output)
    record_figure(
        "fuzzing",
        f"atheris: {runs} inputs on the cookie decoding path (plain, encrypted, rotation, WSGI), "
        f"{coverage[-1] if coverage else '?'} edges covered, 0 crashes, 0 forged sessions",
    )
    assert runs >= min(RUNS, 10_000)
