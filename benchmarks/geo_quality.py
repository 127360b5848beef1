"""Benchmark: does geometric verification find the source of a copy? (issue 26's evidence)

For each folder given — a folder of photos (``--photos``), a Synthetic Shapes dataset
(``--shapes``) — the script runs the same commands a user would:

1. ``vgrc build-copies --src FOLDER --copies N`` (homography, crop, scale, rotation, colour
   jitter, JPEG; the transform recorded, so the ground truth is exact);
2. ``vgrc eval --task i2i --model tiny-random --k K --rerank R`` for R in none, orb, sift,
   orb+sift: the random model is stage 1, so stage 1 is near chance and whatever R@1 the
   reranker reaches comes from the keypoints.

It prints one table row per folder and reranker (R@1, shortlist recall), and finally
``RESULT geo_photos_R@1_orb=… geo_photos_R@1_sift=… geo_photos_stage1_R@1=… [geo_shapes_…]``.
Goal (issue 26): R@1 ≥ 0.9 at k = 50.

Photos need no download beyond the package registry: the photographs that ship inside the
scikit-image and scikit-learn wheels (astronaut, coffee, chelsea, rocket, china, flower, …)
plus matplotlib's grace_hopper.jpg make a 24-photo folder::

    pip download --no-deps scikit-image scikit-learn -d /tmp/wheels
    mkdir -p /tmp/photos && for w in /tmp/wheels/*.whl; do unzip -o -q "$w" '*.jpg' '*.png' -d /tmp/photos-raw; done
    find /tmp/photos-raw -type f -size +20k -exec cp {} /tmp/photos/ \\;
    cp .venv/lib/python3.*/site-packages/matplotlib/mpl-data/sample_data/grace_hopper.jpg /tmp/photos/
    .venv/bin/python benchmarks/geo_quality.py --photos /tmp/photos --shapes data/shapes-224 --shapes-limit 200
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

VGRC = [str(Path(sys.executable).with_name("vgrc"))]
RERANKERS = ("none", "orb", "sift", "orb+sift")


def evaluate(name: str, src: Path, work: Path, copies: int, k: int, limit: int | None) -> dict[str, dict[str, float]]:
    """Build copies of ``src`` and evaluate every reranker on them; {reranker: metrics}."""
    data = work / f"{name}-copies"
    build = [*VGRC, "build-copies", "--src", str(src), "--out", str(data), "--copies", str(copies), "-q"]
    if limit:
        build += ["--limit", str(limit)]
    subprocess.run(build, check=True)
    out: dict[str, dict[str, float]] = {}
    for reranker in RERANKERS:
        run = work / f"{name}-{reranker}"
        subprocess.run([*VGRC, "eval", "--data", str(data), "--task", "i2i", "--model", "tiny-random", "--k", str(k),
                        "--rerank", reranker, "--out", str(run), "--cache-dir", str(work / "cache"), "--overwrite", "-q"],
                       check=True, stderr=subprocess.DEVNULL)
        with open(run / "metrics.csv") as f:
            row = next(csv.DictReader(f))
        out[reranker] = {key: float(value) for key, value in row.items() if key not in ("stage1", "rerank")}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, help="a folder of photos (see the docstring for 24 that need no download)")
    parser.add_argument("--shapes", type=Path, help="a Synthetic Shapes dataset folder (vgrc gen-shapes)")
    parser.add_argument("--shapes-limit", type=int, default=200, help="source images taken from --shapes")
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--k", type=int, default=50)
    args = parser.parse_args()
    if not args.photos and not args.shapes:
        parser.error("give --photos DIR and/or --shapes DIR")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, src, limit in (("photos", args.photos, None), ("shapes", args.shapes, args.shapes_limit)):
            if src is None:
                continue
            metrics = evaluate(name, src, Path(tmp), args.copies, args.k, limit)
            n_q, n_g = int(metrics["none"]["n_queries"]), int(metrics["none"]["n_gallery"])
            print(f"{name}: {n_q} copies of {n_g} images, k = {args.k}, stage 1 tiny-random")
            print("| reranker | R@1 | R@5 | shortlist recall |")
            print("|---|---|---|---|")
            for reranker, m in metrics.items():
                print(f"| {reranker} | {m['i2i_R@1']:.3f} | {m['i2i_R@5']:.3f} | {m[f'i2i_shortlist_recall@{args.k}']:.3f} |")
            results[name] = metrics
    parts = []
    for name, metrics in results.items():
        parts += [f"geo_{name}_stage1_R@1={metrics['none']['i2i_R@1']:.3f}",
                  f"geo_{name}_R@1_orb={metrics['orb']['i2i_R@1']:.3f}", f"geo_{name}_R@1_sift={metrics['sift']['i2i_R@1']:.3f}",
                  f"geo_{name}_R@1_orb+sift={metrics['orb+sift']['i2i_R@1']:.3f}"]
    print("RESULT " + " ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
