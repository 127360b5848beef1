"""Metrics against hand-computed cases and brute-force references."""

import math

import numpy as np
import pytest

from vgrc.evaluators.metrics import (
    cas_at_k,
    concept_coverage,
    first_relevant_rank,
    ndcg_at_k,
    object_binding,
    recall_at_k,
    symbolic_relevance,
)


def obj(attr, noun):
    return {"noun": noun, "attributes": [attr], "bbox": None}


def test_recall_hand_computed():
    ranks = np.array([0, 3, -1, 9, 10])
    assert recall_at_k(ranks) == {"t2i_R@1": 0.2, "t2i_R@5": 0.4, "t2i_R@10": 0.6}


def test_ndcg_hand_computed():
    rel = np.array([[0.0, 4.0, 2.0]])
    dcg = 4 / math.log2(3) + 2 / math.log2(4)
    idcg = 4 / math.log2(2) + 2 / math.log2(3)
    got = ndcg_at_k(rel, ks=(1, 3))
    assert got["t2i_nDCG@1"] == 0.0  # the top item is irrelevant; ideal of the 1-list is 0 -> 0
    assert got["t2i_nDCG@3"] == pytest.approx(dcg / idcg)


def test_ndcg_matches_brute_force():
    rng = np.random.default_rng(0)
    rel = rng.integers(0, 5, size=(50, 10)).astype(float)
    got = ndcg_at_k(rel, ks=(5,))["t2i_nDCG@5"]
    ref = []
    for row in rel:
        r = row[:5]
        dcg = sum(v / math.log2(i + 2) for i, v in enumerate(r))
        idcg = sum(v / math.log2(i + 2) for i, v in enumerate(sorted(r, reverse=True)))
        ref.append(dcg / idcg if idcg else 0.0)
    assert got == pytest.approx(np.mean(ref))


def test_symbolic_relevance_is_multiset_overlap():
    query = [obj("red", "circle"), obj("red", "circle"), obj("blue", "star")]
    image = [obj("red", "circle"), obj("blue", "star"), obj("green", "star")]
    assert symbolic_relevance(query, image) == pytest.approx(4 * 2 / 3)
    assert symbolic_relevance(query, query) == 4.0
    assert symbolic_relevance([], image) == 0.0


def test_cas_gen_vs_cas_noun_on_a_binding_error():
    """Attributes swapped between objects: full concept coverage, no correct binding."""
    query = [obj("red", "circle"), obj("blue", "star")]
    swapped = [obj("blue", "circle"), obj("red", "star")]
    assert concept_coverage(query, swapped) == 1.0
    assert object_binding(query, swapped) == 0.0
    assert object_binding(query, [obj("red", "circle"), obj("green", "square")]) == 0.5
    got = cas_at_k(np.array([[1.0, 0.5]]), np.array([[0.0, 1.0]]), ks=(2,))
    assert got == {"t2i_CAS-gen@2": 0.75, "t2i_CAS-noun@2": 0.5}


def test_first_relevant_rank():
    ranked = np.array([[5, 3, 1], [2, 4, 6]])
    assert first_relevant_rank(ranked, [np.array([1, 3]), np.array([9])]).tolist() == [1, -1]


def test_pipeline_list_metrics_equal_the_per_pair_definitions(shapes_dir):
    """The pipeline's precomputed fast path agrees with the metric functions."""
    from vgrc.evaluators.metrics import ndcg_at_k as ndcg
    from vgrc.evaluators.metrics import annotation_list_metrics
    from vgrc.evaluators.retrieval_data import load_retrieval

    ev, _, _ = load_retrieval(shapes_dir, fit_fraction=0)
    lists = np.random.default_rng(0).integers(0, len(ev), size=(len(ev), 10))
    got = annotation_list_metrics(lists, ev.query_objects, ev.objects, "t2i")
    rel = np.array([[symbolic_relevance(ev.objects[q], ev.objects[g]) for g in row] for q, row in enumerate(lists)])
    gen = np.array([[concept_coverage(ev.objects[q], ev.objects[g]) for g in row] for q, row in enumerate(lists)])
    noun = np.array([[object_binding(ev.objects[q], ev.objects[g]) for g in row] for q, row in enumerate(lists)])
    ref = {**ndcg(rel), **cas_at_k(gen, noun)}
    assert got == pytest.approx(ref)


def test_cas_noun_grounds_a_query_object_on_an_attribute_superset():
    """App. J: the full attribute bundle of a query object must appear on ONE scene object;
    extra attributes on that object do not matter ("red car" is grounded by "red shiny car")."""
    car = {"noun": "car", "attributes": ["red"]}
    shiny_red_car = {"noun": "car", "attributes": ["shiny", "red"]}
    assert object_binding([car], [shiny_red_car]) == 1.0
    # the bundle split over two objects is not grounded
    assert object_binding([{"noun": "car", "attributes": ["red", "shiny"]}], [car, {"noun": "car", "attributes": ["shiny"]}]) == 0.0
    # same attributes on another noun are not grounded
    assert object_binding([car], [{"noun": "bus", "attributes": ["red", "shiny"]}]) == 0.0
    # a bare noun is grounded by any object with that noun; query objects count as a set
    assert object_binding([{"noun": "dog", "attributes": []}, car, car], [{"noun": "dog", "attributes": ["white"]}]) == 0.5


def test_annotation_list_metrics_use_query_objects_against_image_objects():
    """The query side (objects the caption names) differs from the image side (all objects)."""
    from vgrc.evaluators.metrics import annotation_list_metrics

    q = [[{"noun": "car", "attributes": ["red"]}]]
    g = [[{"noun": "car", "attributes": ["red", "shiny"]}, {"noun": "tree", "attributes": ["green"]}], [{"noun": "car", "attributes": ["blue"]}]]
    got = annotation_list_metrics(np.array([[0, 1]]), q, g)
    assert got["t2i_CAS-noun@10"] == pytest.approx(0.5)  # image 0 grounds it, image 1 does not
    assert got["t2i_CAS-gen@10"] == pytest.approx((1.0 + 0.5) / 2)  # {car, red} ⊂ image 0; only "car" in image 1
    assert got["t2i_nDCG@1"] == 0.0  # exact-tuple relevance (App. H): ("car", (red, shiny)) ≠ ("car", (red,))


def test_compiled_grades_equal_the_reference_functions_on_random_scenes():
    """Multiplicities, attribute supersets, and images with many-attribute objects (the
    Python fallback) against symbolic_relevance / concept_coverage / object_binding."""
    from vgrc.evaluators.metrics import annotation_grades, concept_coverage, object_binding, symbolic_relevance

    rng = np.random.default_rng(7)
    nouns, attrs = ["cube", "sphere", "car"], ["red", "blue", "large", "small", "shiny", "metal", "old", "new", "wet"]

    def scene(n, max_attrs):
        return [{"noun": str(rng.choice(nouns)), "attributes": sorted(set(rng.choice(attrs, rng.integers(0, max_attrs + 1)).tolist()))} for _ in range(n)]

    queries = [scene(int(rng.integers(1, 4)), 2) for _ in range(40)]
    queries[0] = [queries[0][0], queries[0][0]]  # the same object twice
    gallery = [scene(int(rng.integers(1, 6)), 3) for _ in range(30)] + [scene(3, 9) for _ in range(5)]
    gallery[1] = [dict(o, attributes=sorted(set(o["attributes"]) | set(attrs))) for o in queries[3]]  # supersets of query 3
    lists = rng.integers(0, len(gallery), size=(40, 12))
    lists[3, 0] = 1
    rel, gen, noun = annotation_grades(lists, queries, gallery)
    for q in range(40):
        for j, g in enumerate(lists[q]):
            assert rel[q, j] == pytest.approx(symbolic_relevance(queries[q], gallery[g]))
            assert gen[q, j] == pytest.approx(concept_coverage(queries[q], gallery[g]))
            assert noun[q, j] == pytest.approx(object_binding(queries[q], gallery[g]))
    assert noun[3, 0] == 1.0 and (noun > 0).any() and (noun < 1).any() and (rel > 0).any()
