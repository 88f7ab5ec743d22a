"""What the CLI shows: progress and messages on stderr, machine output on stdout.

On a terminal, with rich installed (the ``cli`` extra), every account gets a progress bar;
otherwise (a pipe, a log file, no rich) plain lines say what happens. rich honours
``NO_COLOR``; plain lines carry no color at all. rich is imported only here, lazily: the SDK
does not depend on it.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class PlainProgress:
    """Progress of one account as plain lines: each step, the request count every few
    seconds while it runs (a log shows it is alive), and the count when done."""

    EVERY = 2.0

    def __init__(self, label: str, out: TextIO) -> None:
        self.label = label
        self.out = out
        self.total = 0
        self.done = 0
        self._shown = time.monotonic()

    def expect(self, requests: int) -> None:
        self.total += requests

    def advance(self, requests: int = 1) -> None:
        self.done += requests
        now = time.monotonic()
        if now - self._shown >= self.EVERY:
            self._shown = now
            print(f"[{self.label}] {self.done}/{self.total} requests", file=self.out)

    def note(self, text: str) -> None:
        self._shown = time.monotonic()
        print(f"[{self.label}] {text} ({self.done}/{self.total} requests)", file=self.out)


class RichProgress:
    def __init__(self, label: str, bars: Any) -> None:
        self.label = label
        self.bars = bars
        self.task = bars.add_task(label, total=0)
        self.total = 0

    def expect(self, requests: int) -> None:
        self.total += requests
        self.bars.update(self.task, total=self.total)

    def advance(self, requests: int = 1) -> None:
        self.bars.update(self.task, advance=requests)

    def note(self, text: str) -> None:
        self.bars.update(self.task, description=f"{self.label}: {text}")


class Reporter:
    """Owns stderr for one command: progress per account, notes and warnings."""

    def __init__(self, err: TextIO | None = None, *, quiet: bool = False) -> None:
        self.err = err or sys.stderr
        self.quiet = quiet
        self._bars: Any = None
        self._made: dict[str, PlainProgress | RichProgress] = {}
        if not quiet and self.err.isatty():
            try:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )
            except ImportError:
                return
            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.err),
                transient=False,
            )

    def __enter__(self) -> Reporter:
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()
        for label, progress in self._made.items():
            # After a failure the error line says what happened; no "done" before it.
            if isinstance(progress, PlainProgress) and not self.quiet and kind is None:
                print(f"[{label}] done: {progress.done} requests", file=self.err)

    def progress(self, label: str) -> PlainProgress | RichProgress:
        if label not in self._made:
            if self._bars is not None:
                self._made[label] = RichProgress(label, self._bars)
            else:
                self._made[label] = PlainProgress(label, self.err)
        return self._made[label]

    def say(self, text: str) -> None:
        if self._bars is not None:
            self._bars.console.print(text, markup=False, highlight=False)
        elif not self.quiet:
            print(text, file=self.err)


def confirm(question: str, *, stdin: TextIO | None = None, err: TextIO | None = None) -> bool:
    """Ask on the terminal; anything but y/yes is no. Without a terminal: no."""
    stdin = stdin or sys.stdin
    err = err or sys.stderr
    if not stdin.isatty():
        return False
    print(f"{question} [y/N] ", end="", file=err, flush=True)
    answer = stdin.readline().strip().lower()
    return answer in ("y", "yes")
