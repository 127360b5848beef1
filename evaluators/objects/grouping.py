"""Grouping dense patch features into regions (``--candidate-objects patches``): batched
seeded k-means (k-means++ start, Lloyd steps), the mean silhouette per image, and
:func:`group_patches`, which picks K per image and returns the regions' embeddings and
weights. Every image of a batch is grouped at once, in numpy."""

from __future__ import annotations

import numpy as np

__all__ = ["AUTO_K", "kmeans_batched", "silhouettes", "group_patches"]

#: the K tried by --regions 0
AUTO_K = range(2, 9)


def kmeans_batched(X: np.ndarray, k: int, seed: int = 0, iters: int = 25) -> np.ndarray:
    """Labels (B, P) of k-means with ``k`` clusters on every ``X[b]`` (P, f), seeded
    k-means++ start (the same seed for every image), ``iters`` Lloyd steps. An emptied
    cluster keeps its centre."""
    B, P, _ = X.shape
    rng = np.random.default_rng(seed)
    rows = np.arange(B)
    centres = [X[rows, rng.integers(P, size=B)]]
    d2 = ((X - centres[0][:, None]) ** 2).sum(-1)
    for _ in range(1, k):
        u = rng.random(B)[:, None]
        cdf = np.cumsum(d2, axis=1)
        total = cdf[:, -1:]
        pick = np.where(total[:, 0] > 0, (cdf < u * total).sum(1), 0).clip(0, P - 1)
        centres.append(X[rows, pick])
        d2 = np.minimum(d2, ((X - centres[-1][:, None]) ** 2).sum(-1))
    C = np.stack(centres, axis=1)  # (B, k, f)
    labels = np.zeros((B, P), np.int64)
    for _ in range(iters):
        dist = (X**2).sum(-1)[:, :, None] - 2 * np.einsum("bpf,bkf->bpk", X, C) + (C**2).sum(-1)[:, None, :]
        new = dist.argmin(-1)
        onehot = np.eye(k)[new]  # (B, P, k)
        counts = onehot.sum(1)
        sums = np.einsum("bpk,bpf->bkf", onehot, X)
        C = np.where(counts[:, :, None] > 0, sums / np.maximum(counts, 1)[:, :, None], C)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def silhouettes(D: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Mean silhouette (B,) of each image's labelling; ``D`` (B, P, P) pairwise distances.
    A point alone in its cluster scores 0 (Rousseeuw's convention)."""
    onehot = np.eye(k)[labels]  # (B, P, k)
    counts = onehot.sum(1)  # (B, k)
    sums = np.einsum("bpq,bqk->bpk", D, onehot)  # distance of each point to each cluster, summed
    own = np.take_along_axis(counts, labels, 1)  # (B, P)
    a = np.take_along_axis(sums, labels[:, :, None], 2)[:, :, 0] / np.maximum(own - 1, 1)
    mean_other = np.where(onehot > 0, np.inf, sums / np.where(counts[:, None, :] > 0, counts[:, None, :], np.nan))
    mean_other = np.where(np.isnan(mean_other), np.inf, mean_other)
    b = mean_other.min(-1)
    s = np.where((own > 1) & np.isfinite(b), (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return s.mean(1)


def group_patches(feats: np.ndarray, k: int, spatial_weight: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Regions of patch features ``feats`` (B, gh, gw, d): ``(emb (B, K, d), weight (B, K))``
    with K = ``k``, or (``k`` 0) the best K of :data:`AUTO_K` per image, padded with zero
    weight. Weights are the regions' shares of the patches."""
    B, gh, gw, d = feats.shape
    F = feats.reshape(B, gh * gw, d).astype(np.float64)
    yy, xx = np.meshgrid((np.arange(gh) + 0.5) / gh, (np.arange(gw) + 0.5) / gw, indexing="ij")
    pos = np.stack([xx.ravel(), yy.ravel()], 1) * spatial_weight
    X = np.concatenate([F, np.broadcast_to(pos, (B, gh * gw, 2))], axis=2)
    ks = [k] if k else [c for c in AUTO_K if c < gh * gw]
    if len(ks) == 1:
        labels = kmeans_batched(X, ks[0], seed)
    else:
        sq = (X**2).sum(-1)
        D = np.sqrt(np.maximum(sq[:, :, None] + sq[:, None, :] - 2 * np.einsum("bpf,bqf->bpq", X, X), 0))
        tries = [kmeans_batched(X, c, seed) for c in ks]
        best = np.stack([silhouettes(D, lab, c) for lab, c in zip(tries, ks)]).argmax(0)
        labels = np.stack([tries[best[b]][b] for b in range(B)])
    K = k or max(AUTO_K)
    onehot = np.eye(K)[labels]  # (B, P, K)
    counts = onehot.sum(1)
    emb = np.einsum("bpk,bpd->bkd", onehot, F)
    norm = np.linalg.norm(emb, axis=2, keepdims=True)
    emb = np.where(norm > 0, emb / np.where(norm > 0, norm, 1), 0.0)
    return emb.astype(np.float32), counts / (gh * gw)
