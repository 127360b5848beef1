"""``--rerank hungarian``: minus the padded-square matching cost per query object
(:func:`~vgrc.evaluators.solvers.assignment_cost`: an unmatched query object costs
``unmatched_cost``, a surplus candidate object ``surplus_cost``; docs/FIDELITY.md row 11)."""

from __future__ import annotations

from dataclasses import dataclass

from vgrc.evaluators.registry import option
from vgrc.evaluators.rerankers.component import Reranker, fuse_with_stage1, fuse_stage1_option

__all__ = ["Hungarian", "HungarianOptions", "costs_note", "fusion_note"]


@dataclass
class HungarianOptions:
    #: None: the dataset's recommendation (manifest ``recommended``), else 1.0 / 0.0 (EvalConfig.resolve_costs)
    unmatched_cost: float | None = option(None, "--unmatched-cost", "Hungarian: cost of a query object the candidate lacks (1 = an orthogonal pair) "
                                          "[default: the dataset's recommendation, else 1.0].", minimum=0.0, show_default=False)
    surplus_cost: float | None = option(None, "--surplus-cost", "Hungarian: cost of a candidate object no query object matches [default: the dataset's "
                                        "recommendation (1.0 for whole-scene captions: shapes, CLEVR-HOPE), else 0.0].", minimum=0.0, show_default=False)
    fuse_stage1: float = fuse_stage1_option()


class Hungarian(Reranker):
    name = "hungarian"
    help = "one-to-one object matching cost (padded square problem)"
    Options = HungarianOptions
    query_objects = True
    candidate_objects = True
    saves_plans = True

    def score(self, ctx, shortlist, stage1_scores, options):
        from vgrc.evaluators.rerankers.context import solve_pairs
        from vgrc.evaluators.solvers import assignment_cost

        unmatched, surplus = _costs(options)
        scores = solve_pairs(ctx, shortlist, lambda M, C1, C2, p, q: assignment_cost(M, p, q, unmatched_cost=unmatched, surplus_cost=surplus))
        return fuse_with_stage1(scores, stage1_scores, options.fuse_stage1)

    def solve_plans(self, M, C1, C2, p, q, options):
        from vgrc.evaluators.solvers import assignment_solve

        unmatched, surplus = _costs(options)
        result = assignment_solve(M, p, q, unmatched_cost=unmatched, surplus_cost=surplus)
        return result.cost, result.matching

    def notes(self, options, data_info) -> list[str]:
        return [costs_note(options, data_info.get("costs_from") or {}, data_info.get("recommended") or {}), *fusion_note(options)]


def _costs(options) -> tuple[float, float]:
    """(unmatched, surplus) costs, the defaults where the dataset recommended none."""
    return (1.0 if options.unmatched_cost is None else options.unmatched_cost,
            0.0 if options.surplus_cost is None else options.surplus_cost)


def fusion_note(options) -> list[str]:
    if not options.fuse_stage1:
        return []
    return [f"the reranking score is the object-set score plus {options.fuse_stage1:g} × the stage-1 cosine (--fuse-stage1; "
            "the paper reranks by the object-set score alone)"]


def costs_note(options, sources: dict, recommended: dict) -> str:
    """Hungarian's two costs and where each came from, and the dataset's recommendation
    when the run departs from it."""
    note = (f"hungarian: unmatched query object costs {options.unmatched_cost:g} ({sources.get('unmatched_cost', 'given')}), "
            f"surplus candidate object {options.surplus_cost:g} ({sources.get('surplus_cost', 'given')})")
    if recommended and (recommended.get("surplus_cost"), recommended.get("unmatched_cost")) != (options.surplus_cost, options.unmatched_cost):
        note += f"; this dataset recommends --unmatched-cost {recommended.get('unmatched_cost'):g} --surplus-cost {recommended.get('surplus_cost'):g}"
    return note
