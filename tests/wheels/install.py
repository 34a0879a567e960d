"""Build a wheel of each distribution folder given and install them all, not editable, the way
users get them: ``python tests/wheels/install.py WHEEL_DIR FOLDER...``."""

import subprocess
import sys
from pathlib import Path


def main(wheel_dir: str, *folders: str) -> None:
    out = Path(wheel_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(out), *folders], check=True)
    wheels = sorted(str(p) for p in out.glob("*.whl"))
    print("installing", *wheels, sep="\n  ")
    subprocess.run([*pip, "install", "--force-reinstall", *wheels], check=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
