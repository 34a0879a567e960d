"""The generated parts of the docs keep up with the code: every error class has its section on
the troubleshooting page, and the configuration reference describes every setting."""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "_ext"))

import docs_pages

import session_core
from session_core import SessionConfig

TROUBLESHOOTING = docs_pages.DOCS / "troubleshooting.md"


def test_every_error_class_has_a_section_on_the_troubleshooting_page() -> None:
    assert docs_pages.missing_error_sections(TROUBLESHOOTING.read_text(encoding="utf-8")) == []


def test_every_error_the_core_exports_is_found() -> None:
    exported = {
        getattr(session_core, name)
        for name in session_core.__all__
        if isinstance(getattr(session_core, name), type)
        and issubclass(getattr(session_core, name), session_core.SessionCoreError)
    }
    assert exported <= docs_pages.error_classes()


def test_a_new_error_class_without_a_section_is_reported() -> None:
    class BrandNewError(session_core.SessionCoreError):
        """An error added to the code but not to the docs."""

    BrandNewError.__module__ = "session_core.errors"
    BrandNewError.__qualname__ = "BrandNewError"
    text = TROUBLESHOOTING.read_text(encoding="utf-8")
    try:
        assert docs_pages.missing_error_sections(text) == ["`session_core.errors.BrandNewError`"]
    finally:
        del BrandNewError  # its class object stays in __subclasses__ until collected
        import gc

        gc.collect()


def test_every_setting_is_described_in_the_config_docstring() -> None:
    described = docs_pages.attribute_descriptions(inspect.getdoc(SessionConfig) or "")
    fields = {f.name for f in dataclasses.fields(SessionConfig)}
    assert set(described) == fields
    assert all(text.strip() for text in described.values())


def test_attribute_descriptions_keep_continuation_lines() -> None:
    doc = "Title.\n\nAttributes:\n    one: first line\n        second line.\n    two: x\n\nMore."
    assert docs_pages.attribute_descriptions(doc) == {"one": "first line\nsecond line.", "two": "x"}


def test_the_store_speed_table_reads_the_committed_full_benchmark_run() -> None:
    rows, date = docs_pages.store_speed(docs_pages.REPO / "bench" / "results.json")
    assert [row[0] for row in rows] == [
        "``cookie``",
        "``redis``",
        "``db``, SQLite",
        "``db``, PostgreSQL",
    ]
    assert all(len(row) == len(docs_pages.SPEED_COLUMNS) for row in rows)
    assert date
