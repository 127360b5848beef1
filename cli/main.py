"""The ``vgrc`` command: a Typer app whose commands are thin layers over library functions.

Only commands that really work are registered here.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vgrc.cli.eval import eval_command, report_command
from vgrc.cli.nac import build_nac_command, propose_nac_command
from vgrc.cli.shapes import gen_shapes
from vgrc.cli.vg import build_vg_command

app = typer.Typer(
    name="vgrc",
    help="Build contrast datasets and evaluate text-to-image retrieval with structure-aware reranking.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
app.command("propose-nac")(propose_nac_command)
app.command("eval")(eval_command)
app.command("report")(report_command)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
