"""The `earlyrank` command line. Each command is thin: parse, call the engine, print."""

from __future__ import annotations

import importlib
import sys

import typer

from earlyrank.cli.common import app

# Each module registers its commands; `earlyrank --help` lists them in this order: everyday use first.
for _module in ("query_commands", "document_commands", "lab_commands", "fit_commands"):
    importlib.import_module(f"earlyrank.cli.{_module}")

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
