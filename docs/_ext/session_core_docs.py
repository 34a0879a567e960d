"""Sphinx extension for the session-core docs: generated references and repository links.

- ``.. session-config-reference::`` renders every :class:`~session_core.SessionConfig` field (type,
  default, environment variable) with its description from the class's ``Attributes`` section;
  a field without a description, or a description of no field, is a build warning (an error
  under ``-W``), so the page cannot drift from the code.
- ``.. session-core-errors::`` lists every error class of session-core and its plugins, as a
  tree; ``docs/troubleshooting.md`` must have a section per class (checked here and by
  ``tests/test_docs_pages.py``).
- The Markdown files that live outside ``docs/`` (README.md, SECURITY.md, ...) are included as
  they are, and their links, written for GitHub, are rewritten to the pages of this site; a link
  to a file that does not exist is a build warning.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import docs_pages
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


def _parse_rst(directive: SphinxDirective, lines: list[str], source: str) -> list[nodes.Node]:
    """The nodes of generated reStructuredText, parsed where ``directive`` stands."""
    body = StringList()
    for line in lines:
        body.append(line, source)
    container = nodes.container()
    directive.state.nested_parse(body, directive.content_offset, container)
    return list(container.children)


# ------------------------------------------------------------------ configuration reference


def _annotation(field: dataclasses.Field[Any]) -> str:
    return str(field.type).replace("SessionStore", "~session_core.SessionStore")


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        return f"``{field.default!r}``"
    if field.default_factory is not dataclasses.MISSING:
        return f"``{field.default_factory()!r}``"
    return "required"


class ConfigReference(SphinxDirective):
    """Every setting of SessionConfig, from the dataclass and its docstring."""

    def run(self) -> list[nodes.Node]:
        from session_core import SessionConfig
        from session_core.config import ENV_PREFIX

        described = docs_pages.attribute_descriptions(inspect.getdoc(SessionConfig) or "")
        fields = dataclasses.fields(SessionConfig)
        names = {f.name for f in fields}
        source = inspect.getsourcefile(SessionConfig)
        for name in sorted(set(described) - names):
            logger.warning(
                "SessionConfig's docstring describes %r, which is no field",
                name,
                location=(source, None),
            )
        lines: list[str] = []
        for field in fields:
            text = described.get(field.name)
            if text is None:
                logger.warning(
                    "SessionConfig.%s has no description in the Attributes section "
                    "of its docstring",
                    field.name,
                    location=(source, None),
                )
                text = ""
            env = ENV_PREFIX + field.name.upper()
            lines += [
                f"``{field.name}``",
                f"   :type: ``{field.type}``",
                f"   :default: {_default(field)}",
                f"   :environment: ``{env}``",
                "",
                *(f"   {line}" for line in text.splitlines()),
                "",
            ]
        # Field lists inside a definition list: name, then its type, default and variable.
        return _parse_rst(self, lines, "session-config-reference")


# ------------------------------------------------------------------ errors


class ErrorTree(SphinxDirective):
    """Every SessionCoreError subclass of the documented packages, as a nested list."""

    def run(self) -> list[nodes.Node]:
        classes = docs_pages.error_classes()
        lines: list[str] = []

        def add(cls: type, depth: int) -> None:
            lines.extend((f"{'  ' * depth}- :exc:`{docs_pages.public_name(cls)}`", ""))
            subclasses: list[type] = cls.__subclasses__()
            for sub in sorted(subclasses, key=lambda c: c.__qualname__):
                if sub in classes:
                    add(sub, depth + 1)

        from session_core import SessionCoreError

        add(SessionCoreError, 0)
        return _parse_rst(self, lines, "session-core-errors")


# ------------------------------------------------------------------ speed, from bench/


class StoreSpeed(SphinxDirective):
    """Each store's own cost per request, from the latest full ``bench/results.json``."""

    def run(self) -> list[nodes.Node]:
        path = docs_pages.REPO / "bench" / "results.json"
        self.env.note_dependency(str(path))
        try:
            rows, date = docs_pages.store_speed(path)
        except (OSError, KeyError, ValueError) as exc:
            logger.warning(
                "cannot read the store speeds from %s: %r", path, exc, location=self.get_location()
            )
            return []
        head = "   * - " + "\n     - ".join(docs_pages.SPEED_COLUMNS)
        lines = [
            f".. list-table:: A session's own cost per request, µs (median; measured {date})",
            "   :header-rows: 1",
            "",
            head,
            *("   * - " + "\n     - ".join(row) for row in rows),
        ]
        return _parse_rst(self, "\n".join(lines).splitlines(), str(path))


def _check_troubleshooting(app: Sphinx, env: Any) -> None:
    page = Path(app.srcdir) / "troubleshooting.md"
    for name in docs_pages.missing_error_sections(page.read_text(encoding="utf-8")):
        logger.warning(
            "%s has no section on the troubleshooting page", name, location=(str(page), None)
        )


# ------------------------------------------------------------------ repository links


def _rewrite_links(source: Path, text: str, docname: str) -> str:
    def problem(message: str) -> None:
        logger.warning(message, location=(str(source), None))

    return docs_pages.rewrite_links(source, text, docname, problem)


def _on_source_read(app: Sphinx, docname: str, content: list[str]) -> None:
    content[0] = _rewrite_links(Path(app.srcdir) / f"{docname}.md", content[0], docname)


def _on_include_read(
    app: Sphinx, relative_path: Path, parent_docname: str, content: list[str]
) -> None:
    path = (Path(app.srcdir) / relative_path).resolve()
    if path.suffix == ".md":
        content[0] = _rewrite_links(path, content[0], parent_docname)


# ------------------------------------------------------------------ docstrings and references


def _prose_first_line(
    app: Sphinx, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    # Napoleon reads the first line of an attribute's or a property's docstring as
    # "type: description"; this project writes those as prose ("Whether it was saved: ..."),
    # never with a type, so an empty comment goes first and the prose stays prose.
    if what in {"attribute", "data", "property"} and any(line.strip() for line in lines):
        lines[:0] = ["..", ""]


def _dataclass_factory_defaults(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    # inspect shows a dataclass field's default_factory as "<factory>", which Sphinx cannot
    # parse (the whole signature then falls apart at its commas): show the value it makes.
    if not signature or "<factory>" not in signature or not dataclasses.is_dataclass(obj):
        return None
    for field in dataclasses.fields(obj):
        if field.default_factory is not dataclasses.MISSING:
            made = repr(field.default_factory()).replace("\\", "\\\\")
            signature = re.sub(
                rf"(\b{field.name}: [^=]*?)\s*=\s*<factory>", rf"\1 = {made}", signature
            )
    return signature, return_annotation


def _resolve_short_names(app: Sphinx, env: Any, node: Any, contnode: Any) -> Any:
    # Docstrings name the project's own objects by their short names (``SessionData``,
    # ``StoreRegistry.create``), as the code reads; resolve each to the one documented object
    # of that name, preferring the name users import (``session_core.X``).
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    domain = env.get_domain("py")
    here = (node.get("py:module") or "").split(".")

    def closeness(full: str) -> tuple[int, int, str]:
        shared = 0
        for ours, theirs in zip(here, full.split("."), strict=False):
            if ours != theirs:
                break
            shared += 1
        return (-shared, full.count("."), full)

    matches = sorted(
        (full for full in domain.objects if full == target or full.endswith("." + target)),
        key=closeness,
    )
    if not matches and "." in target:
        # ``package.name`` for a name the package re-exports from one of its modules.
        package, _, last = target.partition(".")[0], None, target.rpartition(".")[2]
        matches = sorted(
            (f for f in domain.objects if f.startswith(package + ".") and f.endswith("." + last)),
            key=closeness,
        )
    if not matches:
        return None
    from sphinx.util.nodes import make_refnode

    entry = domain.objects[matches[0]]
    return make_refnode(
        app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, matches[0]
    )


def setup_references(app: Sphinx) -> None:
    """Connect the docstring and reference handlers (before napoleon's, priority 500)."""
    app.connect("autodoc-process-docstring", _prose_first_line, priority=400)
    app.connect("missing-reference", _resolve_short_names)
    app.connect("autodoc-process-signature", _dataclass_factory_defaults)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives and the link rewriting."""
    app.add_directive("session-config-reference", ConfigReference)
    app.add_directive("session-core-errors", ErrorTree)
    app.add_directive("store-speed", StoreSpeed)
    app.connect("source-read", _on_source_read)
    app.connect("include-read", _on_include_read)
    app.connect("env-updated", _check_troubleshooting)
    setup_references(app)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
