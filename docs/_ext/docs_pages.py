"""What the docs build and the docs tests share: the pages, their links and their code blocks.

Pure helpers (no Sphinx import), so ``tests/test_docs_*.py`` use them without building the site.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

INCLUDED = {
    "README.md": "project/readme",
    "SECURITY.md": "project/security",
    "CONTRIBUTING.md": "project/contributing",
    "CHANGELOG.md": "project/changelog",
    "plugins/db_session/README.md": "project/db-store",
    "plugins/db_session/CHANGELOG.md": "project/db-changelog",
    "plugins/redis_session/README.md": "project/redis-store",
    "plugins/redis_session/CHANGELOG.md": "project/redis-changelog",
    "bench/RESULTS.md": "project/bench-results",
}
"""Markdown files outside ``docs/`` that the site includes as they are, by their page's name."""

DOCUMENTED_PACKAGES = ("session_core", "session_core_db", "session_core_redis")


def markdown_files() -> list[Path]:
    """Every Markdown page of the site: the included files and ``docs/*.md``."""
    return [REPO / name for name in INCLUDED] + sorted(DOCS.glob("*.md"))


def docname_of(path: Path) -> str | None:
    """The site's page for a repository file, or None when the site has none."""
    relative = path.resolve().relative_to(REPO).as_posix()
    if relative in INCLUDED:
        return INCLUDED[relative]
    page = Path(relative)
    if page.parent == Path("docs") and page.suffix in (".md", ".rst"):
        return page.stem
    return None


def page_file(docname: str) -> str:
    """The source file of a page, relative to ``docs/``: what a MyST link to it names."""
    if (DOCS / f"{docname}.rst").exists():
        return f"{docname}.rst"
    return f"{docname}.md"


# ------------------------------------------------------------------ Markdown structure

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^()\s]+)((?:\s+\"[^\"]*\")?)\)")
_HTML_ANCHOR = re.compile(r'^<a (?:id|name)="([^"]+)"></a>[ \t]*$')
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for every line outside fenced code blocks."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if match:
            marker = match.group(2)
            if fence is None:
                fence = marker
                continue
            if marker.startswith(fence[0]) and len(marker) >= len(fence) and not match.group(3):
                fence = None
                continue
        if fence is None:
            yield number, line


class Link(NamedTuple):
    """A Markdown link to a file of the repository (or an anchor of the same page)."""

    line: int
    text: str
    target: str  # the path part, "" for an anchor of the same page
    anchor: str


def relative_links(text: str) -> Iterator[Link]:
    """Every link in ``text`` that is not an absolute URL (nor inside a code block or span)."""
    for number, line in prose_lines(text):
        for match in _LINK.finditer(_without_code_spans(line)):
            target = match.group(3)
            if _SCHEME.match(target) or target.startswith("//"):
                continue
            path, _, anchor = target.partition("#")
            yield Link(number, match.group(2), path, anchor)


def _without_code_spans(line: str) -> str:
    return re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), line)


def github_slug(heading: str) -> str:
    """The anchor GitHub (and MyST, with ``myst_heading_anchors``) gives a heading."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of every heading of a Markdown page (with GitHub's -1, -2 for repeats)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(text):
        html = _HTML_ANCHOR.match(line)
        if html:
            found.add(html.group(1))
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(path: Path) -> Iterator[str]:
    """What is wrong with each relative link of the Markdown file at ``path`` (as on GitHub)."""
    text = path.read_text(encoding="utf-8")
    for link in relative_links(text):
        where = f"{path.relative_to(REPO)}:{link.line}"
        target = (path.parent / link.target).resolve() if link.target else path
        if not target.exists():
            yield f"{where}: {link.target} does not exist"
            continue
        if not target.is_relative_to(REPO):
            yield f"{where}: {link.target} is outside the repository"
            continue
        if (
            link.anchor
            and target.suffix == ".md"
            and link.anchor not in anchors(target.read_text(encoding="utf-8"))
        ):
            yield f"{where}: {target.relative_to(REPO)} has no heading #{link.anchor}"


def rewrite_links(source: Path, text: str, docname: str, problem: Callable[[str], None]) -> str:
    """``text`` (the Markdown file ``source``) with its repository links made site links.

    A link to a page of the site points to that page (relative to ``docname``, where the text
    is shown); a link to any other file of the repository becomes its text and the file's path
    as code, since the site does not serve the sources. ``problem`` is told about every link
    to a file that does not exist.
    """

    def replace(match: re.Match[str]) -> str:
        bang, label, target, title = match.groups()
        if _SCHEME.match(target) or target.startswith(("#", "//")):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = (source.parent / path).resolve()
        if not resolved.exists():
            problem(f"link to {target!r}, which does not exist")
            return match.group(0)
        page = docname_of(resolved) if resolved.is_relative_to(REPO) else None
        if page is not None:
            new = "/" + page_file(page) + (f"#{anchor}" if anchor else "")
            return f"{bang}[{label}]({new}{title})"
        shown = resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else path
        if label.strip("`") in (path, shown, path.rstrip("/"), shown + "/"):
            return label if label.startswith("`") else f"`{label}`"
        return f"{label} (`{shown}`)"

    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        match = _FENCE.match(line.rstrip("\n"))
        if match:
            marker = match.group(2)
            if fence is None:
                fence = marker
            elif marker.startswith(fence[0]) and not match.group(3).strip():
                fence = None
            out.append(line)
            continue
        if fence is None:
            # GitHub's raw-HTML anchors become MyST targets, which links to "#name" reach.
            line = _HTML_ANCHOR.sub(r"(\1)=", line)
            line = _LINK.sub(replace, line)
        out.append(line)
    return "".join(out)


# ------------------------------------------------------------------ docstrings and errors


def attribute_descriptions(docstring: str) -> dict[str, str]:
    """The ``Attributes:`` section of a Google-style docstring: name -> description."""
    described: dict[str, str] = {}
    lines = docstring.splitlines()
    try:
        start = lines.index("Attributes:")
    except ValueError:
        return described
    current: str | None = None
    for line in lines[start + 1 :]:
        if line and not line.startswith(" "):
            break
        match = re.match(r"^    (\w+): (.*)$", line)
        if match:
            current = match.group(1)
            described[current] = match.group(2)
        elif current is not None and line.strip():
            described[current] += "\n" + line.strip()
    return described


def installed_packages() -> tuple[str, ...]:
    """The documented packages that are installed (the docs env installs every one)."""
    return tuple(p for p in DOCUMENTED_PACKAGES if importlib.util.find_spec(p) is not None)


def error_classes() -> set[type[Exception]]:
    """Every subclass of ``SessionCoreError`` defined in the installed documented packages."""
    from session_core import SessionCoreError

    for package in installed_packages():
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            if not info.name.endswith(".__main__"):  # importing it would run the command
                importlib.import_module(info.name)
    found: set[type[Exception]] = set()
    pending: list[type[Exception]] = [SessionCoreError]
    while pending:
        cls = pending.pop()
        if cls.__module__.split(".")[0] in DOCUMENTED_PACKAGES and cls not in found:
            found.add(cls)
            pending.extend(cls.__subclasses__())
    return found


def public_name(cls: type) -> str:
    """``package.Name`` when the package exports ``cls``, else its module's dotted path."""
    package = importlib.import_module(cls.__module__.split(".")[0])
    if getattr(package, cls.__name__, None) is cls:
        return f"{package.__name__}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def error_section_title(cls: type) -> str:
    """The heading that names ``cls`` on the troubleshooting page."""
    return f"`{public_name(cls)}`"


def missing_error_sections(troubleshooting: str) -> list[str]:
    """The error classes that have no section on the troubleshooting page."""
    headings = {
        line.lstrip("#").strip() for _, line in prose_lines(troubleshooting) if line.startswith("#")
    }
    return sorted(
        error_section_title(cls)
        for cls in error_classes()
        if error_section_title(cls) not in headings
    )


# ------------------------------------------------------------------ speed, from bench/

SPEED_COLUMNS = (
    "store",
    "untouched",
    "read",
    "write",
    "update",
    "the store's floor (read / update)",
)
_SPEED_ROWS = (
    ("``cookie``", "cookie", "plain WSGI", None),
    ("``redis``", "redis", "plain WSGI", ("sync GET", "sync GET + SET EX")),
    (
        "``db``, SQLite",
        "db",
        "SQLite: plain WSGI",
        ("SQLite SELECT by key", "SQLite SELECT + upsert"),
    ),
    (
        "``db``, PostgreSQL",
        "db",
        "PostgreSQL: plain WSGI",
        ("PostgreSQL SELECT by key", "PostgreSQL SELECT + upsert"),
    ),
)


def store_speed(results: Path) -> tuple[list[list[str]], str]:
    """Rows of :data:`SPEED_COLUMNS` from a full ``python -m bench --json`` run, and its date.

    The cost is the request with sessions less the same app without them, on a plain WSGI app,
    in microseconds; the floor is the store's own client alone doing the same round trips.
    """
    import json

    data = json.loads(results.read_text(encoding="utf-8"))
    if data.get("quick"):
        raise ValueError("bench/results.json is from a --quick run; run `tox -e bench`")
    rows: list[list[str]] = []
    for label, area, app, floor in _SPEED_ROWS:
        cost = data["areas"][area][app]["session-core"]["cost_us"]
        cells = [label]
        for step in ("untouched", "read", "write", "update"):
            cells.append(f"{cost[step]['median']:.1f}" if step in cost else "n/a")
        if floor is None:
            cells.append("none: no server")
        else:
            floors = data["areas"][area]["floor_us"]
            cells.append(" / ".join(f"{floors[name]['median']:.1f}" for name in floor))
        rows.append(cells)
    return rows, str(data["date"])


# ------------------------------------------------------------------ code samples

MARKED_PAGES = ("README.md", *(f"docs/{page.name}" for page in sorted(DOCS.glob("*.md"))))
"""The pages each of whose code samples says whether the tests run it: the README and every
page of ``docs/``."""

_MARKER = re.compile(
    r"^<!-- docs-test: (run|skip)(?:, exit (\d+)|, requests (.+?)| \((.+)\))? -->$"
)
_FILE_MARKER = re.compile(r"^<!-- (?:\w+ )?file: \S+ -->$")
_REQUEST = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/\S*)(?: (\S+=\S*))?$")


class Sample(NamedTuple):
    """A fenced code block of a page, with its ``<!-- docs-test: ... -->`` marker, if any."""

    path: Path
    line: int  # of the opening fence
    language: str
    code: str
    marker: str | None  # "run", "skip" or None
    exit_code: int  # what the last command of a runnable console block must exit with
    requests: tuple[str, ...] = ()  # "METHOD /path [form=data]": sent through the sample's app
    reason: str | None = None  # why a skipped sample is not run


def parse_requests(text: str) -> tuple[str, ...]:
    """The requests of a ``run, requests ...`` marker: comma-separated ``METHOD /path``, each
    with an optional form body (``POST /login name=Ada&remember=on``).

    Raises:
        ValueError: for a request that is not in that form.
    """
    found = tuple(part.strip() for part in text.split(","))
    for request in found:
        if not _REQUEST.match(request):
            raise ValueError(f"not a request: {request!r} (want METHOD /path [name=value&...])")
    return found


def _marker_of(lines: list[str], fence: int) -> re.Match[str] | None:
    """The docs-test marker of the block whose fence is ``lines[fence]``: the line above it, or
    the one above a ``<!-- file: ... -->`` line there (the blocks the example tests compare)."""
    above = fence - 1
    if above >= 0 and _FILE_MARKER.match(lines[above]):
        above -= 1
    return _MARKER.match(lines[above]) if above >= 0 else None


def samples(path: Path) -> list[Sample]:
    """Every fenced code block of a Markdown page, in order."""
    found: list[Sample] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match or match.group(1):
            index += 1
            continue
        fence, language = match.group(2), match.group(3).strip()
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        marker = _marker_of(lines, index)
        found.append(
            Sample(
                path,
                index + 1,
                language,
                "\n".join(lines[index + 1 : end]) + "\n",
                marker.group(1) if marker else None,
                int(marker.group(2)) if marker and marker.group(2) else 0,
                parse_requests(marker.group(3)) if marker and marker.group(3) else (),
                marker.group(4) if marker else None,
            )
        )
        index = end + 1
    return found


def dangling_markers(path: Path) -> list[int]:
    """Lines of ``docs-test`` markers (or look-alikes) that are not right above a code block
    (or above the ``<!-- file: ... -->`` line of one)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    dangling = []
    for number, line in enumerate(lines, 1):
        if not line.lstrip().startswith("<!-- docs-test"):
            continue
        below = number  # the index of the next line
        if below < len(lines) and _FILE_MARKER.match(lines[below]):
            below += 1
        if not _MARKER.match(line) or below >= len(lines) or not _FENCE.match(lines[below]):
            dangling.append(number)
    return dangling


class Command(NamedTuple):
    """One ``$`` line of a console sample and the output lines shown under it."""

    command: str
    expected: tuple[str, ...]


def joined_lines(code: str) -> list[str]:
    """The lines of a shell sample, with each line ending in ``\\`` joined to the next."""
    lines: list[str] = []
    pending = ""
    for line in code.splitlines():
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        lines.append(pending + line)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def console_commands(code: str) -> list[Command]:
    """The commands of a console sample, each with the output the page shows for it."""
    commands: list[Command] = []
    for line in joined_lines(code):
        if line.startswith("$ "):
            commands.append(Command(line[2:], ()))
        elif line.strip() and commands:
            last = commands[-1]
            commands[-1] = Command(last.command, (*last.expected, line))
    return commands


def output_pattern(expected: str) -> re.Pattern[str]:
    """A shown output line as a pattern: ``...`` stands for any text, spaces for any spaces."""
    parts = [re.escape(part) for part in expected.strip().split("...")]
    return re.compile(r"\s+".join(".*".join(parts).split(r"\ ")))
