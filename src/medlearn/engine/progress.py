"""Progress bars and logging on stderr (machine-readable output owns stdout).

Bars are shown only when stderr is a terminal and ``--quiet`` was not given, so logs captured by CI or
a scheduler stay readable; there, training prints one plain line per epoch instead
(:class:`medlearn.engine.callbacks.ProgressLines`), which ``--quiet`` silences too.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

stderr = Console(stderr=True)
_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal, also while a bar is shown: rich then replaces ``sys.stderr`` by a
    proxy that always answers False to ``isatty``, so ask the file it proxies."""
    return getattr(sys.stderr, "rich_proxied_file", sys.stderr).isatty()


def bars_enabled() -> bool:
    """Progress bars: stderr is a terminal and not ``--quiet``."""
    return not _state["quiet"] and stderr_is_terminal()


def lines_enabled() -> bool:
    """Plain progress lines instead of bars: stderr is not a terminal (nohup, a scheduler) and not
    ``--quiet``."""
    return not _state["quiet"] and not stderr_is_terminal()


def make_progress(disable: bool = False) -> Progress:
    """A rich progress bar on stderr; ``disable`` for work nested inside another bar (e.g. per epoch)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=disable or not bars_enabled(),
        transient=False,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr (a no-op wrapper when bars are off)."""
    with make_progress() as progress:
        task = progress.add_task(description, total=total, status="")
        for item in items:
            yield item
            progress.advance(task)


def info(message: str) -> None:
    """A status line on stderr unless quiet."""
    if not _state["quiet"]:
        stderr.print(message, highlight=False, soft_wrap=True)
