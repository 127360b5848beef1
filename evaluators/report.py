"""``vgrc report``: merge evaluation runs into one paper-style table (Tables 1–4).

Rows are Stage 1 × Stage 2 (sorted in registry order), columns R@1/5/10 (in %) and
nDCG@1/5/10. Model and dataset columns are added when the runs differ in them. A CSV
with the unrounded values is written beside the Markdown table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vgrc.evaluators.dataset import atomic_write_text
from vgrc.evaluators.errors import DatasetFolderError, OutputError

__all__ = ["load_run", "report_table", "write_report"]

COLUMNS = ("t2i_R@1", "t2i_R@5", "t2i_R@10", "t2i_nDCG@1", "t2i_nDCG@5", "t2i_nDCG@10")
STAGE1_ORDER = ("cosine", "ridge", "ridge+steer", "objects-avg")
RERANK_ORDER = ("none", "hungarian", "fgw", "min", "softmin")


def load_run(run: str | Path) -> dict:
    """``metrics.json`` of a run folder, with its config."""
    path = Path(run) / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetFolderError(f"{run} is not a vgrc eval run (no metrics.json)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetFolderError(f"{path} cannot be read: {exc}") from exc
    if "config" not in metrics:
        raise DatasetFolderError(f"{path} has no config: was it written by vgrc eval?")
    return metrics


def _order(value: str, order: Sequence[str]) -> int:
    return order.index(value) if value in order else len(order)


def report_table(runs: Sequence[str | Path]) -> tuple[str, str]:
    """(markdown, csv) for the given run folders."""
    if not runs:
        raise DatasetFolderError("give at least one run folder")
    loaded = [load_run(r) for r in runs]
    loaded.sort(key=lambda m: (m["config"]["model"], m["config"]["data"], _order(m["config"]["stage1"], STAGE1_ORDER), _order(m["config"]["rerank"], RERANK_ORDER), m["config"].get("alpha", 0)))
    extra = [c for c in ("data", "model") if len({m["config"][c] for m in loaded}) > 1]
    head = [*(c.capitalize() for c in extra), "Stage 1", "Stage 2", "R@1", "R@5", "R@10", "nDCG@1", "nDCG@5", "nDCG@10"]
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    csv = [",".join([*extra, "stage1", "rerank", "alpha", "k", *COLUMNS])]
    for m in loaded:
        cfg = m["config"]
        stage2 = cfg["rerank"] if cfg["rerank"] != "fgw" else f"fgw (α={cfg['alpha']:g})"
        cells = [*(str(cfg[c]) for c in extra), cfg["stage1"], stage2]
        cells += [f"{100 * m[c]:.1f}" if c in m else "—" for c in COLUMNS[:3]]
        cells += [f"{m[c]:.3f}" if c in m else "—" for c in COLUMNS[3:]]
        md.append("| " + " | ".join(cells) + " |")
        csv.append(",".join([*(str(cfg[c]) for c in extra), cfg["stage1"], cfg["rerank"], str(cfg["alpha"]), str(cfg["k"]), *(repr(float(m[c])) if c in m else "" for c in COLUMNS)]))
    return "\n".join(md) + "\n", "\n".join(csv) + "\n"


def write_report(runs: Sequence[str | Path], out: str | Path) -> str:
    """Write ``out`` (Markdown) and ``out`` with suffix ``.csv``; return the Markdown."""
    md, csv = report_table(runs)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out.parent}: {exc.strerror or exc}") from exc
    atomic_write_text(out, md)
    atomic_write_text(out.with_suffix(".csv"), csv)
    return md
