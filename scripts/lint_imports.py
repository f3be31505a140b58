"""Check the import contracts in `.importlinter` with import-linter.

import-linter finds a package by walking its folder, and the editable install maps `earlyrank.engine` and the
other subpackages onto the top-level folders with an import hook it cannot see. So this lays the Python files
out as `pip install .` would (read from pyproject.toml's package-dir), in a temporary folder, and checks that.
Exit status: import-linter's (0 when every contract is kept).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    with tempfile.TemporaryDirectory() as tmp:
        for package, folder in config["package-dir"].items():
            target = Path(tmp, *package.split("."))
            shutil.copytree(ROOT / folder, target, dirs_exist_ok=True,
                            ignore=lambda d, names: [n for n in names if not n.endswith(".py")
                                                     and not Path(d, n).is_dir() or n == "__pycache__"])
        env = {**os.environ, "PYTHONPATH": tmp}
        lint = Path(sys.executable).with_name("lint-imports")
        return subprocess.call([str(lint), str(ROOT / ".importlinter"), "--no-cache"], env=env,
                               cwd=tmp)


if __name__ == "__main__":
    sys.exit(main())
