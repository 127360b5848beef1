r"""Second-stage rerankers over per-object embeddings (paper §4.3–4.4, App. A, J).

Per-object embeddings come from the annotations of queries and candidates alike (no
detector; an oracle, as in the paper): each object's phrase, e.g. "red circle", is
embedded with every prompt template, and the results are averaged and normalised
(Eq. 3/7). A row with fewer objects is padded, and the padding gets zero weight.

Each reranker is a component in its own module of this package (``none``, ``hungarian``,
``fgw``, ``object_image``: min / softmin / steer-min / steer-softmin), registered in
:mod:`vgrc.evaluators.registry`; its ``score(ctx, shortlist, stage1_scores, options) ->
(Q, k)`` (higher = better) uses this module's :class:`RerankContext` and helpers, and
its options (``fgw_alpha``, ``tau`` …) arrive as its own ``Options`` dataclass.

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

__all__ = ["ObjectTable", "RerankContext", "PairPlan", "solve_plans", "rerank", "rerank_scores", "rerank_scores_sharded", "order_by_scores", "steer_objects", "solve_pairs", "aggregate_object_image_scores"]


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
    #: "text": rows of the run's one phrase table (both sides index the same phrases);
    #: "regions": a candidate side of image regions with its own rows
    space: str = "text"

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

    @classmethod
    def from_regions(cls, regions) -> "ObjectTable":
        """A table of per-image regions (:class:`~vgrc.evaluators.objects.candidates.RegionSets`):
        each image's rows point at its own region embeddings, weighted by the regions'
        weights normalised to sum 1 per image (the solvers' marginals)."""
        counts = regions.counts()
        n_max = max(1, int(counts.max(initial=1)))
        pad = len(regions.emb)
        index = np.full((len(counts), n_max), pad, np.int64)
        weight = np.zeros((len(counts), n_max))
        for r, (s, c) in enumerate(zip(regions.offsets[:-1], counts)):
            if c:
                index[r, :c] = np.arange(s, s + c)
                w = regions.weight[s : s + c]
                weight[r, :c] = w / w.sum()
        table = np.vstack([regions.emb, np.zeros((1, regions.emb.shape[1]), regions.emb.dtype)])
        return cls(index, weight, table, space="regions")

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

    Query-side tables are indexed by query, candidate side by gallery index. With the
    annotations on both sides they share one phrase table (one table of distances serves
    M, C1 and C2); a candidate side of image regions (``--candidate-objects``) has its own
    table, so M compares text objects with regions, C1 lives in text space and C2 in
    region space. ``map_query`` maps query-side embeddings into the stage-1 query space
    (the ridge mapper when stage 1 maps; identity otherwise), for the image-embedding
    baselines. ``object_directions`` (U + 1, d), when given, is each phrase's App. J
    steering direction, used by the ``steer-*`` rerankers. The rerankers' own options
    (FGW's α, Hungarian's costs …) are not here: each reranker receives its ``Options``.
    """

    query_objects: ObjectTable
    gallery_objects: ObjectTable
    gallery_images: np.ndarray
    map_query: Callable[[np.ndarray], np.ndarray] | None = None
    object_directions: np.ndarray | None = None
    memory_budget_mb: float = 512.0
    gram_limit: int = 8192

    def __post_init__(self):
        self.shared = self.gallery_objects.space == "text"
        P = self.query_objects.phrases.astype(np.float64)
        # phrase-by-phrase cosine distances, computed once when the table is small enough
        self._dist = 1.0 - P @ P.T if self.shared and len(P) <= self.gram_limit else None

    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine distances between phrase indices ``a (..., n)`` and ``b (..., m)`` of the
        shared table: (..., n, m)."""
        if self._dist is not None:
            return self._dist[a[..., :, None], b[..., None, :]]
        P = self.query_objects.phrases.astype(np.float64)
        return 1.0 - P[a] @ np.swapaxes(P[b], -1, -2)

    def cost_matrices(self, qrows: np.ndarray, grows: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``M`` (the first ``n`` objects of queries ``qrows`` against the first ``m`` of
        candidates ``grows``), ``C1`` (within the query sets), ``C2`` (within the candidate
        sets): cosine distances, each in its own table's space, (B, ·, ·)."""
        qi = self.query_objects.index[qrows, :n]
        gi = self.gallery_objects.index[grows, :m]
        if self.shared:
            return self.distances(qi, gi), self.distances(qi, qi), self.distances(gi, gi)
        Q, G = self.query_objects.phrases, self.gallery_objects.phrases
        # a batch repeats few query sets and few candidates: products of the distinct rows only
        uq, q_inv = np.unique(qi, return_inverse=True)
        ug, g_inv = np.unique(gi, return_inverse=True)
        if len(uq) * len(ug) <= self.gram_limit**2 // 4:
            cross = Q[uq].astype(np.float64) @ G[ug].astype(np.float64).T
            M = 1.0 - cross[q_inv.reshape(qi.shape)[..., :, None], g_inv.reshape(gi.shape)[..., None, :]]
        else:
            M = 1.0 - Q[qi].astype(np.float64) @ G[gi].astype(np.float64).transpose(0, 2, 1)
        return M, _within(Q, self.query_objects.index, qrows, n), _within(G, self.gallery_objects.index, grows, m)

    def mapped_query_objects(self, rows: np.ndarray, steer_alpha: float | None) -> np.ndarray:
        """Query objects of ``rows`` (c, n_max, d) in the stage-1 space, steered with
        strength ``steer_alpha`` unless it is None."""
        X = self.query_objects.emb(rows).astype(np.float32)
        if steer_alpha is not None:
            if self.object_directions is None:
                raise InvalidInputError("steered rerankers need per-object steering directions")
            X = steer_objects(X, self.object_directions[self.query_objects.index[rows]], steer_alpha)
        if self.map_query is not None:
            shape = X.shape
            present = (np.abs(X).sum(-1, keepdims=True) > 0)
            X = self.map_query(X.reshape(-1, shape[-1])).reshape(shape) * present
        return X


def _within(table: np.ndarray, index: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """``1 − X Xᵀ`` of the first ``n`` objects of each of ``rows``, computed once per distinct row."""
    urows, inv = np.unique(rows, return_inverse=True)
    X = table[index[urows, :n]].astype(np.float64)
    return (1.0 - X @ X.transpose(0, 2, 1))[inv]


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
    M, C1, C2 = ctx.cost_matrices(qrows, grows, n, m)
    # exact symmetry and a zero diagonal (float32 embeddings are not bit-symmetric)
    C1 = 0.5 * (C1 + C1.transpose(0, 2, 1))
    C2 = 0.5 * (C2 + C2.transpose(0, 2, 1))
    C1[:, np.arange(n), np.arange(n)] = 0.0
    C2[:, np.arange(m), np.arange(m)] = 0.0
    p = ctx.query_objects.weight[qrows, :n]
    q = ctx.gallery_objects.weight[grows, :m]
    return M, C1, C2, p, q


def solve_pairs(ctx: RerankContext, shortlist: np.ndarray, cost_of) -> np.ndarray:
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


@dataclass
class PairPlan:
    """One solved (query, candidate) problem at its real sizes n × m: the inputs the
    solver saw (``M``, ``C1``, ``C2``, marginals ``p``, ``q``), its ``cost`` (the reranker's
    object-set score is ``-cost``) and its ``plan`` (n, m)."""

    M: np.ndarray
    C1: np.ndarray
    C2: np.ndarray
    p: np.ndarray
    q: np.ndarray
    cost: float
    plan: np.ndarray


def solve_plans(ctx: RerankContext, qrows: np.ndarray, grows: np.ndarray, solve) -> list[PairPlan | None]:
    """The plan of each pair (qrows[i], grows[i]) by ``solve(M, C1, C2, p, q) -> (costs,
    plans)``, posed exactly as :func:`solve_pairs` poses it for scoring (the same padded
    candidate size, so the same floats) and trimmed to the real sizes; None for a
    candidate without objects (it is not solved when scoring either)."""
    qrows, grows = np.asarray(qrows, np.int64), np.asarray(grows, np.int64)
    n = ctx.query_objects.sizes[qrows]
    real_m = ctx.gallery_objects.sizes[grows]
    m = np.minimum(_size_bucket(real_m), ctx.gallery_objects.index.shape[1])
    out: list[PairPlan | None] = [None] * len(qrows)
    todo = np.flatnonzero(real_m > 0)
    for gn, gm in sorted({(int(n[i]), int(m[i])) for i in todo}):
        group = todo[(n[todo] == gn) & (m[todo] == gm)]
        M, C1, C2, p, q = _problems(ctx, qrows[group], grows[group], gn, gm)
        costs, plans = solve(M, C1, C2, p, q)
        for j, i in enumerate(group):
            rm = int(real_m[i])
            out[i] = PairPlan(M[j, :, :rm], C1[j], C2[j, :rm, :rm], p[j], q[j, :rm], float(costs[j]), np.asarray(plans[j])[:, :rm])
    return out


def aggregate_object_image_scores(ctx, shortlist, aggregate, steer_alpha: float | None) -> np.ndarray:
    """Cosine of each (mapped, optionally steered) query object with each shortlisted
    image, aggregated over the query's real objects:
    ``aggregate(sims (c, k, n), present (c, 1, n)) -> (c, k)``."""
    out = np.empty(shortlist.shape)
    d = ctx.gallery_images.shape[1]
    n_max = ctx.query_objects.index.shape[1]
    chunk = max(1, int(ctx.memory_budget_mb * 2**20 // (4 * d * (n_max + shortlist.shape[1]) * 3)))
    for s in range(0, len(shortlist), chunk):
        idx = np.arange(s, min(len(shortlist), s + chunk))
        X = ctx.mapped_query_objects(idx, steer_alpha)
        sims = np.einsum("qnd,qkd->qkn", X, ctx.gallery_images[shortlist[idx]])
        out[idx] = aggregate(sims, (ctx.query_objects.weight[idx] > 0)[:, None, :])
    return out


def rerank_scores(reranker, ctx: RerankContext, shortlist: np.ndarray, stage1_scores: np.ndarray, options=None) -> np.ndarray:
    """The reranker's scores (Q, k) of the shortlist, higher is better. ``reranker`` is a
    registered name or a reranker component; ``options`` its ``Options`` (default: its
    defaults).

    A (query, candidate) score does not depend on the rest of the shortlist, so the
    scores of a top-K shortlist hold those of every shorter prefix (``vgrc diagnose
    k-sweep`` solves each problem once)."""
    from vgrc.evaluators import registry

    component = registry.get("reranker", reranker) if isinstance(reranker, str) else reranker
    return np.asarray(component.score(ctx, shortlist, stage1_scores, component.Options() if options is None else options))


def rerank_scores_sharded(reranker, ctx: RerankContext, shortlist: np.ndarray, stage1_scores: np.ndarray, options=None) -> np.ndarray:
    """:func:`rerank_scores`, each torch.distributed rank scoring a contiguous block of
    queries, gathered in rank order (every problem is independent: the same floats)."""
    from dataclasses import replace

    from vgrc.evaluators import sharding

    if sharding.world()[1] == 1:
        return rerank_scores(reranker, ctx, shortlist, stage1_scores, options)
    part = sharding.block(len(shortlist))
    q = ctx.query_objects
    mine = replace(ctx, query_objects=ObjectTable(q.index[part], q.weight[part], q.phrases))
    return sharding.gather_rows(rerank_scores(reranker, mine, shortlist[part], stage1_scores[part], options))


def order_by_scores(shortlist: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The shortlist sorted by score, descending; ties keep their stage-1 order."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(shortlist, order, axis=1)


def rerank(reranker, ctx: RerankContext, shortlist: np.ndarray, stage1_scores: np.ndarray, options=None) -> np.ndarray:
    """The shortlist reordered by the reranker (stable: ties keep stage-1 order)."""
    return order_by_scores(shortlist, rerank_scores(reranker, ctx, shortlist, stage1_scores, options))
