"""Benchmark: every ``vgrc diagnose`` analysis on the full Synthetic Shapes set with cached
embeddings (issue 12), each against a naive per-query loop.

1. The timed run: ``vgrc diagnose all`` (substitution, geometry, k-sweep, fgw-alpha,
   alpha-sweep, composition with their defaults) as a separate process after an untimed
   run that fills the embedding cache (tiny-random). Wall time includes interpreter
   start-up and imports; peak RSS is the process tree's, sampled every 20 ms. The run must
   encode nothing (checked from each analysis's ``run.json``).
2. Baselines, in this process, on the same cached embeddings: the straightforward
   implementation of each analysis — one query at a time (numpy inside; POT's
   ``fused_gromov_wasserstein2`` / scipy's ``linear_sum_assignment`` per (query, candidate)
   problem, re-solved for every k or α as a per-setting loop would) — timed on a sample of
   queries and extrapolated to all of them. Each analysis's own seconds (``run.json``)
   against its baseline give ``speedup_<analysis>``.

Usage::

    python benchmarks/bench_diagnose.py [--data DIR] [--sample 40]

Last line: ``RESULT diagnose_all_shapes_seconds=<s> peak_rss_mb=<m> speedup_<analysis>=<x> …``
(goal: ≤ 60 s on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from bench_eval import vgrc_cmd  # benchmarks/ is on sys.path when run as a script
from bench_shapes import PeakTreeRSS

ANALYSES = ("substitution", "geometry", "k-sweep", "fgw-alpha", "alpha-sweep", "composition")


def run_all(data: Path, cache: Path, out: Path) -> tuple[float, float]:
    cmd = [*vgrc_cmd(), "diagnose", "all", "--data", str(data), "--model", "tiny-random", "--cache-dir", str(cache), "--out", str(out), "--overwrite", "-q"]
    with PeakTreeRSS() as rss:
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
    return wall, rss.peak / 2**20


def _per_query_topk(texts, images, k):
    """Naive stage 1: one query at a time, full argsort."""
    return [np.argsort(-(images @ t), kind="stable")[:k] for t in texts]


def baselines(data: Path, cache: Path, sample: int) -> dict[str, float]:
    """Extrapolated seconds of the naive per-query implementation of each analysis."""
    import ot
    from scipy.optimize import linear_sum_assignment

    from vgrc.evaluators.diagnostics._common import prepare
    from vgrc.evaluators.diagnostics.composition import slot_scores
    from vgrc.evaluators.first_stage.search import normalize
    from vgrc.evaluators.pipeline import EvalConfig

    prep = prepare(EvalConfig(data=str(data), model="tiny-random", cache_dir=str(cache), fit_fraction=0.0), lambda *a: None)
    ev, Q = prep.ev, len(prep.ev)
    rng = np.random.default_rng(0)
    qs = rng.choice(Q, size=min(sample, Q), replace=False)
    scale = Q / len(qs)
    P = prep.phrase_emb.astype(np.float64)
    out: dict[str, float] = {}

    def problems(q, g):
        x = P[prep.q_table.index[q][prep.q_table.weight[q] > 0]]
        y = P[prep.g_table.index[g][prep.g_table.weight[g] > 0]]
        return 1 - x @ y.T, 1 - x @ x.T, 1 - y @ y.T, np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))

    # substitution: per-query top-1 with a full sort
    t0 = time.perf_counter()
    _per_query_topk(prep.texts[qs], prep.images, 1)
    out["substitution"] = (time.perf_counter() - t0) * scale

    # geometry: the ridge fit on every caption → image, POT's Gromov–Wasserstein twice on
    # 42 items, scipy Pearson per category, an assignment for the OT identity
    from scipy.stats import pearsonr

    T = normalize(np.random.default_rng(1).normal(size=(42, prep.images.shape[1])))
    V = normalize(np.random.default_rng(2).normal(size=(42, prep.images.shape[1])))
    t0 = time.perf_counter()
    X, Y = prep.texts.astype(np.float64), prep.images.astype(np.float64)
    np.linalg.solve(X.T @ X + np.eye(X.shape[1]), X.T @ Y)
    C1, C2 = 1 - T @ T.T, 1 - V @ V.T
    w = np.full(42, 1 / 42)
    for _ in range(2):
        ot.gromov.gromov_wasserstein2(C1, C2, w, w)
    iu = np.triu_indices(42, 1)
    for _ in range(14):
        pearsonr(C1[iu], C2[iu])
    linear_sum_assignment(1 - T @ V.T)
    out["geometry"] = time.perf_counter() - t0

    # k-sweep: main run at k = 50 (Hungarian + FGW per pair), every candidate re-solved per k
    ks = (5, 10, 20, 30, 40, 50, 75, 100)
    sub = qs[: max(2, len(qs) // 8)]
    t0 = time.perf_counter()
    for q, top in zip(sub, _per_query_topk(prep.texts[sub], prep.images, 50)):
        for g in top:
            M, A, B, p, w = problems(q, g)
            linear_sum_assignment(M)
            ot.gromov.fused_gromov_wasserstein2(M, A, B, p, w, alpha=0.5)
    main = (time.perf_counter() - t0) * Q / len(sub)
    t0 = time.perf_counter()
    q = sub[0]
    top = _per_query_topk(prep.texts[[q]], prep.images, max(ks))[0]
    for k in ks:
        for g in top[:k]:
            M, A, B, p, w = problems(q, g)
            linear_sum_assignment(M)
            ot.gromov.fused_gromov_wasserstein2(M, A, B, p, w, alpha=0.5)
    per_query_sweep = time.perf_counter() - t0
    out["k-sweep"] = main  # + per_query_sweep × |D|, added once the run's |D| is known
    out["_k_sweep_per_query"] = per_query_sweep

    # fgw-alpha: five α, every (query, candidate) problem with POT, plus Hungarian
    alphas = (0.0, 0.25, 0.5, 0.75, 1.0)
    t0 = time.perf_counter()
    for q, top in zip(sub, _per_query_topk(prep.texts[sub], prep.images, 50)):
        for g in top:
            M, A, B, p, w = problems(q, g)
            linear_sum_assignment(M)
            for a in alphas:
                ot.gromov.fused_gromov_wasserstein2(M, A, B, p, w, alpha=a)
    out["fgw-alpha"] = (time.perf_counter() - t0) * Q / len(sub)

    # alpha-sweep: seven α, per query: steer, score the gallery, sort
    t0 = time.perf_counter()
    d = normalize(np.random.default_rng(3).normal(size=prep.texts.shape[1]))
    for a in (0, 0.25, 0.5, 0.75, 1, 1.5, 2):
        _per_query_topk(normalize(prep.texts[qs] + a * d), prep.images, 10)
    out["alpha-sweep"] = (time.perf_counter() - t0) * scale

    # composition: per query, per object score rows; avg/min/softmin merges; slot scores; 4 α
    t0 = time.perf_counter()
    for q in qs:
        objs = P[prep.q_table.index[q][prep.q_table.weight[q] > 0]]
        S = objs @ prep.images.T
        for scores in (normalize(objs.mean(0)[None])[0] @ prep.images.T, S.min(0), -0.05 * np.log(np.exp(-S / 0.05).sum(0)),
                       prep.images @ prep.texts[q]):
            np.argsort(-scores, kind="stable")
        for _ in range(5):  # baseline + 4 α
            top = np.argsort(-(normalize(objs.mean(0)[None])[0] @ prep.images.T), kind="stable")[:10]
            slot_scores(ev.query_objects[q], [ev.objects[g] for g in top])
    out["composition"] = (time.perf_counter() - t0) * scale
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="an existing full shapes build (else one is generated)")
    parser.add_argument("--sample", type=int, default=40, help="queries timed for the naive baselines")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="ot")  # POT divides by α for its log at α = 0
    with tempfile.TemporaryDirectory(prefix="bench-diagnose-") as tmp:
        tmp = Path(tmp)
        data = args.data
        if data is None:
            from vgrc.generators.shapes.build import ShapesConfig, build_shapes

            print("building the full Synthetic Shapes set …", flush=True)
            data = tmp / "shapes"
            build_shapes(data, ShapesConfig(), command="bench_diagnose.py")
        cache = tmp / "cache"
        print("filling the embedding cache (untimed) …", flush=True)
        run_all(data, cache, tmp / "warm")
        wall, peak = run_all(data, cache, tmp / "out")
        seconds, encoded, disagreements = {}, 0, 0
        for name in ANALYSES:
            record = json.loads((tmp / "out" / name / "run.json").read_text())
            seconds[name] = record["seconds"]
            encoded += sum(s.get("encoded", 0) for s in record.get("encode", {}).values())
            if name == "k-sweep":
                disagreements = record["summary"]["disagreements"]
        if encoded:
            raise SystemExit(f"the timed run encoded {encoded} items: the cache did not hold")
        print("timing the naive per-query baselines …", flush=True)
        naive = baselines(data, cache, args.sample)
        naive["k-sweep"] += naive.pop("_k_sweep_per_query") * disagreements
    print(f"\nvgrc diagnose all (one process, cached): {wall:.1f} s wall, peak RSS {peak:.0f} MB; k-sweep disagreement queries: {disagreements}")
    print(f"{'analysis':<14}{'vgrc s':>9}{'naive s (extrapolated)':>25}{'speedup':>10}")
    for name in ANALYSES:
        print(f"{name:<14}{seconds[name]:>9.2f}{naive[name]:>25.2f}{naive[name] / seconds[name]:>9.2f}×")
    ratios = " ".join(f"speedup_{n.replace('-', '_')}={naive[n] / seconds[n]:.2f}" for n in ANALYSES)
    print(f"RESULT diagnose_all_shapes_seconds={wall:.1f} peak_rss_mb={peak:.0f} {ratios}")


if __name__ == "__main__":
    sys.exit(main())
