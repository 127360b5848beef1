"""FAISS indices for galleries that outgrow exact search (``vgrc eval --index flat|ivf|hnsw``).

- ``flat`` — ``IndexFlatIP``: exact inner product with FAISS's kernels.
- ``ivf`` — ``IndexIVFFlat`` over ``nlist = √N`` k-means lists (trained on a seeded
  sample of at most 64 points per list), ``--nprobe`` lists searched per query.
- ``hnsw`` — ``IndexHNSWFlat`` (M = 32), ``--ef-search`` candidates per query.

The index is built from the gallery's embeddings (read from the embedding cache) and saved
under ``CACHE/index/``, named by the gallery's content hash, the kind and its build
parameters, and reused by every later run on the same gallery (written atomically; a
damaged file is rebuilt). Under ``--shards``, rank 0 builds it and the other ranks load it.
With faiss-gpu and ``--device cuda`` the search runs on the GPU (flat and IVF; HNSW has no
GPU version), holding its ``StandardGpuResources`` for as long as the GPU index is used:
SWIG gives the index only a raw pointer to them.

Every run measures the index against exact search on a seeded sample of queries
(``recall_sample``, default 1,000): shortlist recall@k = |index top-k ∩ exact top-k| / k,
averaged. Ranks: a relevant image beyond the index's top-k has no exact rank (that would
need the full scan the index avoids): it is reported as -1, i.e. not retrieved.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from vgrc.evaluators.errors import InvalidInputError

__all__ = ["faiss_search", "require_faiss", "gallery_hash"]


def require_faiss() -> None:
    """One clear line when FAISS is not installed (checked before any work)."""
    import importlib.util

    if importlib.util.find_spec("faiss") is None:
        raise InvalidInputError("--index flat/ivf/hnsw needs FAISS: pip install faiss-cpu (or faiss-gpu), or use --index exact")


def gallery_hash(gallery: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(gallery, dtype=np.float32).tobytes()).hexdigest()[:20]


def _build(kind: str, gallery: np.ndarray, seed: int):
    import faiss

    d = gallery.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    elif kind == "ivf":
        nlist = _nlist(len(gallery))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        train = gallery[np.sort(rng.choice(len(gallery), size=min(len(gallery), 64 * nlist), replace=False))]
        index.cp.seed = seed
        index.train(train)
    else:
        raise InvalidInputError(f"unknown --index {kind!r}")
    index.add(gallery)
    return index


def _params(kind: str, n: int) -> str:
    return {"flat": "", "hnsw": "-M32-efc80", "ivf": f"-nlist{_nlist(n)}"}[kind]


def _nlist(n: int) -> int:
    """√N inverted lists (at least 39 training points each)."""
    return max(1, min(n // 39, int(round(np.sqrt(n)))))


def faiss_search(queries: np.ndarray, gallery: np.ndarray, k: int, relevant, *, kind: str, store: str | os.PathLike | None,
                 nprobe: int = 32, ef_search: int = 128, device: str = "cpu", seed: int = 0, recall_sample: int = 1000):
    """``(topk, scores, rank, info)`` from a FAISS index (built or loaded)."""
    import faiss

    from vgrc.evaluators.dataset import atomic_write_bytes
    from vgrc.evaluators.index.exact import exact_topk

    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, len(gallery))
    info = {"index": kind, "k": k}
    path = None if store is None else Path(store) / f"{gallery_hash(gallery)}-{kind}{_params(kind, len(gallery))}.faiss"
    from vgrc.evaluators import sharding

    t0 = time.perf_counter()
    index = None
    # under a launcher rank 0 builds and saves the index while the others wait, then load it:
    # one build, not one per rank (an IVF over 1M vectors takes ~24 s of every core)
    shared = path is not None and sharding.world()[1] > 1
    if shared and not sharding.is_main():
        sharding.barrier()
    if path is not None and path.is_file():
        try:
            index = faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
            info["loaded"] = str(path)
        except RuntimeError:  # a damaged file: rebuilt below
            index = None
    if index is None:
        index = _build(kind, gallery, seed)
        info["built"] = True
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, faiss.serialize_index(index).tobytes())
            info["saved"] = str(path)
    if shared and sharding.is_main():
        sharding.barrier()
    info["build_or_load_seconds"] = time.perf_counter() - t0
    if kind == "ivf":
        faiss.extract_index_ivf(index).nprobe = nprobe
        info["nprobe"] = nprobe
    if kind == "hnsw":
        index.hnsw.efSearch = max(ef_search, k)
        info["ef_search"] = index.hnsw.efSearch
    gpu_resources = None  # must outlive every use of the GPU index (faiss issue #505: freed resources crash the search)
    if device.startswith("cuda") and hasattr(faiss, "StandardGpuResources") and kind != "hnsw":
        gpu_resources = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(gpu_resources, int(device.partition(":")[2] or 0), index)
        info["gpu"] = True
    t0 = time.perf_counter()
    scores, topk = index.search(queries, k)
    info["search_seconds"] = time.perf_counter() - t0
    del index, gpu_resources  # the index first, then the resources it used
    info["queries_per_second"] = len(queries) / max(info["search_seconds"], 1e-9)
    topk, scores = topk.astype(np.int64), scores.astype(np.float32)
    short = np.flatnonzero((topk < 0).any(axis=1))  # fewer than k found (IVF: too few lists probed): exact for those
    if short.size:
        topk[short], scores[short], _ = exact_topk(queries[short], gallery, k, [np.zeros(0, np.int64)] * len(short))
    info["rows_completed_by_exact_search"] = int(short.size)
    rank = np.full(len(queries), -1, np.int64)
    for q, rel in enumerate(relevant):
        hits = np.flatnonzero(np.isin(topk[q], rel)) if len(rel) else []
        if len(hits):
            rank[q] = hits[0]
    # shortlist recall@k against exact search on a seeded sample
    sample = np.random.default_rng(seed).choice(len(queries), size=min(recall_sample, len(queries)), replace=False)
    exact, _, _ = exact_topk(queries[sample], gallery, k, [np.zeros(0, np.int64)] * len(sample))
    info["recall_sample"] = len(sample)
    info[f"recall@{k}_vs_exact"] = float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(topk[sample], exact)]))
    return topk, scores, rank, info
