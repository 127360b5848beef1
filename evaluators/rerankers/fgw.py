r"""``--rerank fgw``: minus the Fused Gromov–Wasserstein value (Eq. 4), cosine-distance
costs :math:`M_{ij} = 1 - \langle x_i, y_j \rangle`, structure matrices
:math:`C = 1 - X X^\top`, uniform weights over real objects; solved by the ``--solver``
component (:mod:`vgrc.evaluators.solvers`)."""

from __future__ import annotations

from dataclasses import dataclass

from vgrc.evaluators.registry import option
from vgrc.evaluators.rerankers.component import Reranker, fuse_with_stage1, fuse_stage1_option

__all__ = ["FGW", "FGWOptions"]


@dataclass
class FGWOptions:
    fgw_alpha: float = option(0.5, "--fgw-alpha", "FGW trade-off α in [0, 1]: 0 = object features only, 1 = structure only (Eq. 4).", minimum=0.0, maximum=1.0)
    solver: str = option("cg", "--solver", "FGW solver", choices="solver", unused_hint="(Hungarian solves its assignment exactly)")
    epsilon: float = option(0.01, "--epsilon", "Entropic regularisation of --solver sinkhorn.", minimum=0.0, open_min=True,
                            unused_hint="only --rerank fgw --solver sinkhorn uses it")
    fuse_stage1: float = fuse_stage1_option()


class FGW(Reranker):
    name = "fgw"
    help = "Fused Gromov–Wasserstein over the object sets (Eq. 4)"
    Options = FGWOptions
    query_objects = True
    candidate_objects = True
    saves_plans = True

    def score(self, ctx, shortlist, stage1_scores, options):
        from vgrc.evaluators.rerankers.context import solve_pairs
        from vgrc.evaluators.solvers import fgw_cost

        scores = solve_pairs(ctx, shortlist, lambda M, C1, C2, p, q: fgw_cost(M, C1, C2, p, q, alpha=options.fgw_alpha, solver=options.solver,
                                                                              epsilon=options.epsilon))
        return fuse_with_stage1(scores, stage1_scores, options.fuse_stage1)

    def solve_plans(self, M, C1, C2, p, q, options):
        from vgrc.evaluators.solvers import fgw_solve

        result = fgw_solve(M, C1, C2, p, q, alpha=options.fgw_alpha, solver=options.solver, epsilon=options.epsilon)
        return result.cost, result.plan

    def unused_options(self, options) -> list[str]:
        return ["epsilon"] if options.solver != "sinkhorn" else []

    def notes(self, options, data_info) -> list[str]:
        from vgrc.evaluators.rerankers.hungarian import fusion_note

        sinkhorn = [f"fgw linear step: Sinkhorn, epsilon {options.epsilon:g} (the paper's variant)"] if options.solver == "sinkhorn" else []
        return sinkhorn + fusion_note(options)
