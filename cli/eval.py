"""``vgrc eval`` and ``vgrc report``."""

from __future__ import annotations

import os

from pathlib import Path
from typing import Annotated, Optional

import typer

from vgrc.cli.console import stdout, user_errors
from vgrc.evaluators.errors import warn
from vgrc.cli.options import BatchSize, CacheDir, DecodeWorkers, Debug, Device, Limit, Overwrite, Precision, PreprocessMode, Pretrained, Quiet, Seed, Split
from vgrc.evaluators.index import INDEXES
from vgrc.evaluators.model_refs import MODEL_ALIASES
from vgrc.evaluators.registry import DEFAULT_TEMPLATES, FGW_SOLVERS, RERANKERS, STAGE1, TASKS

STAGE1_HELP = "First stage: " + "; ".join(f"{name}: {what}" for name, what in STAGE1.items()) + "."
RERANK_HELP = (
    f"Second stage over per-object embeddings: {', '.join(RERANKERS)}. hungarian / fgw match query objects with "
    "candidate objects; min / softmin (App. A) and steer-min / steer-softmin (App. J, steered objects) score query objects against the image."
)
MODEL_HELP = f"open_clip model: {', '.join(MODEL_ALIASES)}, an open_clip ARCH:TAG, hf-hub:ORG/NAME, or ARCH with --pretrained PATH."


def use_default_dataset(config, quiet: bool) -> None:
    """Without --data: Synthetic Shapes, built once under the cache folder; the model's
    weights are checked first, so a missing model costs no build."""
    if config.data is not None:
        return
    from vgrc.cli.console import progress_bar
    from vgrc.evaluators.encoders import check_weights
    from vgrc.generators.shapes import default_shapes_dataset

    with progress_bar("default dataset: Synthetic Shapes", quiet) as on_progress:
        config.data = str(default_shapes_dataset(
            config.cache_dir, on_progress=on_progress, before_build=lambda: check_weights(config.model, config.pretrained, config.seed)
        ))


def _launch_shards(shards: int, config) -> int:
    """Run this same command in ``shards`` processes under torch.distributed's elastic
    launcher, in this process (what ``torchrun --standalone`` runs), and return their exit
    code. A shard's error arrives as that shard's one line (written to a file the launcher
    reads, see :func:`~vgrc.cli.console.user_errors`), not as the launcher's traceback."""
    import logging
    import sys
    import tempfile
    import uuid

    from vgrc.cli.console import EXIT_INTERRUPTED, SHARD_ERRORS_ENV, report_interrupted, stderr

    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a == "--shards":
            skip = True
            continue
        if not a.startswith("--shards="):
            args.append(a)
    if "--data" not in args and "-d" not in args:  # the default dataset was resolved here: pass it on
        args += ["--data", str(config.data)]
    if "--out" not in args and "-o" not in args:
        args += ["--out", str(config.out)]
    from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs, SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    for name in list(logging.Logger.manager.loggerDict):  # the launcher's own chatter (worker start/stop notices)
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="vgrc-shards-") as errors:
        # the launcher's per-rank log folders go in this folder too, which vgrc made and
        # removes: left to itself the launcher makes a /tmp/torchelastic_* folder per run and
        # never removes it
        launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=shards, run_id=str(uuid.uuid4()), rdzv_backend="c10d",
                              rdzv_endpoint="localhost:0", max_restarts=0, logs_specs=DefaultLogsSpecs(log_dir=str(Path(errors) / "launcher")))
        saved = {k: os.environ.get(k) for k in (SHARD_ERRORS_ENV, "OMP_NUM_THREADS")}
        os.environ[SHARD_ERRORS_ENV] = errors
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # as torchrun: N processes share the cores
        try:
            elastic_launch(launch, entrypoint=sys.executable)("-m", "vgrc.cli.main", *args)
            return 0
        except (KeyboardInterrupt, SignalException):
            report_interrupted()
            return EXIT_INTERRUPTED
        except ChildFailedError as exc:
            rank, failure = exc.get_first_failure()
            said = sorted(Path(errors).glob("rank-*.txt"), key=lambda p: (p.name != f"rank-{rank}.txt", p.name))
            if said:  # the first failing shard's own line; the others were stopped
                stderr.print(said[0].read_text(encoding="utf-8").rstrip("\n"), markup=False)
            else:
                stderr.print(f"error: shard {rank} of {shards} stopped with exit code {failure.exitcode}; run with --shards 1 to see why", markup=False)
            return failure.exitcode if failure.exitcode > 0 else 1
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def eval_command(
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Dataset folder built by a vgrc builder [default: Synthetic Shapes, built once under the cache folder].", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder [default: results/DATASET-MODEL-STAGE1-RERANK].", show_default=False)] = None,
    model: Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)] = "clip",
    pretrained: Pretrained = None,
    stage1: Annotated[str, typer.Option("--stage1", help=STAGE1_HELP)] = "cosine",
    rerank: Annotated[str, typer.Option("--rerank", help=RERANK_HELP)] = "none",
    k: Annotated[int, typer.Option("--k", help="Shortlist size reranked by the second stage.")] = 50,
    fgw_alpha: Annotated[float, typer.Option("--fgw-alpha", help="FGW trade-off α in [0, 1]: 0 = object features only, 1 = structure only (Eq. 4).")] = 0.5,
    solver: Annotated[str, typer.Option("--solver", help="FGW solver: " + "; ".join(f"{n}: {w}" for n, w in FGW_SOLVERS.items()) + ".")] = "cg",
    epsilon: Annotated[float, typer.Option("--epsilon", help="Entropic regularisation of --solver sinkhorn.")] = 0.01,
    tau: Annotated[float, typer.Option("--tau", help="Temperature of the softmin rerankers.")] = 0.05,
    unmatched_cost: Annotated[Optional[float], typer.Option("--unmatched-cost", help="Hungarian: cost of a query object the candidate lacks (1 = an orthogonal pair) [default: the dataset's recommendation, else 1.0].", show_default=False)] = None,
    surplus_cost: Annotated[Optional[float], typer.Option("--surplus-cost", help="Hungarian: cost of a candidate object no query object matches [default: the dataset's recommendation (1.0 for whole-scene captions: shapes, CLEVR-HOPE), else 0.0].", show_default=False)] = None,
    split: Split = None,
    fit_split: Annotated[Optional[str], typer.Option("--fit-split", help="Split used to fit ridge/steering [default: a seeded hold-out].", show_default=False)] = None,
    fit_fraction: Annotated[float, typer.Option("--fit-fraction", help="--stage1 ridge / ridge+steer: share of the split held out to fit on (left out of their queries and gallery; other first stages evaluate the whole split).")] = 0.2,
    ridge_lambda: Annotated[float, typer.Option("--ridge-lambda", help="L2 penalty λ of the ridge mapper.")] = 1.0,
    steer: Annotated[Optional[list[str]], typer.Option("--steer", help="SOURCE:TARGET steering pair, e.g. pentagon:hexagon (repeatable) [default: derived from cosine confusions on the fit rows, colour held fixed (App. E)].", show_default=False)] = None,
    steer_alpha: Annotated[float, typer.Option("--steer-alpha", help="Steering strength α of ridge+steer, objects-steer-avg, steer-min/-softmin and --task steering.")] = 0.5,
    steer_top: Annotated[int, typer.Option("--steer-top", help="Confusion pairs derived when no --steer is given.")] = 3,
    template: Annotated[Optional[list[str]], typer.Option("--template", help=f"Prompt template for object phrases, with {{}} (repeatable) [default: {' | '.join(DEFAULT_TEMPLATES)}].", show_default=False)] = None,
    limit: Limit = None,
    seed: Seed = 0,
    device: Device = "cpu",
    batch_size: BatchSize = 64,
    decode_workers: DecodeWorkers = None,
    preprocess: PreprocessMode = "exact",
    index: Annotated[str, typer.Option("--index", help="Stage-1 search: " + "; ".join(f"{n}: {w}" for n, w in INDEXES.items()) + ".")] = "exact",
    nprobe: Annotated[int, typer.Option("--nprobe", help="--index ivf: inverted lists searched per query.")] = 32,
    ef_search: Annotated[int, typer.Option("--ef-search", help="--index hnsw: candidates kept per query while searching.")] = 128,
    precision: Precision = "fp32",
    cache_dir: CacheDir = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip missing or damaged images (recorded in run.json) instead of stopping.")] = False,
    task: Annotated[str, typer.Option("--task", help=f"{', '.join(TASKS)}: captions as queries; the dataset's steering.jsonl with --steer-alpha; or SugarCrepe's positive-vs-negative caption accuracy (with --rerank none, hungarian or fgw).")] = "retrieval",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the vgrc run already in --out (never anything else).")] = False,
    relevance: Annotated[str, typer.Option("--relevance", help="Graded relevance of nDCG@K and CAS@K: symbolic (from the annotations, App. H) or vlm (App. G's judges on the pairs of every reported top 10, cached in --cache-dir).")] = "symbolic",
    judge_model: Annotated[str, typer.Option("--judge-model", help="Qwen2.5-VL-Instruct judge of --relevance vlm: hub id or local folder (the paper's NAC verifier is the 32B).")] = "Qwen/Qwen2.5-VL-7B-Instruct",
    judge_batch_size: Annotated[int, typer.Option("--judge-batch-size", help="(image, prompt) pairs per judge forward pass.")] = 8,
    judge_mode: Annotated[str, typer.Option("--judge-mode", help="logits (read the answer field's next-token distribution) or json (the paper's generated JSON).")] = "logits",
    shards: Annotated[int, typer.Option("--shards", help="Processes on this machine (one per GPU with --device cuda) that share the encoding, the judging and the reranking, launched with torch.distributed (torchrun); same results as 1. Across machines, start vgrc eval under torchrun yourself (README).")] = 1,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Evaluate text-to-image retrieval: first stage, reranking, metrics on disk.

    Writes metrics.json / .csv / .md, per_query.parquet, run.json and recall_curve.png to
    the run folder. Embeddings are cached, so re-runs with other stages or rerankers
    encode nothing. Every option is checked before any model loads.

    Examples:

        vgrc eval --model clip --rerank fgw

        vgrc eval --data data/shapes --stage1 ridge --rerank hungarian --surplus-cost 1

        vgrc eval --model tiny-random --limit 60 --rerank fgw --out results/smoke

        vgrc eval --data data/vg --device cuda --precision bf16 --index ivf --shards 4 --rerank fgw
    """
    from vgrc.cli.console import phase_progress
    from vgrc.evaluators.pipeline import EvalConfig, run_eval  # numpy and friends, after --help

    with user_errors(debug):
        config = EvalConfig(
            data=None if data is None else str(data), out=None if out is None else str(out), model=model, pretrained=pretrained,
            stage1=stage1, rerank=rerank, k=k, fgw_alpha=fgw_alpha, solver=solver, epsilon=epsilon, tau=tau,
            unmatched_cost=unmatched_cost, surplus_cost=surplus_cost, split=split, fit_split=fit_split, fit_fraction=fit_fraction,
            ridge_lambda=ridge_lambda, steer=list(steer or []), steer_alpha=steer_alpha, steer_top=steer_top,
            templates=list(template or DEFAULT_TEMPLATES), limit=limit, seed=seed, device=device, batch_size=batch_size, decode_workers=decode_workers, preprocess=preprocess, index=index, nprobe=nprobe, ef_search=ef_search,
            precision=precision, cache_dir=None if cache_dir is None else str(cache_dir), skip_bad=skip_bad, task=task, overwrite=overwrite,
            relevance=relevance, judge_model=judge_model, judge_batch_size=judge_batch_size, judge_mode=judge_mode,
        )
        config.check_options()  # before building or loading anything
        for line in config.inert_options():
            warn(line)
        from vgrc.evaluators.sharding import check_shards

        check_shards(shards, config.device)
        use_default_dataset(config, quiet)
        config.check()
        if shards > 1 and "WORLD_SIZE" not in os.environ:
            raise typer.Exit(_launch_shards(shards, config))
        quiet = quiet or int(os.environ.get("RANK", 0)) > 0  # one set of progress bars
        with phase_progress(quiet) as on_progress:
            metrics = run_eval(config, on_progress=on_progress)
        from vgrc.evaluators.sharding import finish

        finish()  # under a launcher: every rank done, the process group torn down before exit
        if int(os.environ.get("RANK", 0)) > 0:
            return
    if not quiet:
        shown = ("t2i_R@1", "t2i_R@5", "t2i_R@10", "t2i_nDCG@10", f"t2i_shortlist_recall@{k}", "t2i_CAS@10", "stage1_t2i_CAS@10",
                 "itm_acc_add", "itm_acc_replace", "itm_acc_swap", "itm_acc_macro", "stage1_itm_acc_macro")
        stdout.print(f"{config.out}: " + "  ".join(f"{n}={metrics[n]:.4f}" for n in shown if n in metrics))


def report_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders written by vgrc eval (other paths, e.g. a previous table.csv, are skipped with a note).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown table to write (a .csv is written beside it); its folder must exist.", show_default=False)],
    paper: Annotated[Optional[int], typer.Option("--paper", help="Print the paper's Table N (1–7) with the matching runs beside it, cell by cell, with the difference; 8–10: the paper's dataset statistics.", show_default=False)] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Paired bootstrap resamples for 95% intervals of every metric difference between runs on the same queries (0 = off; e.g. 1000). Written to OUT.bootstrap.csv too.")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resampling.")] = 0,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Merge evaluation runs into one paper-style table (rows: run × Stage 1 × Stage 2).

    Examples:

        vgrc report results/* --out results/table.md

        vgrc report results/* --out results/table1-vs-paper.md --paper 1

        vgrc report results/shapes-* --out results/shapes.md --bootstrap 1000
    """
    from vgrc.cli.console import stderr
    from vgrc.evaluators.report import write_report

    with user_errors(debug):
        table, skipped = write_report(runs, out, overwrite=overwrite, paper=paper, bootstrap=bootstrap, seed=seed)
    for path, why in skipped:
        stderr.print(f"[yellow]note:[/yellow] skipped {path}: {why}")
    if not quiet:
        stdout.print(table.split("\n", 2)[2], markup=False)  # without the file's marker comment
