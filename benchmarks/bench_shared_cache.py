"""Benchmark: two ``vgrc eval`` runs started together on one fresh cache (issue 21 §1).

A lab queue often starts several evaluations of the same model on the same gallery at once
(one per reranker). Before chunk claims, each of them encoded every image; now each chunk
is claimed by one process and the others read its shard
(:mod:`vgrc.evaluators.encoders.chunk_claims`).

Both variants run in the same invocation, on the same dataset and model, each pair of runs
on a new cache:

- **claims**: this checkout as it is;
- **baseline**: the same code with claims switched off in the child processes
  (``ChunkClaims.try_claim`` always grants the claim), which is the behaviour before
  issue 21: every process encodes every chunk.

Measured per variant: the images encoded by the two runs together (÷ the distinct images
in the gallery: 1.0 = no duplicated work) and the wall time until both have finished.
Metrics of all four runs must be equal (checked).

Usage::

    python benchmarks/bench_shared_cache.py                       # 1,000 Synthetic Shapes images, tiny-random
    python benchmarks/bench_shared_cache.py --limit 3000 --model ViT-B-32 --batch-size 32

Last line: ``RESULT shared_cache_work_ratio=<f> baseline_work_ratio=<f> wall_speedup=<x>``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys
if sys.argv[1] == "baseline":
    from vgrc.evaluators.encoders.chunk_claims import Claim, ChunkClaims
    ChunkClaims.try_claim = lambda self, keys: Claim(None, None)  # every process encodes every chunk
sys.argv = ["vgrc", *sys.argv[2:]]
from vgrc.cli.main import main
main()
"""


def pair(variant: str, data: Path, work: Path, args) -> tuple[float, int, int, list[dict]]:
    cache = work / f"cache-{variant}"
    base = ["eval", "--data", str(data), "--model", args.model, "--rerank", "none", "--batch-size", str(args.batch_size),
            "--cache-dir", str(cache), "-q"]
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, variant, *base, "--out", str(work / f"{variant}-{i}")]) for i in range(2)]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"{variant}: a run failed")
    wall = time.perf_counter() - t0
    runs = [json.loads((work / f"{variant}-{i}" / "run.json").read_text()) for i in range(2)]
    encoded = sum(r["encode"]["images"]["encoded"] for r in runs)
    unique = runs[0]["encode"]["images"]["unique"]
    metrics = [{k: v for k, v in json.loads((work / f"{variant}-{i}" / "metrics.json").read_text()).items() if k != "config"} for i in range(2)]
    return wall, encoded, unique, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1000, help="Synthetic Shapes compositions (the gallery)")
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vgrc-bench-shared-"))
    try:
        from vgrc.generators.shapes.build import ShapesConfig, build_shapes

        data = work / "shapes"
        build_shapes(data, ShapesConfig(limit=args.limit, seed=0))
        results = {v: pair(v, data, work, args) for v in ("baseline", "claims")}
        all_metrics = [m for r in results.values() for m in r[3]]
        assert all(m == all_metrics[0] for m in all_metrics), "metrics differ between runs"
        for v, (wall, encoded, unique, _) in results.items():
            print(f"{v:9s} wall {wall:6.1f} s   images encoded by the two runs {encoded:6d}   distinct {unique}   ratio {encoded / unique:.2f}")
        (bw, be, bu, _), (cw, ce, cu, _) = results["baseline"], results["claims"]
        print(f"RESULT shared_cache_work_ratio={ce / cu:.2f} baseline_work_ratio={be / bu:.2f} wall_speedup={bw / cw:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
