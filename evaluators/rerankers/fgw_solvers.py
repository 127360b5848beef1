"""The choices of ``--solver``: how ``--rerank fgw`` solves its problems. Declarations
only; :func:`vgrc.evaluators.solvers.fgw_solve` implements each under the same name
(here, not in :mod:`vgrc.evaluators.solvers`, whose package imports numpy: ``--help``
reads these)."""

from __future__ import annotations

from vgrc.evaluators.registry import Component

__all__ = ["ConditionalGradient", "GlobalMinimum", "POT", "Sinkhorn"]


class FGWSolver(Component):
    kind = "solver"


class ConditionalGradient(FGWSolver):
    name = "cg"
    help = "conditional gradient with exact linear steps, POT-identical (default)"


class GlobalMinimum(FGWSolver):
    name = "global"
    help = "exact global minimum for equal sets of ≤ 7 objects, cg otherwise"


class POT(FGWSolver):
    name = "pot"
    help = "POT's own per-problem solver (cross-check)"


class Sinkhorn(FGWSolver):
    name = "sinkhorn"
    help = "conditional gradient with an entropic (Sinkhorn) linear step: the paper's variant"
