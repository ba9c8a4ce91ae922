"""Terminal output: progress on stderr, results on stdout (JSON only, with --json)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["UI"]

T = TypeVar("T")


class UI:
    """Progress and messages go to stderr; ``emit`` writes the result to stdout.

    With ``json_mode`` stdout carries exactly one JSON document and nothing else.
    """

    def __init__(self, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.out = Console(highlight=False, soft_wrap=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message)

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        """A spinner while the step runs, then a line with its duration."""
        start = time.perf_counter()
        if self.quiet:
            yield
            return
        with self.err.status(f"{description} ...", spinner="dots"):
            yield
        self.err.print(f"[green]✓[/green] {description} [dim]({time.perf_counter() - start:.1f} s)[/dim]")

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """A progress bar over an iterable."""
        if self.quiet:
            yield from items
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.err, transient=False) as progress:
            yield from progress.track(items, total=total, description=description)

    def emit(self, payload: dict[str, Any], render: Any = None) -> None:
        """The command's result: JSON on stdout in json mode, else the rich renderable."""
        if self.json_mode:
            sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
            sys.stdout.flush()
        elif render is not None:
            self.out.print(render)
