"""First stage: cosine shortlist vs brute force, ridge closed form, steering, confusions."""

import numpy as np
import pytest

from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage.ridge import RidgeMapper
from vgrc.evaluators.first_stage.steering import Steering, confusion_pairs, parse_steer_pairs
from vgrc.evaluators.first_stage.search import cosine_topk, normalize


def obj(attr, noun):
    return {"noun": noun, "attributes": [attr], "bbox": None}


def test_cosine_topk_matches_full_sort_with_ties():
    rng = np.random.default_rng(0)
    G = normalize(rng.normal(size=(200, 16)))
    G[50] = G[10]  # an exact tie: order by gallery index
    Q = normalize(rng.normal(size=(70, 16)))
    Q[0] = G[10]
    relevant = [np.array([i]) if i != 0 else np.array([50]) for i in range(70)]
    topk, scores, rank = cosine_topk(Q, G, 15, relevant, chunk=32)
    S = Q @ G.T
    for q in range(70):
        order = np.lexsort((np.arange(200), -S[q]))
        assert topk[q].tolist() == order[:15].tolist()
        assert np.allclose(scores[q], S[q, order[:15]])
        assert rank[q] == int(np.flatnonzero(order == relevant[q][0])[0])
    assert topk[0, :2].tolist() == [10, 50] and rank[0] == 1


def test_ridge_is_the_closed_form_and_reduces_distance():
    rng = np.random.default_rng(1)
    T = normalize(rng.normal(size=(300, 8)))
    R, _ = np.linalg.qr(rng.normal(size=(8, 8)))  # a rotation: V stays unit-norm and linear in T
    V = (T @ R).astype(np.float32)
    mapper = RidgeMapper(ridge_lambda=1e-3).fit(T, V)
    ref = np.linalg.solve(T.T @ T + 1e-3 * np.eye(8), T.T @ V)
    assert np.allclose(mapper.W_, ref)
    red = mapper.distance_reduction(T, V)
    assert red["distance_after"] < 0.01 * red["distance_before"] and 0.99 < red["reduction"] <= 1
    assert np.allclose(mapper.W_, R, atol=1e-2)
    with pytest.raises(InvalidInputError, match="paired"):
        RidgeMapper().fit(T[:3], V[:2])


def test_steering_moves_only_queries_naming_the_target():
    d = 4
    words = {"pentagon": np.eye(d)[0], "hexagon": np.eye(d)[1]}
    steer = Steering([("pentagon", "hexagon")], steer_alpha=0.5).fit(lambda ws: np.stack([words[w] for w in ws]))
    assert np.allclose(steer.directions_[0], normalize(np.array([-1.0, 1, 0, 0])))
    Q = normalize(np.ones((3, d)))
    objs = [[obj("red", "hexagon")], [obj("red", "hexagon"), obj("blue", "pentagon")], [obj("red", "star")]]
    out, changed = steer.transform(Q, objs)
    assert changed.tolist() == [True, False, False]
    assert np.allclose(out[0], normalize(Q[0] + 0.5 * steer.directions_[0]))
    assert np.allclose(out[1:], Q[1:])
    same, _ = Steering([("pentagon", "hexagon")], steer_alpha=0.0).fit(lambda ws: np.stack([words[w] for w in ws])).transform(Q, objs)
    assert np.allclose(same, Q)


def test_confusion_pairs_count_single_substitutions():
    q = [[obj("red", "hexagon"), obj("blue", "star")]] * 3 + [[obj("red", "circle")]]
    r = [[obj("red", "pentagon"), obj("blue", "star")]] * 2 + [[obj("red", "pentagon"), obj("green", "star")]] + [[obj("blue", "circle")]]
    # App. E: shape confusions with colour held fixed; a colour swap is not a substitution there
    assert confusion_pairs(q, r, top=5) == [("pentagon", "hexagon", 2)]
    assert confusion_pairs(q, r, top=5, attributes_fixed=False) == [("pentagon", "hexagon", 2), ("blue", "red", 1)]


def test_confusion_pairs_ignore_colour_changes_with_the_shape():
    """red hexagon retrieved as blue pentagon: shape AND colour differ, so it is not a
    shape substitution with colour held fixed."""
    q = [[obj("red", "hexagon")]] * 4 + [[obj("green", "star")]]
    r = [[obj("blue", "pentagon")]] * 4 + [[obj("green", "triangle")]]
    assert confusion_pairs(q, r, top=5) == [("triangle", "star", 1)]


def test_unknown_steer_word_is_named():
    from vgrc.evaluators.first_stage.steering import check_steer_words

    check_steer_words([("pentagon", "hexagon")], {"pentagon", "hexagon", "red"})
    with pytest.raises(InvalidInputError, match="'octagon' is not a noun or attribute"):
        check_steer_words([("pentagon", "octagon")], {"pentagon", "hexagon", "red"})


@pytest.mark.parametrize("bad", ["pentagon", ":hexagon", "pentagon:"])
def test_bad_steer_pairs(bad):
    with pytest.raises(InvalidInputError, match="SOURCE:TARGET"):
        parse_steer_pairs([bad])


@pytest.mark.parametrize("k", [1, 7, 64, 65, 200])
def test_topk_rows_equals_a_full_sort_with_ties(k):
    from vgrc.evaluators.index.kernels import count_before, topk_rows

    rng = np.random.default_rng(k)
    S = rng.integers(0, 12, size=(40, 300)).astype(np.float32)  # many ties, also at the k-th place
    idx, val = topk_rows(S, k)
    order = np.lexsort((np.tile(np.arange(300), (40, 1)), -S), axis=1)
    assert np.array_equal(idx, order[:, :k]) and np.array_equal(val, np.take_along_axis(S, order[:, :k], 1))
    best = rng.integers(-1, 300, size=40)
    expected = [-1 if b < 0 else int(np.flatnonzero(order[r] == b)[0]) for r, b in enumerate(best)]
    counts = np.zeros(40, np.int64)
    count_before(S, 0, np.where(best >= 0, S[np.arange(40), best], 0), best, counts)
    assert np.where(best >= 0, counts, -1).tolist() == expected
