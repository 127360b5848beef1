r"""Statistics across runs for ``vgrc report``: paired bootstrap confidence intervals of
metric differences, and per-category breakdowns.

**Paired bootstrap** (``--bootstrap N``). Two runs are *paired* when their
``per_query.parquet`` hold the same query ids (the same dataset, split and ``--limit``).
For each metric with a per-query value in both runs — R@1/5/10 from ``rank_final``
(a query scores 1 when its first relevant image is within the top K), nDCG@10, CAS-gen@10
and CAS-noun@10 when the runs record them — the per-query differences
:math:`d_q = m^B_q - m^A_q` are resampled: N draws of Q query indices with replacement
(numpy ``default_rng(seed)``), the mean of each draw, and the 2.5th / 97.5th percentiles
of those means (the percentile interval, Efron & Tibshirani 1993, ch. 13). The observed
difference is the plain mean of :math:`d_q`, i.e. exactly the difference of the runs'
reported metrics. In each group of paired runs the reference A is the cosine / no-rerank
run when there is one, else the first run of the table.

**Per category.** A query counts in every category its run lists (``categories`` in
``per_query.parquet``: SugarCrepe's category; the shapes a Synthetic Shapes query names;
the attribute category of a steering row); R@1 and R@10 per category and run, for the
categories with the most queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vgrc.evaluators.errors import DatasetFolderError

__all__ = ["per_query_metrics", "paired_bootstrap", "bootstrap_table", "category_table", "BOOTSTRAP_CSV_HEADER"]

BOOTSTRAP_CSV_HEADER = "baseline,run,metric,baseline_value,run_value,difference,ci_low,ci_high,queries,resamples,seed"
RECALL_KS = (1, 5, 10)
GRADED = {"ndcg@10": "nDCG@10", "cas_gen@10": "CAS-gen@10", "cas_noun@10": "CAS-noun@10"}


def per_query_metrics(run: str | Path):
    """``(query ids, {metric: per-query values}, categories or None)`` of a run folder, or
    None when it has no per-query ranks (e.g. ``--task itm``)."""
    import pandas as pd

    path = Path(run) / "per_query.parquet"
    if not path.is_file():
        return None
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        reason = "it is empty" if path.stat().st_size == 0 else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}"
        raise DatasetFolderError(f"{path} is damaged ({reason}); run that eval again with --overwrite, or leave the run out") from None
    if "rank_final" not in frame or "query_id" not in frame:
        return None
    ranks = frame["rank_final"].to_numpy()
    values = {f"R@{k}": ((ranks >= 0) & (ranks < k)).astype(float) for k in RECALL_KS}
    for column, name in GRADED.items():
        if column in frame:
            values[name] = frame[column].to_numpy(dtype=float)
    categories = [list(c) for c in frame["categories"]] if "categories" in frame else None
    return [str(q) for q in frame["query_id"]], values, categories


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean(b − a), low, high)``: the percentile interval of the mean paired difference."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    step = max(1, int(2**24 // max(1, len(d))))  # bounded memory: step × Q indices at a time
    for s in range(0, resamples, step):
        n = min(step, resamples - s)
        means[s : s + n] = d[rng.integers(0, len(d), size=(n, len(d)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(d.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def _is_reference(cfg: dict) -> bool:
    return cfg.get("stage1") == "cosine" and cfg.get("rerank") == "none"


def bootstrap_table(loaded: Sequence[tuple[Path, dict]], resamples: int, seed: int = 0) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(Markdown lines, CSV lines, notes) of every paired comparison among ``loaded``
    (path, metrics.json) runs, in table order."""
    tables = [(p, m, per_query_metrics(p)) for p, m in loaded]
    groups: dict[tuple, list] = {}
    notes = []
    for p, m, pq in tables:
        if pq is None:
            notes.append((str(p), "no per-query ranks (per_query.parquet): not in the bootstrap"))
            continue
        groups.setdefault(tuple(sorted(pq[0])), []).append((p, m, pq))
    md = [f"## Paired bootstrap: differences to the reference run, 95% interval ({resamples:,} resamples, seed {seed})", "",
          "| Reference | Run | Metric | Reference | Run | Difference | 95% interval |", "|---|---|---|---|---|---|---|"]
    csv = [BOOTSTRAP_CSV_HEADER]
    for runs in groups.values():
        if len(runs) < 2:
            notes.append((str(runs[0][0]), "no other run on the same queries: not in the bootstrap"))
            continue
        ref = next((r for r in runs if _is_reference(r[1]["config"])), runs[0])
        ids_a, va, _ = ref[2]
        for p, m, (ids_b, vb, _) in runs:
            if p == ref[0]:
                continue
            order = {q: i for i, q in enumerate(ids_b)}
            align = np.array([order[q] for q in ids_a])
            for metric in [k for k in va if k in vb]:
                a, b = va[metric], vb[metric][align]
                diff, lo, hi = paired_bootstrap(a, b, resamples, seed)
                mark = " *" if lo > 0 or hi < 0 else ""
                md.append(f"| {ref[0].name} | {p.name} | {metric} | {a.mean():.3f} | {b.mean():.3f} | {diff:+.3f}{mark} | [{lo:+.3f}, {hi:+.3f}] |")
                csv.append(",".join([ref[0].name, p.name, metric, repr(float(a.mean())), repr(float(b.mean())), repr(diff), repr(lo), repr(hi),
                                     str(len(a)), str(resamples), str(seed)]))
    if len(md) == 4:
        md.append("| — | — | no two runs share their queries | | | | |")
    md += ["", "\\* the interval excludes 0."]
    return md, csv, notes


def category_table(loaded: Sequence[tuple[Path, dict]], top: int = 30) -> list[str]:
    """Markdown lines: R@1 / R@10 per category (rows) and run (columns); empty when no run
    records categories."""
    runs = []
    for p, _ in loaded:
        pq = per_query_metrics(p)
        if pq is not None and pq[2] is not None and any(pq[2]):
            runs.append((p, pq))
    if not runs:
        return []
    counts: dict[str, int] = {}  # queries in the category: the most any run has (runs may cover other queries)
    for _, (_, _, cats) in runs:
        mine: dict[str, int] = {}
        for cs in cats:
            for c in cs:
                mine[c] = mine.get(c, 0) + 1
        for c, n in mine.items():
            counts[c] = max(counts.get(c, 0), n)
    chosen = sorted(counts, key=lambda c: (-counts[c], c))[:top]
    head = ["Category", "Queries", *(f"{p.name} R@1 / R@10" for p, _ in runs)]
    md = [f"## Per category (R@1 / R@10; the {len(chosen)} categories with the most queries)", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in chosen:
        cells = [c, str(counts[c])]
        for _, (_, values, cats) in runs:
            mask = np.array([c in cs for cs in cats])
            cells.append(f"{100 * values['R@1'][mask].mean():.1f} / {100 * values['R@10'][mask].mean():.1f} (n={int(mask.sum())})" if mask.any() else "—")
        md.append("| " + " | ".join(cells) + " |")
    return md
