r"""Batched minimum-cost one-to-one matching (the paper's "Local Hungarian" reranker).

For each problem, the objects with positive weight (rows with :math:`p_i > 0`, columns
with :math:`q_j > 0`; weights are otherwise ignored, as the matching is one-to-one) are
matched so that :math:`k = \min(n, m)` pairs are formed at minimum total cost:

.. math::

    \mathrm{cost} = \frac{1}{k} \min_{\sigma} \sum_{(i, j) \in \sigma} M_{ij}.

Normalisation: the **mean** matched cost, so values compare across set sizes and equal
FGW at :math:`\alpha = 0` for equal sizes with uniform weights (both are then the mean
cost of the best permutation). Unmatched objects (the surplus of the larger side) cost
**nothing**: an image may show more objects than the query names. This is the value
``scipy.optimize.linear_sum_assignment`` gives on the active block, divided by ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vgrc.evaluators.solvers._arrays import CHUNK, check_batch, n_blocks, to_numpy, weights

__all__ = ["AssignmentResult", "assignment_solve", "assignment_cost"]


@dataclass
class AssignmentResult:
    """Result of :func:`assignment_solve`.

    Attributes
    ----------
    cost : array (B,)
        Mean matched cost.
    matching : array (B, n, m)
        0/1 matrices with one 1 per matched pair.
    """

    cost: object
    matching: object


def _solve(M, p, q, store_plan: bool):
    from vgrc.evaluators.errors import InvalidInputError
    from vgrc.evaluators.solvers import _kernels as K

    Mn, kind = to_numpy("M", M, None)
    check_batch("M", Mn, 3)
    B, n, m = Mn.shape
    if B == 0 or n == 0 or m == 0:
        raise InvalidInputError(f"M must hold at least one problem with one object per side, got shape {Mn.shape}")
    pn, kind = weights("p", p, B, n, kind)
    qn, kind = weights("q", q, B, m, kind)
    cost = np.zeros(B)
    plan = np.zeros((B, n, m)) if store_plan else np.zeros((1, 1, 1))
    for s in range(0, B, CHUNK):
        sl = slice(s, min(B, s + CHUNK))
        K.assignment_batch(Mn[sl], pn[sl], qn[sl], cost[sl], plan[sl] if store_plan else plan, store_plan, n_blocks(sl.stop - sl.start))
    return cost, (plan if store_plan else None), kind


def assignment_solve(M, p=None, q=None) -> AssignmentResult:
    """Minimum-cost matching of every problem; values and the matchings.

    Parameters
    ----------
    M : array (B, n, m)
        Costs between query objects (rows) and candidate objects (columns).
    p : array (B, n), optional
        Row weights; only ``> 0`` (present) vs ``0`` (padding) matters.
    q : array (B, m), optional
        Column weights, likewise.

    Returns
    -------
    AssignmentResult
        numpy arrays, or torch tensors on the inputs' device for torch inputs.
    """
    cost, plan, kind = _solve(M, p, q, True)
    return AssignmentResult(cost=kind.wrap(cost), matching=kind.wrap(plan))


def assignment_cost(M, p=None, q=None):
    """Mean matched cost per problem, shape (B,); see :func:`assignment_solve`."""
    cost, _, kind = _solve(M, p, q, False)
    return kind.wrap(cost)
