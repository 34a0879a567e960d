"""The built-in stores pass the conformance suite: cookie (plain and encrypted) and memory; and
the suite fails stores with known flaws."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from session_core.cookie import CookieStore
from session_core.testing import MemoryStore, StoreConformance

SECRET = "k" * 40
HERE = Path(__file__).resolve().parent


class TestCookieStore(StoreConformance):
    server_side = False

    def make_store(self):
        return CookieStore([SECRET])


class TestEncryptedCookieStore(StoreConformance):
    server_side = False

    def make_store(self):
        return CookieStore([SECRET], encrypt=True)


class TestMemoryStore(StoreConformance):
    shared_backend = False  # its sessions live in the one object

    def make_store(self):
        return MemoryStore()

    def dump_storage(self, store):
        return store.dump()


# The suite's own test: stores with a known flaw (tests/broken_stores.py) fail the test written
# for that flaw, and only that one.

BROKEN_SUITE = """
import pytest
from broken_stores import ProcessLockStore, WholeSecondTTLStore
from session_core.testing import StoreConformance


class TestProcessLock(StoreConformance):
    race_wait = 60.0  # this store never makes the competing call wait: no time is spent

    @pytest.fixture(autouse=True)
    def _server(self):
        self.rows = {}

    def make_store(self):
        return ProcessLockStore(self.rows)

    def dump_storage(self, store):
        return store.dump()


class TestWholeSecondTTL(StoreConformance):
    shared_backend = False

    def make_store(self):
        return WholeSecondTTLStore()

    def dump_storage(self, store):
        return store.dump()
"""


@pytest.fixture(scope="module")
def broken_suite_outcomes(tmp_path_factory):
    """Each test of the suite run against the broken stores: {test id: outcome}."""
    folder = tmp_path_factory.mktemp("broken")
    (folder / "test_broken.py").write_text(BROKEN_SUITE)
    report = folder / "report.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report.write_text(result.stdout)
    outcomes = {}
    for line in result.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "SKIPPED", "ERROR") and "::" in rest:
            outcomes[rest.split(" - ")[0].split("::", 1)[1]] = word
    assert outcomes, result.stdout + result.stderr
    return outcomes


@pytest.mark.parametrize(
    ("store", "flaw"),
    [
        ("TestProcessLock", "test_save_racing_a_delete_does_not_resurrect"),
        ("TestProcessLock", "test_two_app_servers_merge_concurrent_changes"),
        ("TestWholeSecondTTL", "test_sub_second_expiry_is_honoured"),
    ],
)
def test_the_suite_catches_a_broken_store(broken_suite_outcomes, store, flaw):
    assert broken_suite_outcomes[f"{store}::{flaw}"] == "FAILED"


@pytest.mark.parametrize("store", ["TestProcessLock", "TestWholeSecondTTL"])
def test_each_broken_store_fails_only_the_tests_for_its_flaw(broken_suite_outcomes, store):
    failed = {
        test.split("::", 1)[1]
        for test, outcome in broken_suite_outcomes.items()
        if test.startswith(f"{store}::") and outcome != "PASSED" and outcome != "SKIPPED"
    }
    expected = {
        "TestProcessLock": {
            "test_save_racing_a_delete_does_not_resurrect",
            "test_two_app_servers_merge_concurrent_changes",
        },
        "TestWholeSecondTTL": {"test_sub_second_expiry_is_honoured"},
    }
    assert failed == expected[store]
