"""The ``vgrc`` command: a Typer app whose commands are thin layers over library functions.

Only commands that really work are registered here.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def _interrupted_while_starting(signum, frame):  # pragma: no cover - timing dependent
    sys.stderr.write("interrupted: nothing was started; run the command again\n")
    os._exit(130)


# Ctrl-C while the modules below load: the one line and exit 130, never an import traceback
_previous_sigint = signal.signal(signal.SIGINT, _interrupted_while_starting) if threading.current_thread() is threading.main_thread() else None

from typing import Annotated  # noqa: E402  (after the early SIGINT handler)

import typer
from typer.core import TyperGroup

try:  # Typer ≥ 0.20 vendors Click as typer._click; its exceptions are not click's
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer on plain Click
    from click import exceptions as click_exceptions

from vgrc.cli.demo import demo_command
from vgrc.cli.eval import eval_command, report_command
from vgrc.cli.diagnose import diagnose_app
from vgrc.cli.imports import import_app
from vgrc.cli.nac import build_nac_command, propose_nac_command
from vgrc.cli.shapes import gen_shapes
from vgrc.cli.copies import build_copies_command
from vgrc.cli.show import show_command
from vgrc.cli.train import train_command
from vgrc.cli.vg import build_vg_command

if _previous_sigint is not None:
    signal.signal(signal.SIGINT, _previous_sigint)


def _raw_value(exc, args: list[str]) -> str:
    """``" (got 'many')"`` for a bad option value, read from the command line, since Typer's
    message does not always quote it."""
    param = getattr(exc, "param", None)
    if param is None or not getattr(param, "opts", None):
        return ""
    message = exc.format_message()
    for i, arg in enumerate(args):
        for opt in param.opts:
            value = None
            if arg == opt and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(opt + "="):
                value = arg[len(opt) + 1 :]
            if value is not None and repr(value) not in message:
                return f" (got {value!r})"
    return ""


class VgrcGroup(TyperGroup):
    """Typer's group, with every command-line usage error (a bad number, a missing option,
    an unknown flag) reported as ONE ``error:`` line and exit code 2, like vgrc's own errors,
    instead of a boxed multi-line panel."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from rich.markup import escape

        from vgrc.cli.console import EXIT_INTERRUPTED, EXIT_USER_ERROR, report_interrupted, stderr, to_shard_launcher

        try:
            rc = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except click_exceptions.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # plain `vgrc`: the help (already printed by rich)
                if exc.format_message().strip():
                    typer.echo(exc.format_message())
                return 0 if not standalone_mode else sys.exit(0)
            where = f" (vgrc {exc.ctx.info_name} --help)" if exc.ctx is not None and exc.ctx.info_name != "vgrc" else " (vgrc --help)"
            given = _raw_value(exc, sys.argv[1:] if args is None else list(args))
            stderr.print(f"[red]error:[/red] {escape(exc.format_message() + given + where)}", highlight=False)
            rc = EXIT_USER_ERROR
        except click_exceptions.ClickException as exc:
            stderr.print(f"[red]error:[/red] {escape(exc.format_message())}", highlight=False)
            rc = exc.exit_code
        except (typer.Abort, KeyboardInterrupt) as exc:  # Ctrl-C outside a command's own handler (imports, parsing)
            if isinstance(exc.__cause__, EOFError):  # Click turns any EOFError into Abort: a bug, not a Ctrl-C
                raise exc.__cause__ from None
            report_interrupted()
            rc = EXIT_INTERRUPTED
        except Exception as exc:
            # under --shards' launcher, one shard's failure makes the others fail too (their
            # peer is gone): each leaves a line, and the launcher shows the first failure's
            if not to_shard_launcher(f"error: shard {os.environ.get('RANK')} stopped: {type(exc).__name__}: {exc}"):
                raise
            rc = 1
        if rc == EXIT_INTERRUPTED:  # Typer turns a KeyboardInterrupt into a silent Exit(130)
            report_interrupted()
        if not standalone_mode:
            return rc
        raise SystemExit(rc or 0)


app = typer.Typer(
    cls=VgrcGroup,
    name="vgrc",
    help="Build contrast datasets and evaluate text-to-image retrieval with structure-aware reranking.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # "rich" would swallow "[default: …]" and other bracketed text
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from vgrc.evaluators import __version__

        typer.echo(f"vgrc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Build contrast datasets and evaluate text-to-image retrieval with structure-aware reranking."""


app.command("gen-shapes")(gen_shapes)
app.command("build-nac")(build_nac_command)
app.command("build-vg")(build_vg_command)
app.command("build-copies")(build_copies_command)
app.command("propose-nac")(propose_nac_command)
app.command("eval")(eval_command)
app.command("report")(report_command)
app.command("show")(show_command)
app.add_typer(import_app, name="import")
app.add_typer(diagnose_app, name="diagnose")
app.command("train")(train_command)
app.command("demo")(demo_command)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C while Typer builds the command, before any handler of ours
        sys.stderr.write("interrupted: finished work is kept; run the same command again to resume\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
