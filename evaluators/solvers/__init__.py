"""Batched exact solvers for structure-aware reranking (stable public API).

- :func:`fgw_cost` / :func:`fgw_solve`: Fused Gromov–Wasserstein, POT-exact conditional
  gradient (``"cg"``), exact global minimum for small equal-size sets (``"global"``), or
  POT itself (``"pot"``).
- :func:`assignment_cost` / :func:`assignment_solve`: minimum-cost one-to-one matching
  (Hungarian), rectangular sets included.

All take batched arrays: ``M`` (B, n, m), ``C1`` (B, n, n), ``C2`` (B, m, m), weights
``p`` (B, n) and ``q`` (B, m), with zero weights marking padding for mixed set sizes.
They accept numpy arrays or torch tensors (the result comes back on the same device).
"""

from vgrc.evaluators.solvers.assignment import AssignmentResult, assignment_cost, assignment_solve
from vgrc.evaluators.solvers.fgw import FGWResult, fgw_cost, fgw_solve, list_fgw_solvers

__all__ = [
    "fgw_cost",
    "fgw_solve",
    "FGWResult",
    "list_fgw_solvers",
    "assignment_cost",
    "assignment_solve",
    "AssignmentResult",
]
