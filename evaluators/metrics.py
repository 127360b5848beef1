r"""Text-to-image retrieval metrics (paper §5, App. H, App. J); names say the direction.

Each function returns a flat ``{name: value}`` dict averaged over queries.

- ``t2i_R@K`` — share of queries with a relevant image in the top K.
- ``t2i_nDCG@K`` — graded relevance :math:`r_i \in [0, 4]` of the top-K list,
  :math:`\mathrm{DCG} = \sum_i r_i / \log_2(i + 1)`. Following App. H, the ideal DCG
  sorts *the same retrieved items* by relevance. The score therefore measures the order
  within the list, and is 0 when no retrieved item is relevant. For annotated datasets
  the relevance is symbolic: 4 × |query objects ∩ image objects| (multisets of
  (noun, attributes) tuples) / |query objects|.
- ``t2i_CAS-gen@K`` — concept coverage: the share of the query's concepts (its nouns
  and attributes, as a set) found anywhere among the image's annotations, averaged
  over the top K. It can be high when attributes sit on the wrong objects.
- ``t2i_CAS-noun@K`` — binding: the share of query objects (a set of (noun, attributes)
  tuples) that are *grounded* in the image, averaged over the top K. App. J: "CAS-noun
  requires that the full attribute bundle of a query object appear on a single scene
  object": a query object is grounded when one scene object has the same noun and a
  **superset** of its attributes ("red car" is grounded by a "red shiny car").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vgrc.evaluators.retrieval_data import object_tuples

__all__ = [
    "recall_at_k",
    "ndcg_at_k",
    "cas_at_k",
    "symbolic_relevance",
    "concept_coverage",
    "object_binding",
    "first_relevant_rank",
    "annotation_list_metrics",
    "annotation_grades",
    "graded_metrics",
    "ndcg_per_query",
]

KS = (1, 5, 10)


def first_relevant_rank(ranked: np.ndarray, relevant: Sequence[np.ndarray]) -> np.ndarray:
    """0-based position of the first relevant item in each ranked list, -1 if absent."""
    out = np.full(len(ranked), -1, dtype=np.int64)
    for q, (row, rel) in enumerate(zip(ranked, relevant)):
        hits = np.flatnonzero(np.isin(row, rel))
        if hits.size:
            out[q] = hits[0]
    return out


def recall_at_k(ranks: np.ndarray, ks: Sequence[int] = KS, prefix: str = "t2i") -> dict[str, float]:
    """R@K from 0-based first-relevant ranks (-1 = never retrieved)."""
    ranks = np.asarray(ranks)
    return {f"{prefix}_R@{k}": float(np.mean((ranks >= 0) & (ranks < k))) for k in ks}


def ndcg_per_query(relevance: np.ndarray, k: int) -> np.ndarray:
    """Each query's nDCG@k of graded relevance ``(Q, K_max)`` in ranked order (App. H)."""
    rel = np.asarray(relevance, dtype=float)[:, :k]
    disc = 1.0 / np.log2(np.arange(2, rel.shape[1] + 2))
    dcg = (rel * disc).sum(1)
    idcg = (-np.sort(-rel, axis=1) * disc).sum(1)
    return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1), 0.0)


def ndcg_at_k(relevance: np.ndarray, ks: Sequence[int] = KS, prefix: str = "t2i") -> dict[str, float]:
    """nDCG@K of graded relevance ``(Q, K_max)`` in ranked order (App. H normalisation)."""
    return {f"{prefix}_nDCG@{k}": float(np.mean(ndcg_per_query(relevance, k))) for k in ks}


def cas_at_k(gen: np.ndarray, noun: np.ndarray, ks: Sequence[int] = (10,), prefix: str = "t2i") -> dict[str, float]:
    """CAS-gen@K and CAS-noun@K from per-item scores ``(Q, K_max)`` in ranked order."""
    out = {}
    for k in ks:
        out[f"{prefix}_CAS-gen@{k}"] = float(np.mean(np.asarray(gen)[:, :k].mean(1)))
        out[f"{prefix}_CAS-noun@{k}"] = float(np.mean(np.asarray(noun)[:, :k].mean(1)))
    return out


def symbolic_relevance(query_objects: list[dict], image_objects: list[dict]) -> float:
    """4 × multiset overlap of (noun, attributes) tuples / number of query objects (App. H)."""
    q = object_tuples(query_objects)
    if not q:
        return 0.0
    overlap = sum((q & object_tuples(image_objects)).values())
    return 4.0 * overlap / sum(q.values())


def _concepts(objects: list[dict]) -> set[str]:
    return {o["noun"] for o in objects} | {a for o in objects for a in o.get("attributes", [])}


def concept_coverage(query_objects: list[dict], image_objects: list[dict]) -> float:
    """CAS-gen of one image: share of the query's concepts present in the image."""
    q = _concepts(query_objects)
    return len(q & _concepts(image_objects)) / len(q) if q else 0.0


def _scene_index(objects: list[dict]) -> dict[str, list[frozenset]]:
    """noun -> attribute sets of the scene's objects with that noun."""
    index: dict[str, list[frozenset]] = {}
    for o in objects:
        index.setdefault(o["noun"], []).append(frozenset(o.get("attributes", [])))
    return index


def _grounded_share(query: set, scene: dict[str, list[frozenset]]) -> float:
    hits = sum(1 for noun, attrs in query if any(set(attrs) <= s for s in scene.get(noun, ())))
    return hits / len(query) if query else 0.0


def object_binding(query_objects: list[dict], image_objects: list[dict]) -> float:
    """CAS-noun of one image: share of query objects (as a set of tuples) grounded on one
    scene object with the same noun and a superset of the attributes (App. J)."""
    return _grounded_share(set(object_tuples(query_objects)), _scene_index(image_objects))


def annotation_list_metrics(lists: np.ndarray, query_objects: Sequence[list[dict]], gallery_objects: Sequence[list[dict]], prefix: str = "t2i") -> dict[str, float]:
    """nDCG@1/5/10, CAS-gen@10 and CAS-noun@10 of ranked top lists, from annotations.

    ``lists`` (Q, K) holds gallery indices in ranked order; query ``q`` is scored with
    ``query_objects[q]`` against ``gallery_objects[g]``. Queries without objects are an
    error for the caller to report (see ``vgrc.evaluators.retrieval_data.require_objects``).
    """
    return graded_metrics(*annotation_grades(lists, query_objects, gallery_objects), prefix=prefix)


def graded_metrics(relevance: np.ndarray, gen: np.ndarray, noun: np.ndarray, prefix: str = "t2i") -> dict[str, float]:
    """nDCG@1/5/10, CAS-gen@10 and CAS-noun@10 from per-pair grades (Q, K) in ranked order."""
    out = ndcg_at_k(relevance, prefix=prefix)
    out.update(cas_at_k(gen, noun, prefix=prefix))
    return out


def annotation_grades(lists: np.ndarray, query_objects: Sequence[list[dict]], gallery_objects: Sequence[list[dict]], index=None):
    """``(relevance, cas_gen, cas_noun)``, each (Q, K), of every listed (query, image) pair.

    The per-pair values equal :func:`symbolic_relevance`, :func:`concept_coverage` and
    :func:`object_binding` (tested against them), computed on id arrays
    (:class:`~vgrc.evaluators.grade_kernels.AnnotationIndex`; pass ``index`` to reuse one
    across calls on the same rows).
    """
    from vgrc.evaluators.grade_kernels import AnnotationIndex

    index = index or AnnotationIndex(query_objects, gallery_objects)
    return index.grades(lists)
