"""The `earlyrank` command line. Each command is thin: parse, call the engine, print."""

from __future__ import annotations

import sys

import typer

from earlyrank.cli import lab_commands, query_commands  # noqa: F401  (each registers its commands)
from earlyrank.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
