"""``vgrc report``: merge evaluation runs into one paper-style table (Tables 1–4).

Rows are runs, sorted by dataset, model, Stage 1 and Stage 2 (registry order); every row
names its run folder, model and dataset, so two runs never give indistinguishable rows.
Columns R@1/5/10 (in %) and nDCG@1/5/10, then the reranker's settings. Paths that are not
run folders (say, the table.csv of a previous report caught by ``results/*``) are
skipped and listed. A CSV with the unrounded values is written beside the Markdown.

The table says where each run's per-object sets came from and how relevance was graded
(the run's notes), below the table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vgrc.evaluators.dataset import atomic_write_text
from vgrc.evaluators.errors import DatasetFolderError, OutputError
from vgrc.evaluators.ownership import check_output_file

__all__ = ["load_run", "report_table", "write_report", "REPORT_MARK"]

COLUMNS = ("t2i_R@1", "t2i_R@5", "t2i_R@10", "t2i_nDCG@1", "t2i_nDCG@5", "t2i_nDCG@10")
STAGE1_ORDER = ("cosine", "ridge", "ridge+steer", "objects-avg", "objects-steer-avg")
RERANK_ORDER = ("none", "hungarian", "fgw", "min", "softmin", "steer-min", "steer-softmin")
#: first line of every Markdown table vgrc report writes: what it may replace with --overwrite
REPORT_MARK = "<!-- written by vgrc report -->"
CSV_HEADER = ",".join(["run", "dataset", "model", "stage1", "rerank", "settings", *COLUMNS])


def load_run(run: str | Path) -> dict:
    """``metrics.json`` of a run folder, with its config."""
    path = Path(run) / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetFolderError(f"{run} is not a vgrc eval run (no metrics.json)") from None
    except (OSError, ValueError) as exc:
        raise DatasetFolderError(f"{path} cannot be read: {exc}") from exc
    if not isinstance(metrics, dict) or not isinstance(metrics.get("config"), dict):
        raise DatasetFolderError(f"{path} has no config: was it written by vgrc eval?")
    return metrics


def _order(value: str, order: Sequence[str]) -> int:
    return order.index(value) if value in order else len(order)


def _settings(cfg: dict) -> str:
    rerank = cfg.get("rerank")
    if rerank == "fgw":
        return f"fgw_alpha={cfg.get('fgw_alpha', cfg.get('alpha'))} solver={cfg.get('solver')} k={cfg.get('k')}"
    if rerank == "hungarian":
        return f"unmatched={cfg.get('unmatched_cost')} surplus={cfg.get('surplus_cost')} k={cfg.get('k')}"
    if cfg.get("task") == "steering":
        return f"steer_alpha={cfg.get('steer_alpha')}"
    return f"k={cfg.get('k')}"


def report_table(runs: Sequence[str | Path]) -> tuple[str, str, list[tuple[str, str]]]:
    """(markdown, csv, skipped) for the given paths; ``skipped`` = (path, reason) for the
    paths that are not run folders."""
    loaded, skipped = [], []
    for r in runs:
        if not Path(r).is_dir():
            skipped.append((str(r), "not a folder"))
            continue
        try:
            loaded.append((Path(r), load_run(r)))
        except DatasetFolderError as exc:
            skipped.append((str(r), str(exc)))
    if not loaded:
        raise DatasetFolderError(f"none of the {len(runs)} path(s) is a vgrc eval run folder (first: {runs[0] if runs else 'none given'})")

    def key(item):
        path, m = item
        c = m["config"]
        return (str(c.get("data")), str(c.get("model")), _order(c.get("stage1", ""), STAGE1_ORDER), _order(c.get("rerank", ""), RERANK_ORDER), path.name)

    loaded.sort(key=key)
    head = ["Run", "Dataset", "Model", "Stage 1", "Stage 2", "R@1", "R@5", "R@10", "nDCG@1", "nDCG@5", "nDCG@10", "Settings"]
    md = [REPORT_MARK, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    csv = [CSV_HEADER]
    notes: dict[str, list[str]] = {}
    for path, m in loaded:
        cfg = m["config"]
        dataset = str(cfg.get("dataset") or Path(str(cfg.get("data"))).name)
        stage1 = cfg.get("stage1") if cfg.get("task", "retrieval") == "retrieval" else "steering"
        cells = [path.name, dataset, str(cfg.get("model")), str(stage1), str(cfg.get("rerank"))]
        cells += [f"{100 * m[c]:.1f}" if c in m else "—" for c in COLUMNS[:3]]
        cells += [f"{m[c]:.3f}" if c in m else "—" for c in COLUMNS[3:]]
        cells.append(_settings(cfg))
        md.append("| " + " | ".join(cells) + " |")
        csv.append(",".join([path.name, dataset, str(cfg.get("model")), str(stage1), str(cfg.get("rerank")), _settings(cfg),
                             *(repr(float(m[c])) if c in m else "" for c in COLUMNS)]))
        for note in m.get("notes", []):
            notes.setdefault(note, []).append(path.name)
    if notes:
        md.append("")
        md += [f"- {note} ({', '.join(names)})" for note, names in notes.items()]
    return "\n".join(md) + "\n", "\n".join(csv) + "\n", skipped


def write_report(runs: Sequence[str | Path], out: str | Path, *, overwrite: bool = False) -> tuple[str, list[tuple[str, str]]]:
    """Write ``out`` (Markdown) and ``out`` with suffix ``.csv``; return the Markdown and
    the skipped paths. Checks everything before writing anything: the folder must exist
    (no parents are created), and only an earlier vgrc report is replaced, with
    ``overwrite``."""
    out = Path(out)
    if out.suffix.lower() == ".csv":
        raise OutputError(f"--out {out}: give the Markdown file (e.g. table.md); the .csv is written beside it")
    csv_path = out.with_suffix(".csv")
    check_output_file(out, overwrite, lambda line: line == REPORT_MARK, "vgrc report")
    check_output_file(csv_path, overwrite, lambda line: line == CSV_HEADER, "vgrc report")
    md, csv, skipped = report_table([r for r in runs if Path(r).resolve() not in (out.resolve(), csv_path.resolve())])
    skipped += [(str(r), "the report's own output") for r in runs if Path(r).resolve() in (out.resolve(), csv_path.resolve())]
    atomic_write_text(out, md)
    atomic_write_text(csv_path, csv)
    return md, skipped
