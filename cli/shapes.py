"""``vgrc gen-shapes``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from vgrc.cli.console import command_line, progress_bar, stdout, user_errors
from vgrc.cli.options import Debug, Limit, OutDir, Overwrite, Quiet, Seed, Workers
from vgrc.generators.shapes.svg import list_colors, list_shapes

_SUBSET = "Repeat the option or give a comma-separated list."


def gen_shapes(
    out: OutDir,
    size: Annotated[int, typer.Option("--size", help="Canvas side in pixels (≥ 32).")] = 224,
    limit: Limit = None,
    shapes: Annotated[
        Optional[list[str]],
        typer.Option("--shapes", show_default=False, help=f"Shapes to use [default: all of {', '.join(list_shapes())}]. {_SUBSET}"),
    ] = None,
    colors: Annotated[
        Optional[list[str]],
        typer.Option("--colors", show_default=False, help=f"Colors to use [default: all of {', '.join(list_colors())}]. {_SUBSET}"),
    ] = None,
    seed: Seed = 0,
    workers: Workers = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Generate the Synthetic Shapes dataset (paper §3).

    6 shapes × 7 colors = 42 SVG primitives; every unordered combination with replacement
    of 3 of them (13,244 images) in the `compositions` split, and the 42 single-primitive
    reference images in the `primitives` split. Rasterised with cairosvg as RGB PNG.

    Interrupt it at any time: running the same command again resumes and gives the same
    bytes as an uninterrupted run.
    """
    from vgrc.generators.shapes.build import ShapesConfig, build_shapes

    with user_errors(debug):
        config = ShapesConfig(size=size, shapes=tuple(shapes or ()), colors=tuple(colors or ()), limit=limit, seed=seed)
        with progress_bar("rendering", quiet) as on_progress:
            result = build_shapes(out, config, workers=workers, overwrite=overwrite, command=command_line(), on_progress=on_progress)
    if not quiet:
        counts = ", ".join(f"{n:,} {split}" for split, n in result.counts.items())
        verb = {"complete": "already complete", "resume": "resumed and finished", "new": "built"}[result.state]
        stdout.print(f"{result.out}: {verb} ({counts}; {result.rendered:,} rendered, {result.skipped:,} kept)")
