r"""Second-stage rerankers over per-object embeddings (paper §4.3–4.4, App. A, J).

Per-object embeddings come from the annotations of queries and candidates alike (no
detector; an oracle, as in the paper): each object's phrase, e.g. "red circle", is
embedded with every prompt template, and the results are averaged and normalised
(Eq. 3/7). A row with fewer objects is padded, and the padding gets zero weight.

Rerankers (registry :data:`RERANKERS`), each ``(ctx, shortlist, stage1_scores) -> scores
(Q, k)``, higher = better:

- ``none`` — stage-1 order.
- ``hungarian`` — minus the padded-square matching cost per query object
  (:func:`~vgrc.evaluators.solvers.assignment_cost`: an unmatched query object costs
  ``unmatched_cost``, a surplus candidate object ``surplus_cost``).
- ``fgw`` — minus the Fused Gromov–Wasserstein value (Eq. 4), cosine-distance costs
  :math:`M_{ij} = 1 - \langle x_i, y_j \rangle` and structure matrices
  :math:`C = 1 - X X^\top`, with uniform weights over real objects.
- ``min`` / ``softmin`` — App. A's unsteered aggregation: each query object is scored
  against the candidate's *image* embedding, and the scores are aggregated by their
  minimum, or by a soft minimum :math:`-\tau \log \sum_o e^{-s_o/\tau}`.
- ``steer-min`` / ``steer-softmin`` — App. J's two-stage baselines: the same, with every
  query object first *steered* along its attribute direction
  (:func:`steer_objects`).

Memory: the (query, candidate) problems are grouped by their real set sizes (query size
exact, candidate size rounded up to a power of two) and solved in batches sized by
``memory_budget_mb``, so one object-heavy image does not pad a whole chunk (Visual Genome
images carry up to ~100 objects).

Candidates are reordered by score. Ties keep their stage-1 order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vgrc.evaluators.errors import InvalidInputError

__all__ = ["ObjectTable", "RerankContext", "RERANKERS", "list_rerankers", "rerank", "rerank_scores", "rerank_scores_sharded", "order_by_scores", "steer_objects", "PER_OBJECT_RERANKERS"]


@dataclass
class ObjectTable:
    """Per-row objects as indices into a table of unique phrase embeddings.

    ``index`` (rows, n_max) points into ``phrases`` (U + 1, d); padding points at the last,
    all-zero row and has zero ``weight`` (rows, n_max). Weights are uniform over a row's
    real objects, which come first in each row.
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
    def sizes(self) -> np.ndarray:
        """Real objects per row."""
        return (self.weight > 0).sum(axis=1)

    def emb(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Object embeddings (rows, n_max, d), zero for padding; of ``rows`` only when given."""
        index = self.index if rows is None else self.index[rows]
        return self.phrases[index]


def steer_objects(objects: np.ndarray, directions: np.ndarray, alpha: float) -> np.ndarray:
    r"""App. J's per-object steering: :math:`o' = \mathrm{normalize}(o + \alpha d_o)`.

    ``objects`` (..., d) and ``directions`` (..., d) align; a zero direction leaves the
    object unchanged (up to normalisation), a zero object (padding) stays zero.
    """
    out = objects + alpha * directions
    norm = np.linalg.norm(out, axis=-1, keepdims=True)
    present = np.linalg.norm(objects, axis=-1, keepdims=True) > 0
    return np.where(present, out / np.where(norm > 0, norm, 1), 0.0).astype(np.float32)


@dataclass
class RerankContext:
    """Everything a reranker may use.

    Query-side tables are indexed by query, candidate side by gallery index; both share one
    phrase table. ``map_query`` maps query-side embeddings into the stage-1 query space
    (the ridge mapper when stage 1 maps; identity otherwise), for the image-embedding
    baselines. ``object_directions`` (U + 1, d), when given, is each phrase's App. J
    steering direction, used by the ``steer-*`` rerankers with strength ``steer_alpha``.
    """

    query_objects: ObjectTable
    gallery_objects: ObjectTable
    gallery_images: np.ndarray
    map_query: Callable[[np.ndarray], np.ndarray] | None = None
    fgw_alpha: float = 0.5
    solver: str = "cg"
    epsilon: float = 0.01
    tau: float = 0.05
    unmatched_cost: float = 1.0
    surplus_cost: float = 0.0
    object_directions: np.ndarray | None = None
    steer_alpha: float = 0.5
    memory_budget_mb: float = 512.0
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

    def mapped_query_objects(self, rows: np.ndarray, steered: bool) -> np.ndarray:
        """Query objects of ``rows`` (c, n_max, d) in the stage-1 space, steered if asked."""
        X = self.query_objects.emb(rows).astype(np.float32)
        if steered:
            if self.object_directions is None:
                raise InvalidInputError("steered rerankers need per-object steering directions")
            X = steer_objects(X, self.object_directions[self.query_objects.index[rows]], self.steer_alpha)
        if self.map_query is not None:
            shape = X.shape
            present = (np.abs(X).sum(-1, keepdims=True) > 0)
            X = self.map_query(X.reshape(-1, shape[-1])).reshape(shape) * present
        return X


def _size_bucket(m: np.ndarray) -> np.ndarray:
    """Candidate set sizes rounded up to a power of two (1, 2, 4, 8, …)."""
    return (2 ** np.ceil(np.log2(np.maximum(m, 1)))).astype(np.int64)


def _pair_batches(ctx: RerankContext, shortlist: np.ndarray):
    """Yield ``(flat pair positions, n, m)`` groups of (query, candidate) pairs that share a
    padded problem size, each small enough for the memory budget."""
    Q, k = shortlist.shape
    nq = ctx.query_objects.sizes
    ng = ctx.gallery_objects.sizes
    qi = np.repeat(np.arange(Q), k)
    n = nq[qi]
    real_m = ng[shortlist.ravel()]
    m = _size_bucket(real_m)
    order = np.lexsort((qi, m, n))
    order = order[real_m[order] > 0]  # candidates without objects are not solved
    n_s, m_s = n[order], m[order]
    cuts = np.flatnonzero((np.diff(n_s) != 0) | (np.diff(m_s) != 0)) + 1
    for grp in np.split(order, cuts) if len(order) else []:
        gn, gm = int(n[grp[0]]), int(min(m[grp[0]], ctx.gallery_objects.index.shape[1]))
        per_problem = 8 * (3 * gn * gm + 2 * gn * gn + 2 * gm * gm + gn + gm) + 64
        size = max(1, int(ctx.memory_budget_mb * 2**20 // per_problem))
        for s in range(0, len(grp), size):
            yield grp[s : s + size], gn, gm


def _problems(ctx: RerankContext, qrows: np.ndarray, grows: np.ndarray, n: int, m: int):
    """Batched M, C1, C2, p, q for the pairs (qrows[i], grows[i]), trimmed to sizes n × m."""
    qi = ctx.query_objects.index[qrows, :n]
    gi = ctx.gallery_objects.index[grows, :m]
    M = ctx.distances(qi, gi)
    C1 = ctx.distances(qi, qi)
    C2 = ctx.distances(gi, gi)
    # exact symmetry and a zero diagonal (float32 embeddings are not bit-symmetric)
    C1 = 0.5 * (C1 + C1.transpose(0, 2, 1))
    C2 = 0.5 * (C2 + C2.transpose(0, 2, 1))
    C1[:, np.arange(n), np.arange(n)] = 0.0
    C2[:, np.arange(m), np.arange(m)] = 0.0
    p = ctx.query_objects.weight[qrows, :n]
    q = ctx.gallery_objects.weight[grows, :m]
    return M, C1, C2, p, q


def _solve_pairs(ctx: RerankContext, shortlist: np.ndarray, cost_of) -> np.ndarray:
    """Minus ``cost_of(M, C1, C2, p, q)`` for every (query, candidate), size-bucketed.

    A candidate without objects has nothing to match: it scores ``-inf`` and ranks last
    among the shortlisted candidates (stage-1 order among such candidates).
    """
    Q, k = shortlist.shape
    flat_g = shortlist.ravel()
    out = np.full(Q * k, -np.inf)
    for pos, n, m in _pair_batches(ctx, shortlist):
        out[pos] = -np.asarray(cost_of(*_problems(ctx, pos // k, flat_g[pos], n, m)))
    return out.reshape(Q, k)


def _score_none(ctx, shortlist, stage1_scores):
    return stage1_scores


def _score_hungarian(ctx, shortlist, stage1_scores):
    from vgrc.evaluators.solvers import assignment_cost

    return _solve_pairs(
        ctx, shortlist, lambda M, C1, C2, p, q: assignment_cost(M, p, q, unmatched_cost=ctx.unmatched_cost, surplus_cost=ctx.surplus_cost)
    )


def _score_fgw(ctx, shortlist, stage1_scores):
    from vgrc.evaluators.solvers import fgw_cost

    return _solve_pairs(ctx, shortlist, lambda M, C1, C2, p, q: fgw_cost(M, C1, C2, p, q, alpha=ctx.fgw_alpha, solver=ctx.solver, epsilon=ctx.epsilon))


def _aggregate_object_image_scores(ctx, shortlist, aggregate, steered: bool) -> np.ndarray:
    """Cosine of each (mapped, optionally steered) query object with each shortlisted
    image, aggregated over the query's real objects:
    ``aggregate(sims (c, k, n), present (c, 1, n)) -> (c, k)``."""
    out = np.empty(shortlist.shape)
    d = ctx.gallery_images.shape[1]
    n_max = ctx.query_objects.index.shape[1]
    chunk = max(1, int(ctx.memory_budget_mb * 2**20 // (4 * d * (n_max + shortlist.shape[1]) * 3)))
    for s in range(0, len(shortlist), chunk):
        idx = np.arange(s, min(len(shortlist), s + chunk))
        X = ctx.mapped_query_objects(idx, steered)
        sims = np.einsum("qnd,qkd->qkn", X, ctx.gallery_images[shortlist[idx]])
        out[idx] = aggregate(sims, (ctx.query_objects.weight[idx] > 0)[:, None, :])
    return out


def _min(sims, present):
    return np.where(present, sims, np.inf).min(axis=2)


def _softmin(tau):
    def agg(sims, present):
        z = np.where(present, -sims / tau, -np.inf)
        zmax = z.max(axis=2, keepdims=True)
        return -tau * (np.log(np.exp(z - zmax).sum(axis=2)) + zmax[..., 0])

    return agg


def _score_min(ctx, shortlist, stage1_scores):
    return _aggregate_object_image_scores(ctx, shortlist, _min, steered=False)


def _score_softmin(ctx, shortlist, stage1_scores):
    return _aggregate_object_image_scores(ctx, shortlist, _softmin(ctx.tau), steered=False)


def _score_steer_min(ctx, shortlist, stage1_scores):
    return _aggregate_object_image_scores(ctx, shortlist, _min, steered=True)


def _score_steer_softmin(ctx, shortlist, stage1_scores):
    return _aggregate_object_image_scores(ctx, shortlist, _softmin(ctx.tau), steered=True)


#: name -> scorer(ctx, shortlist (Q, k), stage1_scores (Q, k)) -> scores (Q, k), higher is better
RERANKERS: dict[str, Callable] = {
    "none": _score_none,
    "hungarian": _score_hungarian,
    "fgw": _score_fgw,
    "min": _score_min,
    "softmin": _score_softmin,
    "steer-min": _score_steer_min,
    "steer-softmin": _score_steer_softmin,
}
#: rerankers that read the per-object sets of queries (and, for hungarian/fgw, candidates)
PER_OBJECT_RERANKERS = ("hungarian", "fgw", "min", "softmin", "steer-min", "steer-softmin")
#: rerankers that compare query objects with candidate objects (not with image embeddings)
CANDIDATE_OBJECT_RERANKERS = ("hungarian", "fgw")


def list_rerankers() -> list[str]:
    return list(RERANKERS)


def rerank_scores(name: str, ctx: RerankContext, shortlist: np.ndarray, stage1_scores: np.ndarray) -> np.ndarray:
    """The named reranker's scores (Q, k) of the shortlist, higher is better.

    A (query, candidate) score does not depend on the rest of the shortlist, so the
    scores of a top-K shortlist hold those of every shorter prefix (``vgrc diagnose
    k-sweep`` solves each problem once)."""
    if name not in RERANKERS:
        raise InvalidInputError(f"unknown reranker {name!r}; valid: {', '.join(RERANKERS)}")
    return RERANKERS[name](ctx, shortlist, stage1_scores)


def rerank_scores_sharded(name: str, ctx: RerankContext, shortlist: np.ndarray, stage1_scores: np.ndarray) -> np.ndarray:
    """:func:`rerank_scores`, each torch.distributed rank scoring a contiguous block of
    queries, gathered in rank order (every problem is independent: the same floats)."""
    from dataclasses import replace

    from vgrc.evaluators import sharding

    if sharding.world()[1] == 1:
        return rerank_scores(name, ctx, shortlist, stage1_scores)
    part = sharding.block(len(shortlist))
    q = ctx.query_objects
    mine = replace(ctx, query_objects=ObjectTable(q.index[part], q.weight[part], q.phrases))
    return sharding.gather_rows(rerank_scores(name, mine, shortlist[part], stage1_scores[part]))


def order_by_scores(shortlist: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The shortlist sorted by score, descending; ties keep their stage-1 order."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(shortlist, order, axis=1)


def rerank(name: str, ctx: RerankContext, shortlist: np.ndarray, stage1_scores: np.ndarray) -> np.ndarray:
    """The shortlist reordered by the named reranker (stable: ties keep stage-1 order)."""
    return order_by_scores(shortlist, rerank_scores(name, ctx, shortlist, stage1_scores))
