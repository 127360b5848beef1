r"""Second-stage rerankers over per-object embeddings (paper §4.3–4.4, App. J).

Per-object embeddings come from the annotations of queries and candidates alike (no
detector): each object's phrase, e.g. "red circle", is embedded with every prompt
template, and the results are averaged and normalised (Eq. 3/7). A row with fewer
objects is padded, and the padding gets zero weight.

Rerankers (registry :data:`RERANKERS`), each ``(ctx, shortlist) -> scores (Q, k)``,
higher = better:

- ``none`` — stage-1 order.
- ``hungarian`` — minus the mean cost of the best one-to-one object matching.
- ``fgw`` — minus the Fused Gromov–Wasserstein value (Eq. 4), cosine-distance costs
  :math:`M_{ij} = 1 - \langle x_i, y_j \rangle` and structure matrices
  :math:`C = 1 - X X^\top`, with uniform weights over real objects.
- ``min`` / ``softmin`` — App. J's two-stage baselines: each query object is scored
  against the candidate's *image* embedding, and the scores are aggregated by their
  minimum, or by a soft minimum :math:`-\tau \log \sum_o e^{-s_o/\tau}`.

Candidates are reordered by score. Ties keep their stage-1 order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vgrc.evaluators.errors import InvalidInputError

__all__ = ["ObjectTable", "RerankContext", "RERANKERS", "list_rerankers", "rerank"]


@dataclass
class ObjectTable:
    """Per-row objects as indices into a table of unique phrase embeddings.

    ``index`` (rows, n_max) points into ``phrases`` (U + 1, d); padding points at the last,
    all-zero row and has zero ``weight`` (rows, n_max). Weights are uniform over a row's
    real objects.
    """

    index: np.ndarray
    weight: np.ndarray
    phrases: np.ndarray

    @classmethod
    def build(cls, rows_objects: list[list[str]], phrase_index: dict[str, int], phrases: np.ndarray) -> "ObjectTable":
        pad = len(phrases)
        n_max = max(1, max((len(o) for o in rows_objects), default=1))
        index = np.full((len(rows_objects), n_max), pad, np.int64)
        weight = np.zeros((len(rows_objects), n_max))
        for r, objs in enumerate(rows_objects):
            index[r, : len(objs)] = [phrase_index[ph] for ph in objs]
            if objs:
                weight[r, : len(objs)] = 1.0 / len(objs)
        table = np.vstack([phrases, np.zeros((1, phrases.shape[1]), phrases.dtype)])
        return cls(index, weight, table)

    @property
    def emb(self) -> np.ndarray:
        return self.phrases[self.index]


@dataclass
class RerankContext:
    """Everything a reranker may use. Query-side arrays are indexed by query, candidate
    side by gallery index; both object tables share one phrase table. ``query_objects_mapped``
    (Q, n_max, d) is the query objects in the stage-1 query space (ridge-mapped when
    stage 1 maps), for the image-embedding baselines."""

    query_objects: ObjectTable
    gallery_objects: ObjectTable
    gallery_images: np.ndarray
    query_objects_mapped: np.ndarray
    alpha: float = 0.5
    solver: str = "cg"
    tau: float = 0.05
    chunk: int = 2048
    gram_limit: int = 8192

    def __post_init__(self):
        P = self.query_objects.phrases.astype(np.float64)
        # phrase-by-phrase cosine distances, computed once when the table is small enough
        self._dist = 1.0 - P @ P.T if len(P) <= self.gram_limit else None

    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine distances between phrase indices ``a (..., n)`` and ``b (..., m)``: (..., n, m)."""
        if self._dist is not None:
            return self._dist[a[..., :, None], b[..., None, :]]
        P = self.query_objects.phrases.astype(np.float64)
        return 1.0 - P[a] @ np.swapaxes(P[b], -1, -2)


def _problems(ctx: RerankContext, q_idx: np.ndarray, shortlist: np.ndarray):
    """Batched M, C1, C2, p, q for queries ``q_idx`` × their shortlists, flattened."""
    qi = ctx.query_objects.index[q_idx]  # (c, n)
    gi = ctx.gallery_objects.index[shortlist]  # (c, k, m)
    c, k, m = gi.shape
    n = qi.shape[1]
    M = ctx.distances(np.broadcast_to(qi[:, None, :], (c, k, n)), gi)
    C1 = np.repeat(ctx.distances(qi, qi), k, axis=0)
    C2 = ctx.distances(gi, gi).reshape(c * k, m, m)
    # exact symmetry and a zero diagonal (float32 embeddings are not bit-symmetric)
    C1 = 0.5 * (C1 + C1.transpose(0, 2, 1))
    C2 = 0.5 * (C2 + C2.transpose(0, 2, 1))
    C1[:, np.arange(n), np.arange(n)] = 0.0
    C2[:, np.arange(m), np.arange(m)] = 0.0
    p = np.repeat(ctx.query_objects.weight[q_idx], k, axis=0)
    q = ctx.gallery_objects.weight[shortlist].reshape(c * k, m)
    return M.reshape(c * k, n, m), C1, C2, p, q


def _score_none(ctx, shortlist, stage1_scores):
    return stage1_scores


def _solve_in_chunks(ctx, shortlist, cost_of) -> np.ndarray:
    """Minus ``cost_of(M, C1, C2, p, q)`` for every (query, candidate), chunk by chunk."""
    out = np.empty(shortlist.shape)
    for s in range(0, len(shortlist), ctx.chunk):
        idx = np.arange(s, min(len(shortlist), s + ctx.chunk))
        out[idx] = -np.asarray(cost_of(*_problems(ctx, idx, shortlist[idx]))).reshape(len(idx), -1)
    return out


def _score_hungarian(ctx, shortlist, stage1_scores):
    from vgrc.evaluators.solvers import assignment_cost

    return _solve_in_chunks(ctx, shortlist, lambda M, C1, C2, p, q: assignment_cost(M, p, q))


def _score_fgw(ctx, shortlist, stage1_scores):
    from vgrc.evaluators.solvers import fgw_cost

    return _solve_in_chunks(ctx, shortlist, lambda M, C1, C2, p, q: fgw_cost(M, C1, C2, p, q, alpha=ctx.alpha, solver=ctx.solver))


def _aggregate_object_image_scores(ctx, shortlist, aggregate) -> np.ndarray:
    """Cosine of each (mapped) query object with each shortlisted image, aggregated over
    the real objects of the query: ``aggregate(sims (c, k, n), present (c, 1, n)) -> (c, k)``."""
    out = np.empty(shortlist.shape)
    for s in range(0, len(shortlist), ctx.chunk):
        idx = np.arange(s, min(len(shortlist), s + ctx.chunk))
        sims = np.einsum("qnd,qkd->qkn", ctx.query_objects_mapped[idx], ctx.gallery_images[shortlist[idx]])
        out[idx] = aggregate(sims, (ctx.query_objects.weight[idx] > 0)[:, None, :])
    return out


def _score_min(ctx, shortlist, stage1_scores):
    return _aggregate_object_image_scores(ctx, shortlist, lambda sims, present: np.where(present, sims, np.inf).min(axis=2))


def _score_softmin(ctx, shortlist, stage1_scores):
    def softmin(sims, present):
        z = np.where(present, -sims / ctx.tau, -np.inf)
        zmax = z.max(axis=2, keepdims=True)
        return -ctx.tau * (np.log(np.exp(z - zmax).sum(axis=2)) + zmax[..., 0])

    return _aggregate_object_image_scores(ctx, shortlist, softmin)


#: name -> scorer(ctx, shortlist (Q, k), stage1_scores (Q, k)) -> scores (Q, k), higher is better
RERANKERS: dict[str, Callable] = {
    "none": _score_none,
    "hungarian": _score_hungarian,
    "fgw": _score_fgw,
    "min": _score_min,
    "softmin": _score_softmin,
}


def list_rerankers() -> list[str]:
    return list(RERANKERS)


def rerank(name: str, ctx: RerankContext, shortlist: np.ndarray, stage1_scores: np.ndarray) -> np.ndarray:
    """The shortlist reordered by the named reranker (stable: ties keep stage-1 order)."""
    if name not in RERANKERS:
        raise InvalidInputError(f"unknown reranker {name!r}; valid: {', '.join(RERANKERS)}")
    scores = RERANKERS[name](ctx, shortlist, stage1_scores)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(shortlist, order, axis=1)
