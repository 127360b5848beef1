"""Benchmark: stage 1 over a 1,000,000-image gallery (issue 13 §2).

A synthetic gallery of ``--gallery`` unit vectors in 512 dimensions with cluster structure
(``--clusters`` centres; each vector = its centre + isotropic noise, normalised) and
``--queries`` queries (a random gallery vector plus noise, normalised; that vector is the
query's relevant image). In one run, on the same arrays:

1. **exact chunked** (``evaluators/index/exact.py``, what ``vgrc eval`` runs): top-50 and
   the relevant image's full rank for every query; queries/s and the process's peak RSS
   during the search (sampled every 20 ms; the gallery itself is 2 GB of it).
2. **naive dense**: numpy's matmul of a sample of queries with the whole gallery, then a
   full argsort per row — the straightforward implementation — timed on ``--naive-sample``
   queries and extrapolated; its memory for all queries at once would be
   queries × gallery × 4 bytes.
3. **FAISS IVF** (``--index ivf``, √N lists): built once, then searched with nprobe 1, 2,
   4, 8 and ``--nprobe``; queries/s and recall@50 against the exact top-50 of every query.
   The RESULT reports the fastest setting with recall@50 ≥ 0.95. Skipped, with a line
   saying so, where FAISS is not installed.
4. **exact on a device** (``--device cuda``; ``evaluators/index/device_exact.py``, what
   ``vgrc eval --device cuda`` runs): the same search in torch on that device, the
   gallery's copy there included; queries/s, the device's peak memory, and its agreement
   with the CPU run (recall@50 of each query's list against the CPU's, and the share of
   equal ranks; the two round their products differently, so near ties may swap).

Last line: ``RESULT stage1_exact_qps=… stage1_index_qps=… index_recall_at_50=… peak_rss_mb=…``
(goal: exact ≤ 4 GB peak; index recall@50 ≥ 0.95 at ≥ 10× the exact throughput).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np
from bench_shapes import PeakTreeRSS  # benchmarks/ is on sys.path when run as a script


def synthetic(n: int, n_queries: int, d: int, clusters: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    gallery = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):  # in blocks: no float64 temporaries of the whole gallery
        e = min(n, s + 100_000)
        block = centres[rng.integers(0, clusters, e - s)] + rng.normal(scale=0.8 / np.sqrt(d), size=(e - s, d)).astype(np.float32)
        gallery[s:e] = block / np.linalg.norm(block, axis=1, keepdims=True)
    target = rng.choice(n, n_queries, replace=False)
    queries = gallery[target] + rng.normal(scale=0.3 / np.sqrt(d), size=(n_queries, d)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return gallery, queries, [np.array([t]) for t in target]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gallery", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--naive-sample", type=int, default=100)
    parser.add_argument("--device", default=None, help="also run the exact search in torch on this device (cuda, cuda:1, cpu)")
    args = parser.parse_args()

    from vgrc.evaluators.index.exact import exact_topk
    from vgrc.evaluators.index.faiss_index import faiss_search

    t0 = time.perf_counter()
    gallery, queries, relevant = synthetic(args.gallery, args.queries, args.dim, args.clusters)
    print(f"synthetic gallery {gallery.shape} ({gallery.nbytes / 2**30:.1f} GB), {len(queries):,} queries, {time.perf_counter() - t0:.0f} s", flush=True)

    exact_topk(queries[:64], gallery[:50_000], args.k, relevant[:64])  # compile the kernels
    with PeakTreeRSS() as rss:
        t0 = time.perf_counter()
        top, _, rank = exact_topk(queries, gallery, args.k, relevant)
        exact_s = time.perf_counter() - t0
    exact_qps = len(queries) / exact_s
    print(f"exact chunked: {exact_s:.1f} s, {exact_qps:,.0f} queries/s, peak RSS {rss.peak / 2**20:,.0f} MB "
          f"(R@1 {np.mean(rank == 0):.3f}, R@50 {np.mean((rank >= 0) & (rank < 50)):.3f})", flush=True)

    sample = np.random.default_rng(1).choice(len(queries), args.naive_sample, replace=False)
    t0 = time.perf_counter()
    S = queries[sample] @ gallery.T
    order = np.argsort(-S, axis=1, kind="stable")
    naive_s = (time.perf_counter() - t0) * len(queries) / len(sample)
    assert np.array_equal(order[:, :5], top[sample, :5]), "exact chunked and naive dense disagree"
    del S, order
    print(f"naive dense (matmul + argsort, {len(sample)} queries, extrapolated): {naive_s:.0f} s for all, "
          f"{len(queries) / naive_s:,.1f} queries/s; all at once it would hold {len(queries) * len(gallery) * 4 / 2**30:,.0f} GB of scores", flush=True)

    extra = f" {device_run(args, queries, gallery, relevant, top, rank, exact_qps)}" if args.device else ""
    try:
        import faiss  # noqa: F401 - only whether it is there
    except ImportError:
        print("FAISS is not installed: the index part is skipped (pip install faiss-cpu)", flush=True)
        print(f"RESULT stage1_exact_qps={exact_qps:.1f} peak_rss_mb={rss.peak / 2**20:.0f} stage1_naive_qps={len(queries) / naive_s:.2f}{extra}")
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-stage1-") as store:  # built once, then loaded for each nprobe
        for nprobe in sorted({1, 2, 4, 8, args.nprobe}):
            ivf_top, _, _, info = faiss_search(queries, gallery, args.k, relevant, kind="ivf", store=store, nprobe=nprobe, recall_sample=100)
            recall = float(np.mean([len(np.intersect1d(a, b)) / args.k for a, b in zip(ivf_top, top)]))  # every query against the exact run
            rows.append((nprobe, info["queries_per_second"], recall))
            how = f"built in {info['build_or_load_seconds']:.0f} s" if info.get("built") else "loaded"
            print(f"FAISS IVF nprobe {nprobe:>3} ({how}): {info['queries_per_second']:,.0f} queries/s "
                  f"({info['queries_per_second'] / exact_qps:.1f}× exact), recall@{args.k} {recall:.4f}", flush=True)
    good = [r for r in rows if r[2] >= 0.95]
    nprobe, qps, recall = max(good, key=lambda r: r[1]) if good else max(rows, key=lambda r: r[2])
    print(f"RESULT stage1_exact_qps={exact_qps:.1f} stage1_index_qps={qps:.1f} index_recall_at_50={recall:.4f} "
          f"peak_rss_mb={rss.peak / 2**20:.0f} stage1_naive_qps={len(queries) / naive_s:.2f} index_speedup={qps / exact_qps:.1f} index_nprobe={nprobe}{extra}")


def device_run(args, queries, gallery, relevant, top, rank, exact_qps) -> str:
    """Part 4: the exact search in torch on ``args.device``; its RESULT fields."""
    import torch

    from vgrc.evaluators.index.device_exact import device_exact_topk

    cuda = args.device.startswith("cuda")
    device_exact_topk(queries[:64], gallery[:50_000], args.k, relevant[:64], device=args.device)  # warm-up: context, kernels
    if cuda:
        torch.cuda.synchronize(args.device)
        torch.cuda.reset_peak_memory_stats(args.device)
    t0 = time.perf_counter()
    d_top, _, d_rank = device_exact_topk(queries, gallery, args.k, relevant, device=args.device)
    device_s = time.perf_counter() - t0  # the arrays are back on the host: nothing left in flight
    qps = len(queries) / device_s
    recall = float(np.mean([len(np.intersect1d(a, b)) / args.k for a, b in zip(d_top, top)]))
    same_rank = float(np.mean(d_rank == rank))
    peak = torch.cuda.max_memory_allocated(args.device) / 2**20 if cuda else float("nan")
    name = torch.cuda.get_device_name(args.device) if cuda else "cpu"
    print(f"exact on {args.device} ({name}, torch): {device_s:.2f} s, {qps:,.0f} queries/s ({qps / exact_qps:.1f}× the CPU's exact), "
          f"device peak {peak:,.0f} MB; against the CPU run: recall@{args.k} {recall:.5f}, equal ranks {same_rank:.5f}", flush=True)
    return (f"stage1_device_exact_qps={qps:.1f} device_exact_speedup={qps / exact_qps:.1f} device_vs_cpu_recall_at_50={recall:.5f} "
            f"device_vs_cpu_same_rank={same_rank:.5f} device_peak_mb={peak:.0f}")


if __name__ == "__main__":
    sys.exit(main())
