"""``--rerank none``: the stage-1 order."""

from __future__ import annotations

from vgrc.evaluators.rerankers.component import Reranker

__all__ = ["NoRerank"]


class NoRerank(Reranker):
    name = "none"
    help = "stage-1 order"
    reorders = False

    def score(self, ctx, shortlist, stage1_scores, options):
        return stage1_scores
