"""``vgrc build-copies``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vgrc.cli.console import command_line, progress_bar, stdout, user_errors
from vgrc.cli.options import Debug, Limit, OutDir, Overwrite, Quiet, Seed


def build_copies_command(
    src: Annotated[Path, typer.Option("--src", help="An image folder (searched recursively) or a vgrc dataset folder (its main split).", show_default=False)],
    out: OutDir,
    copies: Annotated[int, typer.Option("--copies", help="Transformed copies per source image.")] = 3,
    perspective: Annotated[float, typer.Option("--perspective", help="Largest corner move of the perspective jitter, as a share of the side (0–0.3).")] = 0.08,
    scale_min: Annotated[float, typer.Option("--scale-min", help="Smallest scale (0.1–1; the largest is 1).")] = 0.6,
    rotate: Annotated[float, typer.Option("--rotate", help="Largest rotation in degrees, either way (0–180).")] = 25.0,
    shift: Annotated[float, typer.Option("--shift", help="Largest shift, as a share of the side (0–0.5).")] = 0.1,
    jitter: Annotated[float, typer.Option("--jitter", help="Brightness, contrast and saturation factors in [1 − j, 1 + j] (0–0.9).")] = 0.3,
    jpeg_min: Annotated[int, typer.Option("--jpeg-min", help="Lowest JPEG quality (1–95; the highest is 95).")] = 40,
    limit: Limit = None,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Build a near-duplicate retrieval set with exact ground truth from any images.

    Every source image gets --copies copies, each warped by a random homography
    (perspective, scale, rotation, shift), colour-jittered and JPEG re-encoded; the
    transform is recorded in each row. Split `copies` holds the queries, `originals` the
    gallery (referenced where the images are). Interrupt it at any time: the same command
    resumes, keeping the finished copies.

    Examples:

        vgrc build-copies --src data/shapes --out data/shapes-copies --copies 3

        vgrc build-copies --src ~/photos --out data/photo-copies --limit 500
    """
    from vgrc.generators.copies.build import CopiesConfig, build_copies

    with user_errors(debug):
        config = CopiesConfig(src=str(src), copies=copies, perspective=perspective, scale_min=scale_min, rotate=rotate, shift=shift, jitter=jitter,
                              jpeg_min=jpeg_min, limit=limit, seed=seed)
        with progress_bar("copying", quiet) as on_progress:
            result = build_copies(out, config, overwrite=overwrite, command=command_line(), on_progress=on_progress)
    if not quiet:
        verb = {"complete": "already complete", "resume": "resumed and finished", "new": "built"}[result.state]
        c = result.counts
        stdout.print(f"{result.out}: {verb} ({c.get('copies', 0):,} copies of {c.get('originals', 0):,} images; {result.written:,} written, "
                     f"{result.kept:,} kept)")
