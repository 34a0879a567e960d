"""Every relative link of the Markdown pages (README.md, SECURITY.md, docs/*.md, ...) leads to a
file that exists, and every ``#anchor`` to a heading of that file, as GitHub shows them.

The docs site checks the same links in its own build (``tox -e docs``); this runs without
Sphinx and without a network, so a broken link fails the core tests too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "_ext"))

import docs_pages

PAGES = docs_pages.markdown_files()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(docs_pages.REPO)))
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    assert list(docs_pages.broken_links(page)) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    page = docs_pages.REPO / "docs" / "_link_check_probe.md"
    page.write_text(
        "# Probe\n\n## A heading\n\n"
        "[ok](#a-heading) [ok](../README.md#install) [gone](no-such-file.md) "
        "[bad anchor](../README.md#no-such-heading) [url](https://example.invalid/x)\n"
        "```\n[inside code](not-a-link.md)\n```\n",
        encoding="utf-8",
    )
    try:
        problems = list(docs_pages.broken_links(page))
    finally:
        page.unlink()
    assert problems == [
        "docs/_link_check_probe.md:5: no-such-file.md does not exist",
        "docs/_link_check_probe.md:5: README.md has no heading #no-such-heading",
    ]


def test_anchors_are_github_s() -> None:
    text = '# A `code` title: with, punctuation\n## Twice\n## Twice\n<a id="raw"></a>\n'
    assert docs_pages.anchors(text) == {
        "a-code-title-with-punctuation",
        "twice",
        "twice-1",
        "raw",
    }


def test_every_page_of_the_site_is_checked() -> None:
    # A Markdown file added to docs/ is a page of the site, and so is checked here.
    assert {p.name for p in docs_pages.DOCS.glob("*.md")} <= {p.name for p in PAGES}
    assert all(p.exists() for p in PAGES)
