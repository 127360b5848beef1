"""The one writer of run outputs: ``metrics.json`` / ``.csv`` / ``.md``, ``per_query.parquet``,
``run.json`` (with vgrc's run-folder marker) and the recall plot; the phase timer.

Every task returns a :class:`RunResult` and :func:`write_run` writes it; every analysis of
``vgrc diagnose`` writes through a :class:`DiagnosticOutput`; ``vgrc report`` through
:func:`write_report_files`. No other module writes a run's files."""

from __future__ import annotations

import json
import platform
import io
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vgrc.evaluators import __version__
from vgrc.evaluators.atomic import atomic_replace_with, atomic_write_bytes, atomic_write_text
from vgrc.evaluators.ownership import RUN_FILES, claim_run_folder, write_run_marker

__all__ = ["Timer", "RunResult", "write_run", "DiagnosticOutput", "write_report_files", "plot_recall", "run_summary", "write_metric_tables", "write_run_json", "write_per_query", "claim_eval_folder", "skipped_images_note"]


class Timer:
    """Seconds spent per named phase: ``with timer("rerank"): ...``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Span:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[name] = timer.seconds.get(name, 0.0) + time.perf_counter() - self.t0

        return _Span()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "vgrc": __version__}
    for pkg in ("torch", "open_clip_torch", "numpy", "numba", "pot", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def plot_recall(path: Path, stage1_rank: np.ndarray, final_rank: np.ndarray, k: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = np.arange(1, k + 1)
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    for ranks, label in ((stage1_rank, "stage 1"), (final_rank, "final")):
        ax.plot(ks, [np.mean((ranks >= 0) & (ranks < kk)) for kk in ks], label=label)
    ax.set(xlabel="K", ylabel="t2i R@K", title=title, ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def claim_eval_folder(out: Path, config) -> str:
    """Claim ``out`` for an eval run: ``run.json`` marks it unfinished before anything
    there changes (:func:`~vgrc.evaluators.ownership.claim_run_folder`)."""
    return claim_run_folder(out, config.overwrite, f"eval-{config.task}", RUN_FILES, config.record())


def write_per_query(out: Path, frame) -> None:
    """``per_query.parquet``, atomically."""
    atomic_replace_with(out / "per_query.parquet", lambda tmp: frame.to_parquet(tmp, index=False))


def write_run_json(out: Path, config, setup, data_info: dict, skipped: dict, diagnostics: dict, timer: Timer) -> None:
    """The final ``run.json``, written last: ``complete: true`` declares the run finished."""
    run = {
        "kind": f"eval-{config.task}",
        "complete": True,
        "files": sorted(RUN_FILES),
        "config": config.record(),
        "model": {"spec": setup.spec_record, "cache_key": setup.key, "cache_dir": str(setup.cache_root)},
        "data": data_info,
        "versions": _versions(),
        "git_commit": _git_commit(),
        "seed": config.seed,
        "encode": {name: asdict(s) for name, s in setup.stats.items()},
        "skipped": skipped,
        "diagnostics": diagnostics,
        "timings_seconds": timer.seconds,
    }
    write_run_marker(out, run)


def _fmt(v: float) -> str:
    return f"{v:.4f}" if isinstance(v, float) and not float(v).is_integer() else f"{v:g}"


def run_summary(config) -> dict:
    """The config fields a report needs to tell runs apart (stored in metrics.json). A
    component from another package adds its own options and package under ``plugins``
    (``vgrc report`` shows them)."""
    summary = {
        "data": config.data, "model": config.model, "stage1": config.stage1, "rerank": config.rerank, "k": config.k,
        "fgw_alpha": config.fgw_alpha, "solver": config.solver, "unmatched_cost": config.unmatched_cost,
        "surplus_cost": config.surplus_cost, "steer_alpha": config.steer_alpha, "ridge_lambda": config.ridge_lambda,
        "task": config.task, "seed": config.seed,
        **({"preprocess": config.preprocess} if getattr(config, "preprocess", "exact") != "exact" else {}),
        **({"query_objects": config.query_objects} if getattr(config, "query_objects", "annotations") != "annotations" else {}),
        **({"candidate_objects": config.candidate_objects} if getattr(config, "candidate_objects", "annotations") != "annotations" else {}),
        **({"models": config.models, "weights": config.weights} if config.stage1 == "ensemble" else {}),
    }
    record = config.record() if hasattr(config, "record") else {}
    plugins = {kind: entry for kind, entry in record.items() if isinstance(entry, dict) and entry.get("package") not in (None, "vgrc") and "name" in entry}
    if plugins:
        summary["plugins"] = plugins
    return summary


def skipped_images_note(skipped) -> str:
    """The sentence that names the images ``--skip-bad`` left out (terminal and metrics.md)."""
    first = ", ".join(Path(p).name for p in skipped[:3])
    return f"--skip-bad: {len(skipped)} image(s) could not be read and were left out of the run (first: {first}{', …' if len(skipped) > 3 else ''})"


def write_metric_tables(out: Path, config, metrics: dict, title: str, notes: list[str], lead: dict[str, str], dataset: str | None) -> None:
    """metrics.json (flat metrics + ``config`` + ``notes``), metrics.csv and metrics.md."""
    summary = {**run_summary(config), "dataset": dataset}
    if "preprocess" in summary:  # every task's outputs say so
        how = {"fast": "torchvision", "device": "resized on the model's device, JPEGs decoded there on CUDA"}.get(summary["preprocess"], summary["preprocess"])
        notes = [*notes, f"images preprocessed with --preprocess {summary['preprocess']} ({how}), not open_clip's own PIL steps: "
                 "pixels within a few levels of 255, embeddings not bit-identical (docs/FIDELITY.md rows 45-46)"]
    atomic_write_text(out / "metrics.json", json.dumps({**metrics, "config": summary, "notes": notes}, indent=2) + "\n")
    names = list(metrics)
    atomic_write_text(out / "metrics.csv", ",".join([*lead, *names]) + "\n" + ",".join([*lead.values(), *(repr(float(metrics[n])) for n in names)]) + "\n")
    rows = "\n".join(f"| {n} | {_fmt(metrics[n])} |" for n in names)
    bullets = "".join(f"- {n}\n" for n in notes)
    atomic_write_text(out / "metrics.md", f"# {title}\n\n| metric | value |\n|---|---|\n{rows}\n\n{bullets}")


@dataclass
class RunResult:
    """What a task hands to :func:`write_run`: everything a run folder holds.

    ``lead`` are the leading columns of ``metrics.csv``; ``recall`` = (stage-1 ranks,
    final ranks, K, title) draws ``recall_curve.png``; ``skipped`` and ``diagnostics`` go
    into ``run.json`` (``notes`` too)."""

    metrics: dict
    per_query: Any
    title: str
    notes: list[str]
    lead: dict[str, str]
    dataset: str | None
    data_info: dict
    setup: Any
    skipped: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    recall: tuple | None = None
    #: ``eval --save-plans``: the saved transport plans, written to ``plans.parquet``
    plans: Any = None


def write_run(out: Path, config, result: RunResult, timer: Timer) -> dict:
    """Write ``result`` into ``out`` (claimed first: ``run.json`` marks it unfinished, and
    the final ``run.json``, written last, says ``complete``); return its metrics. Under a
    launcher only rank 0 writes."""
    from vgrc.evaluators import sharding

    if not sharding.is_main():
        return result.metrics
    with timer("write"):
        claim_eval_folder(out, config)
        write_metric_tables(out, config, result.metrics, result.title, result.notes, result.lead, result.dataset)
        write_per_query(out, result.per_query)
        if result.plans is not None:
            atomic_replace_with(out / "plans.parquet", lambda tmp: result.plans.to_parquet(tmp, index=False))
        if result.recall is not None:
            plot_recall(out / "recall_curve.png", *result.recall)
        write_run_json(out, config, result.setup, result.data_info, result.skipped, {**result.diagnostics, "notes": result.notes}, timer)
    return result.metrics


class DiagnosticOutput:
    """The output folder of one analysis: claimed once (``--overwrite`` rules of ``vgrc
    eval``), every file written atomically, ``run.json`` first and last."""

    def __init__(self, out: str | Path, kind: str, files: Sequence[str], config, overwrite: bool):
        self.out = Path(out)
        self.kind = kind
        self.files = list(files)
        self.config = config
        self.t0 = time.perf_counter()
        claim_run_folder(self.out, overwrite, f"diagnose-{kind}", self.files, self._config())

    def _config(self) -> dict:
        return self.config.record() if hasattr(self.config, "record") else dict(self.config)

    def _record(self, extra: dict) -> None:
        write_run_marker(self.out, {"kind": f"diagnose-{self.kind}", "files": sorted({*self.files, "run.json"}), "config": self._config(), **extra})

    def text(self, name: str, content: str) -> Path:
        self._check(name)
        atomic_write_text(self.out / name, content if content.endswith("\n") else content + "\n")
        return self.out / name

    def csv(self, name: str, head: Sequence[str], rows: Sequence[Sequence]) -> Path:
        def cell(v):
            if isinstance(v, (float, np.floating)):
                return repr(float(v))
            s = str(v)
            return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n') else s

        return self.text(name, "\n".join([",".join(head), *(",".join(cell(v) for v in row) for row in rows)]))

    def figure(self, name: str, fig) -> Path:
        import matplotlib.pyplot as plt

        self._check(name)
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png")
        plt.close(fig)
        atomic_write_bytes(self.out / name, buf.getvalue())
        return self.out / name

    def finish(self, summary: dict, prep=None, *, started: float | None = None, **extra) -> None:
        """The final ``run.json``; ``seconds`` counts from ``started`` (else the preparation's
        start); ``prep`` (a diagnostics ``Prepared``) adds its data and encode records."""
        t0 = started if started is not None else (prep.t0 if prep is not None else self.t0)
        record = {"complete": True, "summary": summary, "seconds": time.perf_counter() - t0, **extra}
        if prep is not None:
            record["data"] = prep.info
            record["encode"] = {n: asdict(s) for n, s in prep.setup.stats.items()}
        self._record(record)

    def _check(self, name: str) -> None:
        if name not in self.files:  # a programming error, not a user error
            raise RuntimeError(f"{name} is not among the files diagnose-{self.kind} declares")


def write_report_files(out: Path, markdown: str, csv: str, bootstrap: tuple[Path, str] | None = None) -> None:
    """``vgrc report``'s table (Markdown and CSV beside it) and its bootstrap CSV."""
    atomic_write_text(out, markdown)
    atomic_write_text(out.with_suffix(".csv"), csv)
    if bootstrap is not None:
        atomic_write_text(*bootstrap)
