"""Sphinx configuration for the session-core documentation (built by ``tox -e docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import session_core  # noqa: E402

project = "session-core"
author = "the session-core authors"
copyright = "the session-core authors"
release = session_core.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinxarg.ext",
    "session_core_docs",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "README.md"]

# Every cross-reference must resolve (sphinx-build -n): a renamed class or a moved page fails
# the build instead of leaving a dead link.
nitpicky = True
_STDLIB = (
    "abc|argparse|asyncio|collections|collections\\.abc|concurrent\\.futures|contextlib|"
    "dataclasses|datetime|enum|http|json|logging|os|pathlib|pickle|secrets|threading|time|"
    "types|typing|warnings|wsgiref|builtins"
)
nitpick_ignore_regex = [
    # Other projects' names: there is no network here for intersphinx inventories, so their
    # references cannot resolve; they are still shown, as code.
    (r"py:.*", rf"({_STDLIB})(\..*)?"),
    (r"py:.*", r"(starlette|flask|django|sqlalchemy|redis|werkzeug|pluggy|asgiref)(\..*)?"),
    (r"py:.*", r"(_typeshed|typing_extensions)\..*"),
    # The same, as the type hints of the code name them (imported short names).
    (
        r"py:class",
        r"(Flask|Request|Response|SessionMixin|ResponseReturnValue|URL|Engine|AsyncEngine|"
        r"Connection|ASGIApp|WSGIApplication|StartResponse|WSGIEnvironment|Scope|Receive|Send|"
        r"HttpRequest|HttpResponse|Redis|RedisCluster|Sentinel|PluginManager)",
    ),
    (r"py:.*", r"(UpdateError|SessionBase|EntryPoint|Subparsers)"),
    # Type variables and private names, which the signatures show but the site does not
    # document.
    (r"py:class", r"(.*\.)?(_?[A-Z]|_F|_T)"),
    (r"py:.*", r"(.*\.)?_[A-Za-z]\w*"),
    # The plugins' internal modules, which docstrings name for the curious.
    (r"py:mod", r"(session_core_db\.|session_core_redis\.)?(wire|plans|listing)"),
]
# One short name can name several documented classes (``SessionStore`` is the store base class
# and Django's session engine class); Sphinx then links the first, and warns.
suppress_warnings = ["ref.python"]
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

# Help texts and docstrings are full of options and code: "--config" must stay two hyphens.
smartquotes = False

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 4

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = False

html_theme = "alabaster"
html_title = f"session-core {release}"
html_static_path: list[str] = []

# No network here, so Sphinx's linkcheck builder (which fetches every external URL) is not run:
# links inside the site are checked by the build itself (-n, and docs/_ext for the repository
# links of the Markdown pages), and tests/test_docs_links.py checks them as GitHub shows them.
