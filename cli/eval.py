"""``vgrc eval`` and ``vgrc report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vgrc.cli.console import stdout, user_errors
from vgrc.cli.options import Debug, Limit, OutDir, Quiet, Seed

STAGE1_HELP = "First stage: cosine, ridge, ridge+steer, objects-avg."
RERANK_HELP = "Second stage over per-object embeddings: none, hungarian, fgw, min, softmin."


def eval_command(
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder (built by a vgrc builder).", show_default=False)],
    out: OutDir,
    model: Annotated[str, typer.Option("--model", "-m", help="clip, clip-l, siglip, siglip2, tiny-random, an open_clip ARCH:TAG, or hf-hub:ORG/NAME.")] = "clip",
    pretrained: Annotated[Optional[str], typer.Option("--pretrained", help="Local checkpoint file for --model ARCH.", show_default=False)] = None,
    stage1: Annotated[str, typer.Option("--stage1", help=STAGE1_HELP)] = "cosine",
    rerank: Annotated[str, typer.Option("--rerank", help=RERANK_HELP)] = "none",
    k: Annotated[int, typer.Option("--k", help="Shortlist size reranked by the second stage.")] = 50,
    alpha: Annotated[float, typer.Option("--alpha", help="FGW trade-off: 0 = features only, 1 = structure only.")] = 0.5,
    solver: Annotated[str, typer.Option("--solver", help="FGW solver: cg (POT-exact), global (exact minimum, small sets), pot.")] = "cg",
    tau: Annotated[float, typer.Option("--tau", help="Temperature of --rerank softmin.")] = 0.05,
    split: Annotated[Optional[str], typer.Option("--split", help="Split to evaluate [default: the dataset's main split].", show_default=False)] = None,
    fit_split: Annotated[Optional[str], typer.Option("--fit-split", help="Split used to fit ridge/steering [default: a seeded hold-out].", show_default=False)] = None,
    fit_fraction: Annotated[float, typer.Option("--fit-fraction", help="Share of the split held out for fitting (removed from queries and gallery).")] = 0.2,
    ridge_alpha: Annotated[float, typer.Option("--ridge-alpha", help="L2 penalty of the ridge mapper.")] = 1.0,
    steer: Annotated[Optional[list[str]], typer.Option("--steer", help="SOURCE:TARGET steering pair, e.g. pentagon:hexagon (repeatable) [default: derived from fit-split confusions].", show_default=False)] = None,
    steer_alpha: Annotated[float, typer.Option("--steer-alpha", help="Steering strength.")] = 0.5,
    steer_top: Annotated[int, typer.Option("--steer-top", help="Confusion pairs derived when no --steer is given.")] = 3,
    template: Annotated[Optional[list[str]], typer.Option("--template", help="Prompt template for object phrases, with {} (repeatable) [default: 3 standard templates].", show_default=False)] = None,
    limit: Limit = None,
    seed: Seed = 0,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N.")] = "cpu",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images or texts per forward pass.")] = 64,
    precision: Annotated[str, typer.Option("--precision", help="fp32, fp16 or bf16.")] = "fp32",
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Embedding cache [default: ~/.cache/vgrc].", show_default=False)] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip missing or damaged images (recorded in run.json) instead of stopping.")] = False,
    task: Annotated[str, typer.Option("--task", help="retrieval (captions as queries) or steering (the dataset's steering.jsonl, with --steer-alpha).")] = "retrieval",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Evaluate text-to-image retrieval on a dataset: first stage, reranking, metrics on disk.

    Writes metrics.json / .csv / .md, per_query.parquet, run.json and recall_curve.png
    to --out. Embeddings are cached, so re-runs with other stages or rerankers encode
    nothing.
    """
    from vgrc.cli.console import phase_progress
    from vgrc.evaluators.pipeline import DEFAULT_TEMPLATES, EvalConfig, run_eval

    with user_errors(debug):
        config = EvalConfig(
            data=str(data), out=str(out), model=model, pretrained=pretrained, stage1=stage1, rerank=rerank, k=k, alpha=alpha,
            solver=solver, tau=tau, split=split, fit_split=fit_split, fit_fraction=fit_fraction, ridge_alpha=ridge_alpha,
            steer=list(steer or []), steer_alpha=steer_alpha, steer_top=steer_top, templates=list(template or DEFAULT_TEMPLATES),
            limit=limit, seed=seed, device=device, batch_size=batch_size, precision=precision,
            cache_dir=None if cache_dir is None else str(cache_dir), skip_bad=skip_bad, task=task,
        )
        config.check()
        with phase_progress(quiet) as on_progress:
            metrics = run_eval(config, on_progress=on_progress)
    if not quiet:
        shown = ("t2i_R@1", "t2i_R@5", "t2i_R@10", "t2i_nDCG@10", f"t2i_shortlist_recall@{min(k, int(metrics['n_queries']))}", "t2i_CAS@10", "stage1_t2i_CAS@10")
        stdout.print(f"{out}: " + "  ".join(f"{n}={metrics[n]:.4f}" for n in shown if n in metrics))


def report_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders written by vgrc eval.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown table to write (a .csv is written beside it).", show_default=False)],
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Merge evaluation runs into one paper-style table (rows: Stage 1 × Stage 2)."""
    from vgrc.evaluators.report import write_report

    with user_errors(debug):
        table = write_report(runs, out)
    if not quiet:
        stdout.print(table)
