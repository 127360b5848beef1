"""Exact top-k by score, in query × gallery chunks.

Memory is O(query chunk × gallery chunk + queries × k): a 1,000,000-image gallery is
scored 1,024 queries × 65,536 images (256 MB of float32) at a time, never as the 53 GB
query × gallery matrix. Each chunk's scores are folded into a running top-k
(:class:`~vgrc.evaluators.index.kernels.TopK`); chunks come in gallery order, so ties keep
the lowest gallery index, exactly as a full sort by (score desc, index asc) would.

The full-gallery rank of each query's first relevant image (0-based; -1 without one):
the relevant images' scores are read from the same chunk products, so the rank is
consistent with the ranking. When that image is in the top k its position is the rank;
otherwise the chunks are scored again (the same products, so the same floats) and the
images ranked before it are counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from vgrc.evaluators.index.kernels import TopK, count_before

__all__ = ["exact_topk", "topk_over_chunks", "gallery_chunk_size"]

ScoreChunks = Callable[[int, int], Iterable[tuple[int, np.ndarray]]]


def gallery_chunk_size(n_gallery: int, query_chunk: int, memory_mb: float = 256.0) -> int:
    """Gallery rows per chunk so that one (query chunk × gallery chunk) float32 block fits ``memory_mb``."""
    return int(min(n_gallery, max(4096, memory_mb * 2**20 // (4 * max(1, query_chunk)))))


def exact_topk(queries: np.ndarray, gallery: np.ndarray, k: int, relevant: Sequence[np.ndarray], *, query_chunk: int = 1024,
               memory_mb: float = 256.0, gallery_chunk: int | None = None, on_progress: Callable[[int, int], None] | None = None):
    """``(topk (Q, k) int64, scores (Q, k) float32, rank (Q,) int64)`` of inner-product search;
    ``on_progress(queries done, queries)`` after each query chunk."""
    G = len(gallery)
    gc = gallery_chunk or gallery_chunk_size(G, query_chunk, memory_mb)
    gallery = np.asarray(gallery)

    def chunks(s: int, e: int):
        q = queries[s:e]
        for g0 in range(0, G, gc):
            yield g0, q @ gallery[g0 : g0 + gc].T  # BLAS reads the transposed view: no gallery copy

    return topk_over_chunks(chunks, len(queries), G, k, relevant, query_chunk, on_progress)


def topk_over_chunks(score_chunks: ScoreChunks, Q: int, G: int, k: int, relevant: Sequence[np.ndarray], query_chunk: int = 1024,
                     on_progress: Callable[[int, int], None] | None = None):
    """The engine behind :func:`exact_topk` for any score: ``score_chunks(start, stop)``
    yields ``(gallery offset, scores (stop − start, width))`` in increasing offset order,
    covering the gallery; it must give the same floats when called again."""
    k = min(k, G)
    topk = np.empty((Q, k), dtype=np.int64)
    scores = np.empty((Q, k), dtype=np.float32)
    rank = np.full(Q, -1, dtype=np.int64)
    for s in range(0, Q, query_chunk):
        e = min(Q, s + query_chunk)
        n = e - s
        rows = np.concatenate([np.full(len(relevant[s + r]), r, np.int64) for r in range(n)] or [np.zeros(0, np.int64)])
        cols = np.concatenate([np.asarray(relevant[s + r], np.int64) for r in range(n)] or [np.zeros(0, np.int64)])
        rel_scores = np.full(len(cols), -np.inf)
        state, kept, n_chunks = None, None, 0
        for g0, S in score_chunks(s, e):
            if state is None:
                state = TopK(n, k, S.dtype)
            state.push(S, g0)
            inside = (cols >= g0) & (cols < g0 + S.shape[1])
            rel_scores[inside] = S[rows[inside], cols[inside] - g0]
            kept, n_chunks = S, n_chunks + 1
        topk[s:e], scores[s:e] = state.idx, state.val
        if len(cols) == 0:
            if on_progress:
                on_progress(e, Q)
            continue  # no relevant image in this chunk: no ranks to find
        # each row's first relevant image: score desc, then index asc
        order = np.lexsort((cols, -rel_scores, rows))
        first = order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
        best = np.full(n, -1, np.int64)
        sb = np.full(n, np.nan)
        best[rows[first]], sb[rows[first]] = cols[first], rel_scores[first]
        hit = state.idx == best[:, None]
        found = hit.any(axis=1)
        rank[s:e] = np.where(found, hit.argmax(axis=1), -1)
        need = (best >= 0) & ~found
        if need.any():  # beyond the top k: count what ranks before it, over the same chunk products
            counts = np.zeros(n, np.int64)
            masked = np.where(need, best, -1)
            chunks = [(0, kept)] if n_chunks == 1 else score_chunks(s, e)
            for g0, S in chunks:
                count_before(S, g0, np.where(need, sb, 0).astype(S.dtype), masked, counts)
            rank[s:e] = np.where(need, counts, rank[s:e])
        if on_progress:
            on_progress(e, Q)
    return topk, scores, rank
