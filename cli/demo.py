"""``vgrc demo``: offline inputs for trying build-vg and build-nac."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vgrc.cli.console import progress_bar, quiet_libraries, stdout, user_errors
from vgrc.cli.options import Debug, Quiet


def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo inputs (new, empty, or an earlier demo folder).", show_default=False)],
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Write offline demo inputs: a tiny Visual Genome folder and tiny random FLUX, Qwen2.5-VL and LLM checkpoints.

    Everything `build-vg` and `build-nac` need, with no download and no GPU (random
    weights: the numbers mean nothing; the commands, files and checks are the real ones).

    Example:

        vgrc demo --out demo
        vgrc build-vg --vg-dir demo/visual_genome --out demo/vg --min-images 9
        vgrc build-nac --out demo/nac --model demo/tiny-flux --judge-model demo/tiny-qwen --limit 4 --samples-per-contrast 2 --steps 2 --height 32 --width 32 --min-samples 1 --min-confidence 0
    """
    from vgrc.generators.demo import check_demo_folder, write_demo

    quiet_libraries()
    with user_errors(debug):
        check_demo_folder(out)
        with progress_bar("demo inputs", quiet) as on_progress:
            made = write_demo(out, on_progress=on_progress)
    if not quiet:
        stdout.print(f"{out}: " + ", ".join(f"{name}/" for name in made) + " (random weights: try the commands, not the numbers)")
