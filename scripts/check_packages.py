"""Check the installed package `earlyrank` as a whole: its import contracts (import-linter, `.importlinter`)
and its types (mypy, across modules).

Both tools find a package by walking its folder, and the editable install maps `earlyrank.engine` and the other
subpackages onto the top-level folders with an import hook neither can see (mypy would treat every
`earlyrank.*` import as unknown). So this lays the Python files out as `pip install .` would, read from
pyproject.toml's package-dir, in a temporary folder, and checks that. A reported path
`earlyrank/engine/x.py` is the repository's `engine/x.py`.
Exit status: 0 when both pass.
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


def python_files_only(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or (not n.endswith(".py") and not Path(folder, n).is_dir())]


def main() -> int:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tools = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        for package, folder in config["package-dir"].items():
            shutil.copytree(ROOT / folder, Path(tmp, *package.split(".")), dirs_exist_ok=True,
                            ignore=python_files_only)
        env = {**os.environ, "PYTHONPATH": tmp, "MYPYPATH": tmp}
        contracts = subprocess.call([str(tools / "lint-imports"), str(ROOT / ".importlinter"), "--no-cache"],
                                    env=env, cwd=tmp)
        types = subprocess.call([str(tools / "mypy"), "--config-file", str(ROOT / "pyproject.toml"),
                                 "--cache-dir", str(ROOT / ".mypy_cache"), "-p", "earlyrank"], env=env, cwd=tmp)
        return contracts or types


if __name__ == "__main__":
    sys.exit(main())
