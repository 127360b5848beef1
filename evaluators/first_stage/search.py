r"""Exact first-stage search (paper §4.1 Eq. 1): :func:`cosine_topk` gives the shortlist by
cosine similarity, plus the exact rank of every query's first relevant image in the full
gallery order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


#: with ``--device cuda``, the exact search runs on the GPU from this many scores (queries ×
#: gallery) on: 10,000 queries × 1,000,000 images take ~70 s on 2 CPU cores (BENCHMARKS.md),
#: while importing torch and starting CUDA cost seconds that a smaller search does not
#: repay; a fully cached run below it stays torch-free
DEVICE_SEARCH_MIN_SCORES = 10**10

__all__ = ["normalize", "search_device", "cosine_topk", "topk_by_scores"]


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(n > 0, n, 1)).astype(np.float32)


def search_device(device: str, n_queries: int, n_gallery: int) -> str:
    """Where :func:`cosine_topk` searches: ``device`` when it is CUDA and the search has at
    least ``DEVICE_SEARCH_MIN_SCORES`` scores, else ``"cpu"``. By size alone, so the same
    command on the same data searches in the same place on every run."""
    big = n_queries * n_gallery >= DEVICE_SEARCH_MIN_SCORES
    return str(device) if str(device).startswith("cuda") and big else "cpu"


def cosine_topk(queries: np.ndarray, gallery: np.ndarray, k: int, relevant: Sequence[np.ndarray], chunk: int = 1024,
                device: str = "cpu", on_progress: Callable[[int, int], None] | None = None):
    """Top-k gallery indices per query and the full-gallery rank of the first relevant one.

    Ties are ordered by gallery index, so results are deterministic. On ``device="cuda"``
    (or ``cuda:N``), a search of at least ``DEVICE_SEARCH_MIN_SCORES`` scores runs there, in
    torch (:func:`~vgrc.evaluators.index.device_exact.device_exact_topk`); others on the
    CPU (:func:`search_device`). ``on_progress(queries done, queries)`` after each chunk.

    Returns
    -------
    topk : int array (Q, k)
    scores : float32 array (Q, k)
    rank : int array (Q,) — 0-based rank in the full ranking (-1: no relevant image)
    """
    if search_device(device, len(queries), len(gallery)) != "cpu":
        from vgrc.evaluators.index.device_exact import device_exact_topk
        from vgrc.evaluators.sharding import rank_device

        return device_exact_topk(queries, gallery, k, relevant, device=rank_device(device), on_progress=on_progress)
    from vgrc.evaluators.index.exact import exact_topk

    return exact_topk(queries, gallery, k, relevant, query_chunk=chunk, on_progress=on_progress)


def topk_by_scores(score_rows, Q: int, G: int, k: int, relevant: Sequence[np.ndarray], chunk: int = 1024):
    """:func:`cosine_topk` for any score: ``score_rows(start, stop)`` gives the (stop −
    start, G) scores of those queries (higher = better), so only one chunk is in memory."""
    from vgrc.evaluators.index.exact import topk_over_chunks

    return topk_over_chunks(lambda s, e: [(0, score_rows(s, e))], Q, G, k, relevant, chunk)
