"""``vgrc diagnose``: the paper's analyses (issue 12), one subcommand each, with the same
model / cache / --limit options as ``vgrc eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vgrc.cli.console import phase_progress, stdout, user_errors
from vgrc.cli.eval import use_default_dataset
from vgrc.cli.options import BatchSize, CacheDir, Debug, Device, Limit, Overwrite, Precision, Pretrained, Quiet, Seed, Split
from vgrc.evaluators.model_refs import MODEL_ALIASES

diagnose_app = typer.Typer(name="diagnose", help="The paper's analyses: tables, plots and Markdown in an output folder.", no_args_is_help=True)


@diagnose_app.command("substitution")
def substitution_command(
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Dataset folder [default: Synthetic Shapes, built once under the cache folder].", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder [default: results/diagnose-substitution-DATASET-MODEL].", show_default=False)] = None,
    model: Annotated[str, typer.Option("--model", "-m", help=f"open_clip model: {', '.join(MODEL_ALIASES)}, ARCH:TAG, hf-hub:ORG/NAME.")] = "clip",
    pretrained: Pretrained = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Retrieved positions counted per query (1 = the top-1 confusions of App. E).")] = 1,
    split: Split = None,
    limit: Limit = None,
    seed: Seed = 0,
    device: Device = "cpu",
    batch_size: BatchSize = 64,
    precision: Precision = "fp32",
    cache_dir: CacheDir = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """App. E's shape substitution matrix: what the wrong top-K images show instead, colour held fixed.

    Example:

        vgrc diagnose substitution --model clip --top-k 1
    """
    from vgrc.evaluators.diagnostics import get_diagnostic
    from vgrc.evaluators.pipeline import EvalConfig

    with user_errors(debug):
        config = EvalConfig(data=None if data is None else str(data), out=None if out is None else str(out), model=model, pretrained=pretrained,
                            split=split, limit=limit, seed=seed, device=device, batch_size=batch_size, precision=precision,
                            cache_dir=None if cache_dir is None else str(cache_dir), fit_fraction=0.0, overwrite=overwrite)
        config.check_options()
        use_default_dataset(config, quiet)
        if config.out is None:
            from vgrc.evaluators.dataset import read_manifest

            name = "".join(c if c.isalnum() or c in "-_." else "-" for c in config.model)
            config.out = str(Path("results") / f"diagnose-substitution-{read_manifest(config.data).get('dataset')}-{name}")
        config.check()
        with phase_progress(quiet) as on_progress:
            summary = get_diagnostic("substitution")(config, top_k=top_k, progress=on_progress)
    if not quiet:
        top = ", ".join(f"{c['query']}→{c['retrieved']} {c['count']}" for c in summary["top_confusions"][:3]) or "none"
        stdout.print(f"{config.out}: {summary['substitutions']:,} substitutions in {summary['queries']:,} queries' top-{top_k}; top: {top}")
