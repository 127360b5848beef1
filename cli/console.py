"""Terminal output: one-line errors, progress bars driven by library callbacks."""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Callable, Iterator

import typer
from rich.console import Console

from vgrc.evaluators.errors import VgrcError

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def command_line() -> str:
    """The command as the user typed it, for manifests and dataset cards."""
    return shlex.join(["vgrc", *sys.argv[1:]])


@contextlib.contextmanager
def user_errors(debug: bool = False) -> Iterator[None]:
    """Turn a :class:`VgrcError` into one red line and exit code 2 (the traceback with ``--debug``).

    Ctrl-C ends with a line saying that re-running the command resumes, and exit code 130.
    """
    try:
        yield
    except VgrcError as exc:
        if debug:
            raise
        stderr.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        if debug:
            raise
        stderr.print("[yellow]interrupted:[/yellow] finished work is kept; run the same command again to resume", soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


@contextlib.contextmanager
def progress_bar(description: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """Yield an ``on_progress(done, total)`` callback drawing a rich progress bar.

    With ``quiet`` (or when stderr is not a terminal and CI is set) the callback does nothing.
    """
    if quiet:
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=False) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
