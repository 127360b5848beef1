"""``vgrc build-vg``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vgrc.cli.console import command_line, progress_bar, stdout, user_errors
from vgrc.cli.options import Debug, OutDir, Overwrite, Quiet


def build_vg_command(
    vg_dir: Annotated[Path, typer.Option("--vg-dir", help="Visual Genome folder: attributes.json (required), image_data.json (optional).", show_default=False)],
    out: OutDir,
    image_root: Annotated[Optional[Path], typer.Option("--image-root", help="Folder holding VG_100K/ and VG_100K_2/ [default: --vg-dir].", show_default=False)] = None,
    contrasts: Annotated[Optional[Path], typer.Option("--contrasts", help="Your own contrast YAML (category, a, b per entry) [default: the shipped 80 pairs].", show_default=False)] = None,
    min_images: Annotated[int, typer.Option("--min-images", help="Distinct images per pole for a noun to qualify for a pair.")] = 10,
    query_template: Annotated[str, typer.Option("--query-template", help="Steering query with {attribute} and {noun}.")] = "a photo of a {attribute} {noun}",
    check_images: Annotated[bool, typer.Option("--check-images", help="Check that every image exists on disk; count the missing ones.")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Keep the first N images (smoke runs).", show_default=False)] = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Build Visual Genome attribute-contrast splits with synonym-aware steering queries.

    Streams attributes.json, counts every dropped or repaired record, finds the nouns
    that qualify for each of the contrastive pairs, and writes images/metadata.jsonl,
    steering.jsonl, stats.csv / stats.md, the dataset card and the manifest.
    """
    from vgrc.generators.vg.build import VGConfig, build_vg

    with user_errors(debug):
        config = VGConfig(
            vg_dir=str(vg_dir), image_root=None if image_root is None else str(image_root),
            contrasts=None if contrasts is None else str(contrasts), min_images=min_images,
            query_template=query_template, check_images=check_images, limit=limit,
        )
        with progress_bar("reading attributes.json", quiet) as on_progress:
            result = build_vg(out, config, overwrite=overwrite, command=command_line(), on_progress=on_progress)
    if not quiet:
        c = result.counts
        stdout.print(
            f"{result.out}: {c['images']:,} images, {c['attribute_mentions']:,} attribute mentions "
            f"({c['unique_attribute_strings']:,} unique); {result.pairs_grounded} of {result.pairs_total} pairs grounded; "
            f"{c['steering_rows']:,} steering rows; {sum(result.repairs.values()):,} records repaired or dropped (see stats.md)"
        )
