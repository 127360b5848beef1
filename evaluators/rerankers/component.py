"""The reranker protocol: what a component of kind ``reranker`` declares and does.

A reranker is a :class:`Reranker` subclass in a module of its own: ``name``, one-line
``help``, an ``Options`` dataclass (its CLI options, declared with
:func:`~vgrc.evaluators.registry.option`), capability flags, and

``score(ctx, shortlist, stage1_scores, options) -> (Q, k)`` scores, higher = better,

where ``ctx`` is a :class:`~vgrc.evaluators.rerankers.context.RerankContext` (query and
candidate object tables, gallery image embeddings, the stage-1 query map, steering
directions), ``shortlist`` the stage-1 top-k gallery indices (Q, k) and ``stage1_scores``
their scores. The shortlist is reordered by score; ties keep their stage-1 order.

Flags: ``query_objects`` (reads the queries' per-object sets), ``candidate_objects``
(compares them with the candidates' object sets, not with image embeddings),
``steered`` (steers query objects along App. J's directions: needs ``steer_alpha``),
``reorders`` (False only for ``none``).

``--fuse-stage1 w`` (Hungarian, FGW; 0 by default, the paper's pure reranking) scores
``−cost + w · s₁`` with ``s₁`` the candidate's stage-1 cosine: late fusion, vgrc's
addition (docs/FIDELITY.md row 64).
"""

from __future__ import annotations

from vgrc.evaluators.registry import Component, option

__all__ = ["Reranker", "fuse_stage1_option", "fuse_with_stage1"]


def fuse_stage1_option():
    """``--fuse-stage1``: shared by the object-set rerankers (Hungarian, FGW)."""
    return option(0.0, "--fuse-stage1", "Hungarian / FGW: add this multiple of the stage-1 cosine to the reranking score (0 = the paper: "
                  "the object-set score alone). Useful when the candidates' sets are cut from the pixels.", minimum=0.0)


def fuse_with_stage1(scores, stage1_scores, weight: float):
    """``scores + weight · stage1_scores`` (the scores themselves when ``weight`` is 0)."""
    return scores if weight == 0 else scores + weight * stage1_scores


class Reranker(Component):
    kind = "reranker"
    #: False only for ``none``: the shortlist keeps its stage-1 order, nothing is scored
    reorders = True
    query_objects = False
    candidate_objects = False
    steered = False
    #: compares the query *image* with each candidate (--task i2i): its ctx is an ImagePairs
    image_pairs = False
    #: solves a transport problem per pair, whose plan ``solve_plans`` returns (``eval --save-plans``)
    saves_plans = False

    def solve_plans(self, M, C1, C2, p, q, options):  # pragma: no cover - the protocol of saves_plans
        """``(costs (B,), plans (B, n, m))`` of a batch of problems, with the same solver and
        options as :meth:`score` (whose object-set score is ``-cost``)."""
        raise NotImplementedError

    def score(self, ctx, shortlist, stage1_scores, options):  # pragma: no cover - the protocol
        raise NotImplementedError
