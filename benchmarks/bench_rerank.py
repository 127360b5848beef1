"""Benchmark: batched FGW / assignment solvers vs POT and scipy (issue 3).

Baselines, measured in the same run, float64:
- POT's per-pair loop, ``ot.gromov.fused_gromov_wasserstein2(M, C1, C2, p, q,
  symmetric=True, alpha=0.5)``, timed on ``--pot-sample`` problems and extrapolated per
  problem;
- POT's own batch solver ``ot.solve_gromov_batch(C1, C2, M=M, alpha=0.5)`` (entropic, so
  also approximate), timed on the same sample;
- a scipy ``linear_sum_assignment`` loop for the assignment cost.

vgrc solves the full batch (``--problems``, default 650,000 = 13,000 queries × 50
candidates), generated and solved in chunks of 65,536 problems as ``vgrc eval`` does.
Generation time is excluded from the timing. Peak memory is the process's RSS high-water
mark.

Exactness: 1,000 random unit-vector problems and 1,000 CLIP-like structured problems
(shared modality offset + object identity), mixed sizes included, against POT: the
largest absolute difference, and the share of queries (groups of 10 candidates) whose
candidate ranking is identical. Also: how often ``solver="global"`` finds a lower
minimum than conditional gradient.

Regression check against an older commit (issue 23): ``--baseline REV`` checks REV out into
a temporary git worktree and times the same solver calls (FGW at n = 3, 6 and mixed ≤ 10,
and the assignment batch, on the same generated problems) under both commits, alternating
``--repeat`` times in fresh processes, and prints the ratio of their best times:

    python benchmarks/bench_rerank.py --baseline 95cddbf --problems 650000

ending ``RESULT baseline=REV fgw_n3_ratio=<new/old> … assignment_ratio=<new/old>`` (1.0 =
as fast as REV; above 1 = slower). The old commit is imported from the worktree through a
``vgrc`` package folder that links its source folders, so nothing is installed.

Last line (without --baseline): ``RESULT fgw_speedup_vs_pot_n3=<x> fgw_speedup_vs_pot_n6=<x>
fgw_speedup_vs_pot_mixed10=<x> fgw_speedup_vs_pot_batch=<x> assignment_seconds_650k=<s>
max_abs_diff=<d> rank_agreement=<r>``
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

CHUNK = 65_536
ALPHA = 0.5


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make(rng, B, n, m, kind="random", mixed=False, d=32):
    """Cosine-distance problems padded to (n, m); mixed = random sizes 1..n, 1..m per problem."""
    if kind == "random":
        X, Y = unit(rng.normal(size=(B, n, d))), unit(rng.normal(size=(B, m, d)))
    else:  # CLIP-like: per-modality offset + shared object identities
        t_off, i_off = rng.normal(size=d) * 1.5, rng.normal(size=d) * 1.5
        ids = rng.normal(size=(B, n + m, d))
        X = unit(ids[:, :n] + t_off + 0.4 * rng.normal(size=(B, n, d)))
        Y = unit(ids[:, rng.permutation(n + m)[:m]] + i_off + 0.4 * rng.normal(size=(B, m, d)))
    M = 1 - X @ Y.transpose(0, 2, 1)
    C1 = 1 - X @ X.transpose(0, 2, 1)
    C2 = 1 - Y @ Y.transpose(0, 2, 1)
    if mixed:
        ns, ms = rng.integers(1, n + 1, B), rng.integers(1, m + 1, B)
        p = (np.arange(n) < ns[:, None]) / ns[:, None]
        q = (np.arange(m) < ms[:, None]) / ms[:, None]
    else:
        p, q = np.full((B, n), 1 / n), np.full((B, m), 1 / m)
    return M, C1, C2, p, q


def pot_loop(M, C1, C2, p, q):
    import ot

    out = np.empty(M.shape[0])
    for b in range(M.shape[0]):
        r, c = np.flatnonzero(p[b] > 0), np.flatnonzero(q[b] > 0)
        out[b] = ot.gromov.fused_gromov_wasserstein2(
            M[b][np.ix_(r, c)], C1[b][np.ix_(r, r)], C2[b][np.ix_(c, c)], p[b, r], q[b, c], symmetric=True, alpha=ALPHA
        )
    return out


def time_pot_per_problem(rng, n, m, mixed, sample):
    M, C1, C2, p, q = make(rng, sample, n, m, mixed=mixed)
    pot_loop(M[:20], C1[:20], C2[:20], p[:20], q[:20])  # warm-up
    t0 = time.perf_counter()
    pot_loop(M, C1, C2, p, q)
    return (time.perf_counter() - t0) / sample


def time_vgrc_full(rng, n, m, mixed, total):
    from vgrc.evaluators.solvers import fgw_cost

    w = make(rng, 64, n, m, mixed=mixed)
    fgw_cost(*w[:3], w[3], w[4], alpha=ALPHA)  # compile / load the kernels
    seconds = 0.0
    for s in range(0, total, CHUNK):
        M, C1, C2, p, q = make(rng, min(CHUNK, total - s), n, m, mixed=mixed)
        t0 = time.perf_counter()
        fgw_cost(M, C1, C2, p, q, alpha=ALPHA)
        seconds += time.perf_counter() - t0
    return seconds


def solver_seconds(problems: int, seed: int) -> dict[str, float]:
    """Seconds of vgrc's FGW (n = 3, 6, mixed ≤ 10) and assignment (n = 3) calls on
    ``problems`` generated problems each, generation excluded; whichever vgrc is imported."""
    from vgrc.evaluators.solvers import assignment_cost

    rng = np.random.default_rng(seed)
    out = {f"fgw_{label}": time_vgrc_full(rng, n, n, mixed, problems) for label, n, mixed in (("n3", 3, False), ("n6", 6, False), ("mixed10", 10, True))}
    M3 = np.concatenate([make(rng, min(CHUNK, problems - s), 3, 3)[0] for s in range(0, problems, CHUNK)])
    assignment_cost(M3[:10])
    t0 = time.perf_counter()
    assignment_cost(M3)
    out["assignment"] = time.perf_counter() - t0
    return out


def _baseline_package(rev: str, root: Path) -> Path:
    """``rev`` checked out in a git worktree under ``root``, and a folder holding a ``vgrc``
    package whose sub-packages link to it (put first on PYTHONPATH to import that commit)."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    tree = root / "tree"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "--quiet", str(tree), rev], check=True)
    shim = root / "shim" / "vgrc"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("")
    for name in ("cli", "evaluators", "generators", "data_cards"):
        if (tree / name).exists():
            (shim / name).symlink_to(tree / name)
    return shim.parent


def compare_with_baseline(rev: str, problems: int, seed: int, repeat: int) -> None:
    """Alternate fresh processes of this checkout and of ``rev``; best time each; ratios."""
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, __file__, "--times-only", "--problems", str(problems), "--seed", str(seed)]
    with tempfile.TemporaryDirectory(prefix="vgrc-bench-baseline-") as tmp:
        shim = _baseline_package(rev, Path(tmp))
        try:
            best: dict[str, dict[str, float]] = {"current": {}, rev: {}}
            for r in range(repeat):
                for who, env in (("current", {}), (rev, {"PYTHONPATH": str(shim)})):
                    run = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=True)
                    times = json.loads(run.stdout.strip().splitlines()[-1])
                    print(f"run {r + 1} {who:>10s}: " + "  ".join(f"{k} {v:.3f} s" for k, v in times.items()), flush=True)
                    for k, v in times.items():
                        best[who][k] = min(v, best[who].get(k, float("inf")))
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(Path(tmp) / "tree")], check=False)
    ratios = {k: best["current"][k] / best[rev][k] for k in best["current"]}
    print(f"best of {repeat}: " + "  ".join(f"{k} {best['current'][k]:.3f} s vs {best[rev][k]:.3f} s" for k in ratios))
    print(f"RESULT baseline={rev} " + " ".join(f"{k}_ratio={v:.2f}" for k, v in ratios.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=650_000)
    parser.add_argument("--pot-sample", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", metavar="REV", help="time the solvers of this commit beside the current code (git worktree) and print the ratios")
    parser.add_argument("--repeat", type=int, default=3, help="--baseline: alternating runs of each")
    parser.add_argument("--times-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.times_only:
        import json

        print(json.dumps(solver_seconds(args.problems, args.seed)))
        return
    if args.baseline:
        compare_with_baseline(args.baseline, args.problems, args.seed, args.repeat)
        return

    import ot
    from scipy.optimize import linear_sum_assignment

    from vgrc.evaluators.solvers import assignment_cost, fgw_cost, fgw_solve

    rng = np.random.default_rng(args.seed)
    P = args.problems
    results = {}
    rows = []
    for label, n, mixed in (("n3", 3, False), ("n6", 6, False), ("mixed10", 10, True)):
        pot = time_pot_per_problem(rng, n, n, mixed, args.pot_sample)
        ours = time_vgrc_full(rng, n, n, mixed, P)
        results[f"fgw_speedup_vs_pot_{label}"] = pot * P / ours
        rows.append(f"{label:8s} POT loop {pot * 1e6:7.1f} us/problem -> {pot * P:7.1f} s | vgrc {ours:6.2f} s for {P:,} ({ours / P * 1e6:.2f} us) | {pot * P / ours:6.1f}x")

    # POT's batch solver (entropic) on the n = 3 sample vs vgrc on the same problems
    M, C1, C2, p, q = make(rng, args.pot_sample, 3, 3)
    ot.solve_gromov_batch(C1[:10], C2[:10], M=M[:10], alpha=ALPHA)
    t0 = time.perf_counter()
    batch_res = ot.solve_gromov_batch(C1, C2, M=M, alpha=ALPHA)
    pot_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact_vals = fgw_cost(M, C1, C2, p, q, alpha=ALPHA)
    ours_batch = time.perf_counter() - t0
    results["fgw_speedup_vs_pot_batch"] = pot_batch / ours_batch
    batch_gap = float(np.abs(np.asarray(batch_res.value) - exact_vals).max())
    rows.append(f"ot.solve_gromov_batch {pot_batch:.3f} s vs vgrc {ours_batch:.4f} s on {args.pot_sample:,} n=3 problems: {pot_batch / ours_batch:.1f}x (its max |value - exact| = {batch_gap:.2e})")

    # assignment: 650k at n = 3, and a scipy loop on a sample
    M3 = np.concatenate([make(rng, min(CHUNK, P - s), 3, 3)[0] for s in range(0, P, CHUNK)])
    assignment_cost(M3[:10])
    t0 = time.perf_counter()
    ours_assign = assignment_cost(M3)
    assign_s = time.perf_counter() - t0
    k = args.pot_sample * 5
    t0 = time.perf_counter()
    ref_assign = np.array([M3[b][linear_sum_assignment(M3[b])].sum() / 3 for b in range(k)])
    scipy_per = (time.perf_counter() - t0) / k
    results["assignment_seconds_650k"] = assign_s * 650_000 / len(M3)
    assign_diff = float(np.abs(ours_assign[:k] - ref_assign).max())
    rows.append(f"assignment {assign_s:.3f} s for {len(M3):,} (n=3) | scipy loop {scipy_per * 1e6:.1f} us/problem -> {scipy_per * len(M3):.1f} s | {scipy_per * len(M3) / assign_s:.1f}x, max |diff| {assign_diff:.1e}")

    # exactness vs POT: random + structured, fixed and mixed sizes; rankings per query of 10
    diffs, agree, queries = [], 0, 0
    for kind in ("random", "structured"):
        for n, mixed in ((3, False), (5, False), (8, True)):
            count = 340 if n != 8 else 320
            M, C1, C2, p, q = make(rng, count, n, n, kind=kind, mixed=mixed)
            ours = fgw_cost(M, C1, C2, p, q, alpha=ALPHA)
            ref = pot_loop(M, C1, C2, p, q)
            diffs.append(np.abs(ours - ref).max())
            g = len(ours) // 10
            same = (np.argsort(ours[: g * 10].reshape(g, 10), 1, kind="stable") == np.argsort(ref[: g * 10].reshape(g, 10), 1, kind="stable")).all(1)
            agree += int(same.sum())
            queries += g
    results["max_abs_diff"] = float(max(diffs))
    results["rank_agreement"] = agree / queries
    rows.append(f"exactness: 2,000 problems vs POT, max |diff| {results['max_abs_diff']:.1e}; identical rankings for {agree}/{queries} queries")

    # how often the global minimum beats CG (equal sizes, uniform weights)
    for n in (3, 5):
        M, C1, C2, p, q = make(rng, 20_000, n, n, kind="structured")
        cg = fgw_cost(M, C1, C2, alpha=ALPHA)
        glob = fgw_solve(M, C1, C2, alpha=ALPHA, solver="global").cost
        lower = float(((cg - glob) > 1e-9).mean())
        rows.append(f"global vs cg (n={n}, structured): global strictly lower on {lower * 100:.2f}% of problems (never higher: {bool((glob <= cg + 1e-12).all())})")

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(f"peak RSS {peak_mb:.0f} MB")
    print("\n".join(rows))
    print(
        "RESULT "
        + " ".join(
            f"{k}={results[k]:.{3 if k in ('assignment_seconds_650k', 'rank_agreement') else 1}f}" if k != "max_abs_diff" else f"{k}={results[k]:.1e}"
            for k in (
                "fgw_speedup_vs_pot_n3",
                "fgw_speedup_vs_pot_n6",
                "fgw_speedup_vs_pot_mixed10",
                "fgw_speedup_vs_pot_batch",
                "assignment_seconds_650k",
                "max_abs_diff",
                "rank_agreement",
            )
        )
        + f" peak_rss_mb={peak_mb:.0f}"
    )


if __name__ == "__main__":
    main()
