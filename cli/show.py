"""``vgrc show``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vgrc.cli.console import phase_progress, stderr, stdout, user_errors
from vgrc.cli.options import Debug, Overwrite, Quiet


def show_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders written by vgrc eval (--task retrieval, or i2i: image queries); several runs must be on the same queries.",
                                               show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Site folder to write (new or empty, or a site vgrc show wrote; never inside a run).",
                                      show_default=False)],
    top: Annotated[int, typer.Option("--top", help="Thumbnails per list (1–10).")] = 5,
    page_size: Annotated[int, typer.Option("--page-size", help="Query rows per page.")] = 50,
    thumb_size: Annotated[int, typer.Option("--thumb-size", help="Longest side of a thumbnail, in pixels.")] = 96,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Processes making thumbnails [default: the CPU count].", show_default=False)] = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Write a static site to look at runs: top-k before and after reranking, and which object went where.

    One row per query (caption and objects, or the query image; target; the top-k
    thumbnails of stage 1 and of each run's final ranking, relevant images framed,
    graded where the annotations grade them); filters improved / degraded /
    unchanged, category and text; sort by rank change. For a Hungarian / FGW run saved
    with `vgrc eval --save-plans N`, a query's detail view draws each transport plan
    (mass as line width) with its costs, and region candidates' boxes on their picture.
    Open OUT/index.html from disk or any static host.

    Examples:

        vgrc show results/shapes-clip-cosine-fgw --out results/site

        vgrc eval --data data/shapes --rerank fgw --save-plans 200 --out results/fgw

        vgrc show results/fgw results/shapes-clip-cosine-hungarian --out results/site-compare --overwrite
    """
    from vgrc.generators.show.site import ShowConfig, build_site, check_show

    with user_errors(debug):
        config = ShowConfig(runs=[str(r) for r in runs], out=str(out), top=top, page_size=page_size, thumb_size=thumb_size, workers=workers,
                            overwrite=overwrite)
        check_show(config)  # one line for a bad input, before anything is read in bulk or written
        with phase_progress(quiet) as on_progress:
            result = build_site(config, on_progress=on_progress)
    for line in result.unreadable[:3]:
        stderr.print(f"[yellow]note:[/yellow] an image could not be read, its tile is blank: {line}", markup=True, highlight=False)
    if not quiet:
        stdout.print(f"{result.out / 'index.html'}: {result.n_queries:,} queries, {result.n_images:,} images "
                     f"({result.thumbs_made:,} thumbnails made, the rest kept)", markup=False)
