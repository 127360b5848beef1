"""``vgrc build-nac``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vgrc.cli.component_options import choices_help
from vgrc.cli.console import command_line, progress_bar, quiet_libraries, stdout, user_errors
from vgrc.cli.options import Debug, OutDir, Overwrite, Quiet, Seed


def build_nac_command(
    out: OutDir,
    model: Annotated[str, typer.Option("--model", help="FLUX pipeline: hub id or local diffusers folder.")] = "black-forest-labs/FLUX.1-dev",
    contrasts: Annotated[Optional[Path], typer.Option("--contrasts", help="Your own contrast YAML [default: the shipped file].", show_default=False)] = None,
    plausible: Annotated[Optional[Path], typer.Option("--plausible", help="Your own plausibility YAML (noun -> attributes) [default: shipped].", show_default=False)] = None,
    samples_per_contrast: Annotated[int, typer.Option("--samples-per-contrast", help="Pairs generated per noun contrast.")] = 10,
    steps: Annotated[int, typer.Option("--steps", help="Denoising steps.")] = 28,
    guidance: Annotated[float, typer.Option("--guidance", help="FLUX guidance scale.")] = 3.5,
    height: Annotated[int, typer.Option("--height", help="Image height (multiple of 16).")] = 1024,
    width: Annotated[int, typer.Option("--width", help="Image width (multiple of 16).")] = 1024,
    seed: Seed = 0,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Keep the first N pairs (smoke runs).", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write prompts.jsonl only.")] = False,
    cpu_offload: Annotated[bool, typer.Option("--cpu-offload", help="Offload model parts to the CPU between uses (needs a CUDA GPU).")] = False,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:N [default: cuda if available].", show_default=False)] = None,
    num_shards: Annotated[int, typer.Option("--num-shards", help="Split the pairs into this many shards (cluster job arrays).")] = 1,
    shard_index: Annotated[int, typer.Option("--shard-index", help="The shard this job generates.")] = 0,
    merge: Annotated[bool, typer.Option("--merge", help="Only verify and write the dataset (after every shard is done).")] = False,
    judge: Annotated[str, typer.Option("--judge", help=choices_help("judge", "Verifier"))] = "qwen2.5-vl",
    judge_model: Annotated[str, typer.Option("--judge-model", help="Judge checkpoint: hub id or local folder.")] = "Qwen/Qwen2.5-VL-7B-Instruct",
    min_confidence: Annotated[float, typer.Option("--min-confidence", help="P(Yes) for a detection to count.")] = 0.8,
    min_samples: Annotated[int, typer.Option("--min-samples", help="Verified images a noun–attribute pair needs to be kept.")] = 10,
    clipscore_model: Annotated[Optional[str], typer.Option("--clipscore-model", help="Optional CLIPScore prefilter with this open_clip model.", show_default=False)] = None,
    clipscore_min: Annotated[float, typer.Option("--clipscore-min", help="CLIPScore below which an image is not verified.")] = 0.2,
    overwrite: Overwrite = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the model libraries' own loading bars, logs and warnings.")] = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Generate FLUX noun–attribute contrast pairs and verify them with a VLM judge.

    Both images of a pair share the scene and the seed and differ only in the attribute.
    Resumable; split the work with --num-shards/--shard-index or `accelerate launch`,
    then run once more with --merge. --dry-run writes prompts.jsonl only.
    """
    from vgrc.generators.nac.generate import NACConfig, build_nac

    if not verbose:
        quiet_libraries()
    with user_errors(debug):
        config = NACConfig(
            model=model, contrasts=None if contrasts is None else str(contrasts), plausible=None if plausible is None else str(plausible),
            samples_per_contrast=samples_per_contrast, steps=steps, guidance=guidance, height=height, width=width, seed=seed, limit=limit,
            judge=judge, judge_model=judge_model, min_confidence=min_confidence, min_samples=min_samples,
            clipscore_model=clipscore_model, clipscore_min=clipscore_min,
        )
        with progress_bar("generating pairs", quiet) as on_progress:
            result = build_nac(
                out, config, dry_run=dry_run, num_shards=num_shards, shard_index=shard_index, merge=True if merge else None,
                cpu_offload=cpu_offload, device=device, overwrite=overwrite, command=command_line(), on_progress=on_progress,
            )
    if not quiet:
        stdout.print(f"{result.out}: {nac_summary(result, config, dry_run)}")


def nac_summary(result, config, dry_run: bool = False) -> str:
    """The one line build-nac ends with: what was generated, what was there, what the merge kept and, when it kept
    nothing, why and what to change."""
    if dry_run:
        return f"{result.pairs:,} pairs written to prompts.jsonl (dry run)"
    done = (f"already built and merged, nothing to do ({result.pairs:,} pairs)" if result.state == "complete"
            else f"{result.generated:,} pairs generated, {result.skipped:,} already there")
    if not result.merged:
        return done + " (not merged yet: run with --merge when every shard is done)"
    counts = result.counts
    line = f"{done}; {counts.get('retained', 0)} of {counts.get('contrasts', 0)} noun contrasts retained"
    if counts.get("contrasts") and not counts.get("retained"):
        line += (f" (none has --min-samples {config.min_samples} images per attribute judged at --min-confidence "
                 f"{config.min_confidence:g}: lower them, or generate more with --samples-per-contrast; a re-run re-merges "
                 "from the kept images without regenerating)")
    return line


def propose_nac_command(
    mit_states: Annotated[Path, typer.Option("--mit-states", help="MIT-States folder: adj_ants.csv and the 'adj noun' image folders.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Contrast YAML to write (review it, then pass it to build-nac --contrasts).", show_default=False)],
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Propose NAC contrasts from MIT-States antonyms and adjective–noun folders, filtered.

    Example:

        vgrc propose-nac --mit-states ~/data/mit-states --out candidates.yaml
    """
    from vgrc.evaluators.dataset import atomic_write_text
    from vgrc.evaluators.ownership import check_output_file
    from vgrc.generators.importers.mit_states import HEADER, contrasts_yaml, propose_contrasts

    with user_errors(debug):
        check_output_file(out, overwrite, lambda first: first == HEADER, "vgrc propose-nac")
        candidates, dropped = propose_contrasts(mit_states)
        atomic_write_text(out, contrasts_yaml(candidates, dropped))
    if not quiet:
        stdout.print(f"{out}: {len(candidates)} candidate contrasts over {sum(len(n) for _, _, n in candidates)} nouns; dropped: {dict(dropped) or 'nothing'}")
