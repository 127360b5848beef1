"""Rerankers on hand-made object sets: the review's failure cases, bucketing, steering."""

import numpy as np
import pytest

from vgrc.evaluators.rerankers.context import ObjectTable, RerankContext, rerank, steer_objects
from vgrc.evaluators.rerankers.hungarian import HungarianOptions
from vgrc.evaluators.first_stage.components import SteerAlphaOptions
from vgrc.evaluators.rerankers.object_image import SteerTauOptions
from vgrc.evaluators.solvers import assignment_cost, fgw_cost


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def table_for(rows, phrases, emb):
    index = {p: i for i, p in enumerate(phrases)}
    return ObjectTable.build(rows, index, emb)


def phrase_space(phrases, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return unit(rng.normal(size=(len(phrases), d))).astype(np.float32)


def test_hungarian_ranks_the_exact_match_above_a_subset_shortlisted_first():
    """Old definition: a candidate holding 1 of the 3 query objects cost 0, tied with the
    exact match, and the tie kept stage-1 order (subset first). Now the two missing query
    objects cost 1 each and the exact match wins."""
    phrases = ["red circle", "blue star", "green square", "black hexagon", "orange star"]
    emb = phrase_space(phrases)
    query = [["red circle", "blue star", "green square"]]
    gallery = [
        ["red circle"],  # 0: subset, shortlisted first
        ["black hexagon", "orange star"],  # 1: disjoint
        ["green square", "red circle", "blue star"],  # 2: exact
        ["red circle", "blue star", "green square", "black hexagon"],  # 3: superset
    ]
    ctx = RerankContext(table_for(query, phrases, emb), table_for(gallery, phrases, emb), np.zeros((4, 16), np.float32))
    shortlist = np.array([[0, 1, 2, 3]])
    free = HungarianOptions(unmatched_cost=1.0, surplus_cost=0.0)
    order = rerank("hungarian", ctx, shortlist, np.zeros((1, 4)), free)[0].tolist()
    assert order[:2] == [2, 3]  # exact and superset (surplus free), exact first by stage-1 order
    assert order.index(0) > order.index(2)
    whole_scene = HungarianOptions(unmatched_cost=1.0, surplus_cost=1.0)  # whole-scene captions: the superset pays for its extra object
    assert rerank("hungarian", ctx, shortlist, np.zeros((1, 4)), whole_scene)[0].tolist()[0] == 2


def _random_sets(rng, n_rows, max_size, n_phrases):
    sizes = np.minimum(rng.zipf(1.6, n_rows), max_size)  # heavy-tailed, like VG
    return [[f"p{j}" for j in rng.choice(n_phrases, size=s, replace=False)] for s in sizes]


@pytest.mark.parametrize("name", ["hungarian", "fgw"])
def test_bucketed_batches_equal_one_padded_batch(name):
    """Size buckets under a tiny memory budget give the same scores as solving every pair
    in one batch padded to the largest sets."""
    rng = np.random.default_rng(4)
    phrases = [f"p{j}" for j in range(40)]
    emb = phrase_space(phrases, seed=4)
    queries = _random_sets(rng, 30, 6, 40)
    gallery = _random_sets(rng, 50, 25, 40)
    qt, gt = table_for(queries, phrases, emb), table_for(gallery, phrases, emb)
    shortlist = np.stack([rng.choice(50, size=12, replace=False) for _ in range(30)])
    ctx = RerankContext(qt, gt, np.zeros((50, 16), np.float32), memory_budget_mb=0.01)
    got = rerank(name, ctx, shortlist, np.zeros(shortlist.shape))
    # reference: every (query, candidate) problem padded to the global maxima, one call
    P = qt.phrases.astype(np.float64)
    qi = np.repeat(qt.index, 12, axis=0)
    gi = gt.index[shortlist.ravel()]
    X, Y = P[qi], P[gi]
    M = 1 - X @ Y.transpose(0, 2, 1)
    p, q = np.repeat(qt.weight, 12, axis=0), gt.weight[shortlist.ravel()]
    if name == "hungarian":
        cost = assignment_cost(M, p, q)
    else:
        C1, C2 = 1 - X @ X.transpose(0, 2, 1), 1 - Y @ Y.transpose(0, 2, 1)
        C1, C2 = 0.5 * (C1 + C1.transpose(0, 2, 1)), 0.5 * (C2 + C2.transpose(0, 2, 1))
        for C in (C1, C2):
            C[:, np.arange(C.shape[1]), np.arange(C.shape[1])] = 0
        cost = fgw_cost(M, C1, C2, p, q, alpha=0.5)
    order = np.argsort(cost.reshape(30, 12), axis=1, kind="stable")
    assert (got == np.take_along_axis(shortlist, order, 1)).all()


def test_candidates_without_objects_rank_last():
    phrases = ["a", "b"]
    emb = phrase_space(phrases)
    ctx = RerankContext(table_for([["a", "b"]], phrases, emb), table_for([[], ["b"], ["a", "b"]], phrases, emb), np.zeros((3, 16), np.float32))
    assert rerank("fgw", ctx, np.array([[0, 1, 2]]), np.zeros((1, 3)))[0].tolist() == [2, 1, 0]


def test_steer_objects_formula_and_padding():
    rng = np.random.default_rng(1)
    X = unit(rng.normal(size=(2, 3, 8))).astype(np.float32)
    X[1, 2] = 0  # padding
    D = unit(rng.normal(size=(2, 3, 8))).astype(np.float32)
    got = steer_objects(X, D, 0.4)
    want = unit(X[0] + 0.4 * D[0])
    assert np.allclose(got[0], want, atol=1e-6)
    assert np.all(got[1, 2] == 0) and np.allclose(np.linalg.norm(got[1, :2], axis=-1), 1, atol=1e-6)
    assert np.allclose(steer_objects(X, D, 0.0)[0], X[0], atol=1e-6)


def test_steered_rerankers_use_steered_objects():
    """steer-min with steer_alpha = 0 equals min; with a direction that points at one image,
    that image rises to the top."""
    phrases = ["red circle", "blue star"]
    emb = phrase_space(phrases, d=6, seed=2)
    images = unit(np.random.default_rng(3).normal(size=(4, 6))).astype(np.float32)
    directions = np.zeros((3, 6), np.float32)
    directions[0] = images[3]  # "red circle" steered toward image 3
    directions[1] = images[3]
    qt = table_for([["red circle", "blue star"]], phrases, emb)
    ctx = RerankContext(qt, table_for([[]] * 4, phrases, emb), images, object_directions=directions)
    shortlist = np.array([[0, 1, 2, 3]])
    unsteered = rerank("steer-min", ctx, shortlist, np.zeros((1, 4)), SteerAlphaOptions(steer_alpha=0.0))
    assert (unsteered == rerank("min", ctx, shortlist, np.zeros((1, 4)))).all()
    assert rerank("steer-min", ctx, shortlist, np.zeros((1, 4)), SteerAlphaOptions(steer_alpha=50.0))[0, 0] == 3
    assert rerank("steer-softmin", ctx, shortlist, np.zeros((1, 4)), SteerTauOptions(steer_alpha=50.0))[0, 0] == 3
