r"""Batched minimum-cost one-to-one matching (the paper's "Local Hungarian" reranker).

For each problem, the objects with positive weight (the :math:`n` query objects, rows
with :math:`p_i > 0`, and the :math:`m` candidate objects, columns with :math:`q_j > 0`;
weights are otherwise ignored, as the matching is one-to-one) are matched one-to-one on
the **padded square problem** of side :math:`N = \max(n, m)`:

.. math::

    \tilde M = \begin{pmatrix} M & u\,\mathbf 1_{n \times (N-m)} \\
                                s\,\mathbf 1_{(N-n) \times m} & \end{pmatrix},
    \qquad
    \mathrm{cost} = \frac{1}{n} \min_{\sigma \in S_N} \sum_i \tilde M_{i \sigma(i)}
    = \frac{1}{n}\Big(\min_{|\sigma| = \min(n, m)} \sum_{(i,j)\in\sigma} M_{ij}
      + u \,(n - m)_+ + s\,(m - n)_+\Big).

- ``unmatched_cost`` :math:`u` (default 1.0, the cosine distance of an orthogonal pair):
  a query object left without a partner costs :math:`u`; the candidate lacks something
  the query asked for, so a candidate holding 1 of 3 query objects no longer ties the
  exact match.
- ``surplus_cost`` :math:`s` (default 0.0): a candidate object no query object is
  matched to. 0 suits real images, which hold more than their captions name; 1.0 suits
  datasets whose queries describe whole scenes (Synthetic Shapes, CLEVR-HOPE).
- Normalised by the query's object count :math:`n`, so a query's candidates compare, and
  for equal sizes the value is the mean matched cost, equal to FGW at :math:`\alpha = 0`
  with uniform weights.

Because the padding costs are constant per row and column, the padded square optimum is
the rectangular minimum-cost matching of :math:`\min(n, m)` pairs plus the constant
penalty; a test checks this against ``scipy.optimize.linear_sum_assignment`` on the
padded square matrix.
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
        Padded-square matching cost divided by the query's object count.
    matching : array (B, n, m)
        0/1 matrices with one 1 per matched pair.
    """

    cost: object
    matching: object


UNMATCHED_COST = 1.0
SURPLUS_COST = 0.0


def _penalty(name: str, value) -> float:
    from vgrc.evaluators.errors import InvalidInputError

    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a number ≥ 0, got {value!r}") from exc
    if not np.isfinite(value) or value < 0:
        raise InvalidInputError(f"{name} must be a finite number ≥ 0, got {value}")
    return value


def _solve(M, p, q, store_plan: bool, unmatched_cost: float = UNMATCHED_COST, surplus_cost: float = SURPLUS_COST):
    from vgrc.evaluators.errors import InvalidInputError
    from vgrc.evaluators.solvers import _kernels as K

    Mn, kind = to_numpy("M", M, None)
    check_batch("M", Mn, 3)
    B, n, m = Mn.shape
    if B == 0 or n == 0 or m == 0:
        raise InvalidInputError(f"M must hold at least one problem with one object per side, got shape {Mn.shape}")
    u = _penalty("unmatched_cost", unmatched_cost)
    sc = _penalty("surplus_cost", surplus_cost)
    pn, kind = weights("p", p, B, n, kind)
    qn, kind = weights("q", q, B, m, kind)
    cost = np.zeros(B)
    plan = np.zeros((B, n, m)) if store_plan else np.zeros((1, 1, 1))
    for s in range(0, B, CHUNK):
        sl = slice(s, min(B, s + CHUNK))
        K.assignment_batch(Mn[sl], pn[sl], qn[sl], cost[sl], plan[sl] if store_plan else plan, store_plan, n_blocks(sl.stop - sl.start), u, sc)
    return cost, (plan if store_plan else None), kind


def assignment_solve(M, p=None, q=None, *, unmatched_cost: float = UNMATCHED_COST, surplus_cost: float = SURPLUS_COST) -> AssignmentResult:
    """Minimum-cost matching of every problem; values and the matchings.

    Parameters
    ----------
    M : array (B, n, m)
        Costs between query objects (rows) and candidate objects (columns).
    p : array (B, n), optional
        Row weights; only ``> 0`` (present) vs ``0`` (padding) matters.
    q : array (B, m), optional
        Column weights, likewise.
    unmatched_cost : float ≥ 0
        Cost of a query object left unmatched (more query than candidate objects).
    surplus_cost : float ≥ 0
        Cost of a candidate object left unmatched (more candidate than query objects).

    Returns
    -------
    AssignmentResult
        numpy arrays, or torch tensors on the inputs' device for torch inputs.
    """
    cost, plan, kind = _solve(M, p, q, True, unmatched_cost, surplus_cost)
    return AssignmentResult(cost=kind.wrap(cost), matching=kind.wrap(plan))


def assignment_cost(M, p=None, q=None, *, unmatched_cost: float = UNMATCHED_COST, surplus_cost: float = SURPLUS_COST):
    """Padded-square matching cost per query object, shape (B,); see :func:`assignment_solve`."""
    cost, _, kind = _solve(M, p, q, False, unmatched_cost, surplus_cost)
    return kind.wrap(cost)
