"""Terminal output: one-line errors, progress bars driven by library callbacks."""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Callable, Iterator

import typer
from rich.console import Console

from vgrc.evaluators.errors import VgrcError, VgrcWarning

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

#: set by ``vgrc eval --shards``'s launcher: a folder where each shard writes its error line
#: (``rank-R.txt``) instead of printing it, so the user sees one line, once
SHARD_ERRORS_ENV = "VGRC_SHARD_ERRORS"


def command_line() -> str:
    """The command as the user typed it, for manifests and dataset cards."""
    return shlex.join(["vgrc", *sys.argv[1:]])


_INTERRUPT = {"requested": False, "reported": False}
INTERRUPTED_LINE = "[yellow]interrupted:[/yellow] finished work is kept; run the same command again to resume"


def report_interrupted() -> None:
    """Print the interrupted line once per process, whichever layer sees the interrupt."""
    if not _INTERRUPT["reported"]:
        _INTERRUPT["reported"] = True
        if not to_shard_launcher(None):  # under --shards the launcher says it, once
            stderr.print(INTERRUPTED_LINE)


#: where a KeyboardInterrupt raised by the handler would be lost: Python calls weakref
#: callbacks and finalizers from arbitrary points and only prints "Exception ignored in"
_FINALIZER_FILES = ("weakref.py", "_weakrefset.py")


def _in_finalizer(frame) -> bool:
    """True when ``frame`` (or one of the few frames it was called from) is a weakref
    callback or a ``__del__``."""
    for _ in range(4):
        if frame is None:
            return False
        code = frame.f_code
        if code.co_name == "__del__" or code.co_filename.endswith(_FINALIZER_FILES):
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum, frame) -> None:
    """Record the Ctrl-C; raise it here unless Python would swallow it here (a weakref
    callback or finalizer), in which case the next progress callback, or the end of the
    command, raises it (:func:`check_interrupt`)."""
    _INTERRUPT["requested"] = True
    if _in_finalizer(frame):
        return
    raise KeyboardInterrupt


def check_interrupt() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, even if Python swallowed the first one
    (a KeyboardInterrupt raised inside a weakref or C callback is only "ignored")."""
    if _INTERRUPT["requested"]:
        raise KeyboardInterrupt


@contextlib.contextmanager
def user_errors(debug: bool = False) -> Iterator[None]:
    """Turn a :class:`VgrcError` into one red line and exit code 2 (the traceback with ``--debug``).

    Ctrl-C ends with a line saying that re-running the command resumes, and exit code 130.
    The interrupt is also recorded, and every progress callback re-raises it, so it is
    never lost however it first lands.
    """
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        _INTERRUPT["requested"] = False
        previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        with warning_lines():
            yield
            check_interrupt()  # a Ctrl-C recorded at an unsafe moment and not raised since
    except VgrcError as exc:
        if debug:
            raise
        from rich.markup import escape

        if not to_shard_launcher(f"error: {exc}"):
            stderr.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        if debug:
            raise
        report_interrupted()
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def warning_lines() -> Iterator[None]:
    """Print each :class:`VgrcWarning` the library issues as one yellow ``warning:`` line on
    stderr, every time it is issued; other warnings are shown as Python shows them."""
    import warnings

    from rich.markup import escape

    with warnings.catch_warnings():  # restores the filters and showwarning afterwards
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, VgrcWarning):
                stderr.print(f"[yellow]warning:[/yellow] {escape(str(message))}")
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.simplefilter("always", VgrcWarning)
        warnings.showwarning = show
        yield


#: set by :func:`quiet_libraries`; library code that loads a model turns that library's own bars off when it is set
QUIET_LIBRARIES_ENV = "VGRC_QUIET_LIBRARIES"


def quiet_libraries() -> None:
    """Silence what the model libraries print unasked (loading bars, info logs, deprecation
    and advisory warnings) for the rest of this process; vgrc's own lines and errors stay.
    Set before they are imported (their environment variables) and, if they already are,
    through their logging APIs. Commands call it unless ``--verbose``."""
    import os
    import sys
    import warnings

    os.environ[QUIET_LIBRARIES_ENV] = "1"  # read where diffusers loads (it has no variable of its own for its bars)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for name in ("transformers", "diffusers"):
        if name in sys.modules:
            logging = __import__(f"{name}.utils.logging", fromlist=["logging"])
            logging.set_verbosity_error()
            logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(transformers|diffusers|torch|accelerate|huggingface_hub)\b")


def to_shard_launcher(line: str | None) -> bool:
    """Under ``--shards``' launcher, leave ``line`` (if any) to it and return True."""
    import os
    from pathlib import Path

    folder, rank = os.environ.get(SHARD_ERRORS_ENV), os.environ.get("RANK")
    if not folder or rank is None or not Path(folder).is_dir():
        return False
    if line is not None:
        (Path(folder) / f"rank-{rank}.txt").write_text(line + "\n", encoding="utf-8")
    return True


@contextlib.contextmanager
def progress_bar(description: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """Yield an ``on_progress(done, total)`` callback that draws a rich progress bar on stderr.

    The bar appears at the first callback, so a command that fails its input checks prints
    only its error line. With ``quiet`` the callback does nothing.
    """
    if quiet:
        yield lambda done, total: check_interrupt()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=stderr,
    )
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        check_interrupt()
        if task is None:
            progress.start()
            task = progress.add_task(description, total=total)
        progress.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if task is not None:
            progress.stop()


@contextlib.contextmanager
def phase_progress(quiet: bool = False) -> Iterator[Callable[[str, int, int], None]]:
    """Yield ``on_progress(phase, done, total)`` that shows one bar per phase on stderr."""
    if quiet:
        yield lambda phase, done, total: check_interrupt()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=stderr)
    tasks: dict[str, int] = {}
    started = False

    def update(phase: str, done: int, total: int) -> None:
        nonlocal started
        check_interrupt()
        if total <= 0:
            return
        if not started:
            progress.start()
            started = True
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase, total=total)
        progress.update(tasks[phase], completed=done, total=total)

    try:
        yield update
    finally:
        if started:
            progress.stop()
