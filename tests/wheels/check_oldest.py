"""Check that the installed versions are the lowest a distribution claims to support:
``python tests/wheels/check_oldest.py PLUGIN_FOLDER REQUIREMENT...`` fails unless each named
requirement of the plugin is installed at the lower bound of its range."""

import re
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path


def lower_bound(requirement: str) -> str:
    match = re.search(r">=\s*([0-9][^,;\s]*)", requirement)
    if not match:
        raise SystemExit(f"{requirement!r} states no lower bound")
    return match.group(1)


def main(folder: str, *names: str) -> None:
    project = tomllib.loads((Path(folder) / "pyproject.toml").read_text())["project"]
    wanted = {
        re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower(): r for r in project["dependencies"]
    }
    for name in names:
        low = lower_bound(wanted[name.lower()])
        installed = version(name)
        if installed.split("+")[0] != low and not installed.startswith(low + "."):
            raise SystemExit(f"{name} {installed} is installed, but the lowest claimed is {low}")
        print(f"{name} {installed}: the lowest {project['name']} claims ({wanted[name.lower()]})")


if __name__ == "__main__":
    main(*sys.argv[1:])
