"""The command line: `aisle <command>`; see `aisle --help`."""

from aisle.cli._main import cli, main

__all__ = ["cli", "main"]
