"""Exact top-k by inner product on a torch device (``vgrc eval --device cuda``).

The same contract as :func:`~vgrc.evaluators.index.exact.exact_topk` — top-k indices and
scores in (score descending, gallery index ascending) order, and the full-gallery rank of
each query's first relevant image — computed where the model runs. A GPU scores a
1,000,000-image gallery in query × gallery blocks at matrix-product speed, where the CPU
path is bound by its cores.

Ties, exactly. Each score is turned into one 64-bit key whose order is the ranking's order:
the high 32 bits are the float32 score's bits mapped to a signed integer of the same order
(negative floats have their magnitude bits flipped; −0.0 is made +0.0 first, so it ties with
+0.0 as floats do; NaN is put below −inf), the low 32 bits are ``2³² − 1 − gallery index``,
so that of two equal scores the lower index has the larger key. No two keys are equal, so
``torch.topk`` on keys — whatever it does with ties — gives the unique (score desc, index
asc) order, and the scores are read back from the keys bit for bit.

Scores are float32 matrix products with TF32 turned off for the search (torch's
"highest" float32 matmul precision, restored afterwards). Like the CPU path's BLAS, the
device's products round in their own order, so scores (and near-tie orders) may differ from
a CPU run in the last bits: each run is exact with respect to its own products.

The rank of the first relevant image beyond the top k is counted over the same block
products, computed again (the same shapes on the same inputs run the same kernel, so they
give the same floats): the keys above that image's key.

Memory on the device: the gallery (kept there when it takes at most half the free memory,
else copied block by block for every query block) plus one block of ``query_chunk ×
gallery_chunk`` scores and their keys (12 bytes per score).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np

__all__ = ["device_exact_topk", "score_keys", "keys_to_scores", "keys_to_indices"]

_LOW = 0xFFFFFFFF


def score_keys(S, offset: int):
    """int64 keys of a float32 score block ``S`` (n, w) whose columns are gallery indices
    ``offset … offset + w − 1``: key order = (score desc, index asc) order."""
    import torch

    S = S + 0.0  # −0.0 → +0.0: equal floats get equal high halves
    bits = S.view(torch.int32)
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    bits = torch.where(torch.isnan(S), torch.iinfo(torch.int32).min, bits)
    low = _LOW - torch.arange(offset, offset + S.shape[1], device=S.device, dtype=torch.int64)
    return bits.to(torch.int64) * 2**32 + low  # a product, not a shift: exact for negative halves too


def keys_to_scores(keys):
    """The float32 scores that :func:`score_keys` encoded."""
    import torch

    bits = torch.div(keys, 2**32, rounding_mode="floor").to(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).view(torch.float32)


def keys_to_indices(keys):
    """The gallery indices that :func:`score_keys` encoded."""
    return _LOW - (keys & _LOW)


@contextmanager
def _highest_precision():
    """float32 products in full float32 (no TF32) for the duration of the search."""
    import torch

    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _gallery_blocks(gallery: np.ndarray, gc: int, device):
    """The gallery's blocks on ``device``: resident when it fits in half the free memory,
    else a generator that copies each block when asked (again for every query block)."""
    import torch

    dev = torch.device(device)

    def copied():
        return ((g0, torch.from_numpy(gallery[g0 : g0 + gc]).to(dev)) for g0 in range(0, len(gallery), gc))

    if dev.type == "cuda" and gallery.nbytes > torch.cuda.mem_get_info(dev)[0] // 2:
        return copied
    resident = list(copied())
    return lambda: iter(resident)


def device_exact_topk(queries: np.ndarray, gallery: np.ndarray, k: int, relevant: Sequence[np.ndarray], *, device: str,
                      query_chunk: int = 4096, gallery_chunk: int | None = None, block_elements: int = 2**26,
                      on_progress: Callable[[int, int], None] | None = None):
    """``(topk (Q, k) int64, scores (Q, k) float32, rank (Q,) int64)`` of inner-product
    search on ``device`` (``"cuda"``, ``"cuda:1"``, ``"cpu"`` …).

    ``block_elements`` bounds one block of scores (query_chunk × gallery_chunk; 2²⁶ =
    256 MB of float32 and 512 MB of keys) when ``gallery_chunk`` is not given.
    ``on_progress(queries done, queries)`` after each query chunk.
    """
    import torch

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    Q, G = len(queries), len(gallery)
    if G >= 2**32:
        raise ValueError(f"device search indexes galleries below 2**32 images, got {G}")
    k = min(k, G)
    gc = gallery_chunk or int(min(G, max(1024, block_elements // max(1, query_chunk))))
    topk = np.empty((Q, k), dtype=np.int64)
    scores = np.empty((Q, k), dtype=np.float32)
    rank = np.full(Q, -1, dtype=np.int64)
    if Q == 0 or k == 0:
        return topk, scores, rank
    dev = torch.device(device)
    blocks = _gallery_blocks(gallery, gc, dev)
    with _highest_precision(), torch.inference_mode():
        for s in range(0, Q, query_chunk):
            e = min(Q, s + query_chunk)
            n = e - s
            q = torch.from_numpy(queries[s:e]).to(dev)
            rows = np.concatenate([np.full(len(relevant[s + r]), r, np.int64) for r in range(n)] or [np.zeros(0, np.int64)])
            cols = np.concatenate([np.asarray(relevant[s + r], np.int64) for r in range(n)] or [np.zeros(0, np.int64)])
            rows_d, cols_d = torch.from_numpy(rows).to(dev), torch.from_numpy(cols).to(dev)
            rel_keys = torch.full((len(cols),), torch.iinfo(torch.int64).min, dtype=torch.int64, device=dev)
            best_keys = None
            for g0, g in blocks():
                keys = score_keys(q @ g.T, g0)
                top = torch.topk(keys, min(k, keys.shape[1]), dim=1, sorted=False).values
                best_keys = top if best_keys is None else torch.topk(torch.cat([best_keys, top], 1), min(k, best_keys.shape[1] + top.shape[1]), dim=1, sorted=False).values
                inside = (cols_d >= g0) & (cols_d < g0 + keys.shape[1])
                rel_keys[inside] = keys[rows_d[inside], cols_d[inside] - g0]
            best_keys = torch.sort(best_keys, dim=1, descending=True).values
            topk[s:e] = keys_to_indices(best_keys).cpu().numpy()
            scores[s:e] = keys_to_scores(best_keys).cpu().numpy()
            if len(cols):
                rank[s:e] = _first_relevant_rank(q, blocks, best_keys, rows_d, rel_keys, n)
            if on_progress:
                on_progress(e, Q)
    return topk, scores, rank


def _first_relevant_rank(q, blocks, best_keys, rows_d, rel_keys, n: int) -> np.ndarray:
    """Each row's 0-based rank of its first relevant image (its largest key; -1 without
    one): its position in the top k, or else the count of keys above it over the same block
    products."""
    import torch

    dev = best_keys.device
    first = torch.full((n,), torch.iinfo(torch.int64).min, dtype=torch.int64, device=dev).scatter_reduce(0, rows_d, rel_keys, "amax")
    has = torch.zeros(n, dtype=torch.bool, device=dev)
    has[rows_d] = True
    hit = best_keys == first[:, None]
    found = hit.any(dim=1)
    pos = torch.where(found, hit.to(torch.int32).argmax(dim=1), -1)
    need = has & ~found
    if bool(need.any()):
        counts = torch.zeros(n, dtype=torch.int64, device=dev)
        for g0, g in blocks():
            counts += (score_keys(q @ g.T, g0) > first[:, None]).sum(dim=1)
        pos = torch.where(need, counts, pos)
    return torch.where(has, pos, -1).cpu().numpy()
