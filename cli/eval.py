"""``vgrc eval`` and ``vgrc report``."""

from __future__ import annotations

import os

from pathlib import Path
from typing import Annotated, Optional

import typer

from vgrc.cli.console import stdout, user_errors
from vgrc.evaluators.errors import warn
from vgrc.cli.component_options import command_signature
from vgrc.cli.options import Debug, Overwrite, Quiet
from vgrc.evaluators.registry import DEFAULT_TEMPLATES


def use_default_dataset(config, quiet: bool) -> None:
    """Without --data: Synthetic Shapes, built once under the cache folder; the model's
    weights are checked first, so a missing model costs no build."""
    if config.data is not None:
        return
    from vgrc.cli.console import progress_bar
    from vgrc.evaluators.encoders.models import check_weights
    from vgrc.generators.shapes.build import default_shapes_dataset

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


def eval_command(**options) -> None:
    """Evaluate text-to-image retrieval: first stage, reranking, metrics on disk.

    Writes metrics.json / .csv / .md, per_query.parquet, run.json and recall_curve.png to
    the run folder. Embeddings are cached, so re-runs with other stages or rerankers
    encode nothing. Every option is checked before any model loads. The options of each
    stage 1, reranker, index, relevance source and task are declared on that component
    (plug-ins included: README, "Extending vgrc").

    Examples:

        vgrc eval --model clip --rerank fgw

        vgrc eval --data data/shapes --stage1 ridge --rerank hungarian --surplus-cost 1

        vgrc eval --model tiny-random --limit 60 --rerank fgw --out results/smoke

        vgrc eval --data data/vg --device cuda --precision bf16 --index ivf --shards 4 --rerank fgw
    """
    from vgrc.cli.console import phase_progress
    from vgrc.evaluators.pipeline import EvalConfig, run_eval  # numpy and friends, after --help

    quiet, debug, shards = options.pop("quiet"), options.pop("debug"), options.pop("shards")
    with user_errors(debug):
        for name in ("data", "out", "cache_dir"):
            options[name] = None if options[name] is None else str(options[name])
        options["templates"] = list(options.pop("template") or DEFAULT_TEMPLATES)
        options["steer"] = list(options.get("steer") or [])
        config = EvalConfig(**options)
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
        shown = ("t2i_R@1", "t2i_R@5", "t2i_R@10", "t2i_nDCG@10", f"t2i_shortlist_recall@{config.k}", "t2i_CAS@10", "stage1_t2i_CAS@10",
                 "itm_acc_add", "itm_acc_replace", "itm_acc_swap", "itm_acc_macro", "stage1_itm_acc_macro")
        stdout.print(f"{config.out}: " + "  ".join(f"{n}={metrics[n]:.4f}" for n in shown if n in metrics))


eval_command.__signature__ = command_signature()


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
