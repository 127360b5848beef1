r"""Batched Fused Gromov–Wasserstein (paper §4.4, Eq. 4–6).

For each problem :math:`b` of a batch, with feature costs :math:`M \in \mathbb{R}^{n\times m}`,
structure matrices :math:`C_1 \in \mathbb{R}^{n\times n}`, :math:`C_2 \in \mathbb{R}^{m\times m}`
and marginals :math:`p, q`:

.. math::

    \mathrm{FGW}_\alpha = \min_{T \in U(p, q)} \;
        (1-\alpha)\,\langle M, T\rangle
        + \alpha \sum_{i,j,k,l} (C_{1,ik} - C_{2,jl})^2\, T_{ij} T_{kl},
    \qquad U(p, q) = \{T \ge 0 : T\mathbf 1 = p,\; T^\top \mathbf 1 = q\}.

This is exactly what POT's ``ot.gromov.fused_gromov_wasserstein2(M, C1, C2, p, q,
loss_fun="square_loss", alpha=alpha)`` returns: constant terms included, no ½ factor.

Solvers
-------
``"cg"``
    POT's conditional gradient, step for step (start at :math:`pq^\top`; linearise;
    exact transport subproblem; exact line search for the square loss; stop when the
    cost changes by less than ``tol_rel`` relatively or ``tol_abs`` absolutely), run
    for every problem of the batch in compiled, parallel loops. Same values as POT up
    to rounding, hence the same rankings. Like POT it finds a *local* optimum.
``"global"``
    The exact global minimum where it is tractable: problems whose two sets have the same
    size :math:`n \le` ``max_global_size`` with uniform weights. With cosine- or
    squared-Euclidean-distance structure matrices the quadratic term is concave on
    :math:`U(p,q)`, so the minimum sits at a vertex, and the vertices of
    :math:`U(\mathbf 1/n, \mathbf 1/n)` are the permutation matrices divided by :math:`n`.
    All :math:`n!` of them are enumerated. Every other problem is solved by ``"cg"``.
    :attr:`FGWResult.exact` says which.
``"pot"``
    POT's own per-problem call, looped in Python: for cross-checking from the CLI.
``"sinkhorn"``
    The paper's variant (§4.4): the same conditional gradient, with the linear OT step
    solved by entropic Sinkhorn (regularisation ``epsilon``) instead of exactly; soft
    plans, value = FGW objective of the final plan. See :mod:`~vgrc.evaluators.solvers.sinkhorn`.
    The default stays ``"cg"``: exact linear steps reproduce POT's values bit for bit,
    have no extra parameter to tune, and are hundreds of times faster in compiled loops.

Mixed set sizes in one batch: pad to the largest ``n`` and ``m`` and give padded rows and
columns zero weight. Problems are solved on their positive-weight objects only, so padding
values never matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.solvers._arrays import CHUNK, check_batch, n_blocks, rounding_eps, to_numpy, weights
from vgrc.evaluators.solvers.sinkhorn import DEFAULT_EPSILON

__all__ = ["FGWResult", "fgw_solve", "fgw_cost", "list_fgw_solvers"]

FGW_SOLVERS = ("cg", "global", "pot", "sinkhorn")


def list_fgw_solvers() -> list[str]:
    """Names accepted by ``solver=``."""
    return list(FGW_SOLVERS)


@dataclass
class FGWResult:
    """Result of :func:`fgw_solve`.

    Attributes
    ----------
    cost : array (B,)
        FGW value of each problem (numpy, or torch on the inputs' device).
    plan : array (B, n, m)
        Transport plans; zero on padded rows/columns.
    n_iter : array (B,)
        Conditional-gradient iterations (0 where the global solver answered).
    exact : array of bool (B,)
        True where the value is the proven global minimum (``solver="global"`` on an
        eligible problem), False where it is a conditional-gradient local optimum.
    """

    cost: object
    plan: object
    n_iter: object
    exact: object


def _prepare(M, C1, C2, p, q, alpha):
    Mn, kind = to_numpy("M", M, None)
    check_batch("M", Mn, 3)
    B, n, m = Mn.shape
    if B == 0 or n == 0 or m == 0:
        raise InvalidInputError(f"M must hold at least one problem with one object per side, got shape {Mn.shape}")
    C1n, kind = to_numpy("C1", C1, kind)
    check_batch("C1", C1n, 3, (B, n, n), finite=False)
    C2n, kind = to_numpy("C2", C2, kind)
    check_batch("C2", C2n, 3, (B, m, m), finite=False)
    from vgrc.evaluators.solvers._kernels import check_structure

    for name, C in (("C1", C1n), ("C2", C2n)):
        found = check_structure(C, 1e-10)
        if found:
            code, b = divmod(found, B)
            if code == 1:
                raise InvalidInputError(f"{name} contains NaN or infinite values (problem {b})")
            raise InvalidInputError(f"{name} must be symmetric (problem {b}); use distance matrices")
    pn, kind = weights("p", p, B, n, kind)
    qn, kind = weights("q", q, B, m, kind)
    sp, sq = pn.sum(axis=1), qn.sum(axis=1)
    # tolerate the rounding of the weights' own dtype (float32 thirds vs halves differ by ~1e-7)
    eps = max(rounding_eps(p), rounding_eps(q))
    tol = max(1e-9, 8 * max(n, m) * eps)
    bad = np.abs(sp - sq) > tol * np.maximum(sp, sq)
    if bad.any():
        b = int(np.argmax(bad))
        raise InvalidInputError(f"p and q must have the same total mass in every problem; problem {b}: {sp[b]:.9g} vs {sq[b]:.9g}")
    qn = qn * (sp / sq)[:, None]  # exactly equal masses for the transport subproblems
    try:
        alpha = float(alpha)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"alpha must be a number in [0, 1], got {alpha!r}") from exc
    if not 0.0 <= alpha <= 1.0:
        raise InvalidInputError(f"alpha must be in [0, 1], got {alpha}")
    return Mn, C1n, C2n, pn, qn, alpha, kind


def _solve_pot(M, C1, C2, p, q, alpha, max_iter, tol_rel, tol_abs, cost, plan, n_iter):
    import ot

    for b in range(M.shape[0]):
        r, c = np.flatnonzero(p[b] > 0), np.flatnonzero(q[b] > 0)
        T, log = ot.gromov.fused_gromov_wasserstein(
            M[b][np.ix_(r, c)], C1[b][np.ix_(r, r)], C2[b][np.ix_(c, c)], p[b, r], q[b, c],
            loss_fun="square_loss", symmetric=True, alpha=alpha, log=True,
            max_iter=max_iter, tol_rel=tol_rel, tol_abs=tol_abs,
        )
        cost[b] = float(log["fgw_dist"])
        plan[b][np.ix_(r, c)] = T
        n_iter[b] = len(log["loss"]) - 1


def fgw_solve(
    M,
    C1,
    C2,
    p=None,
    q=None,
    alpha: float = 0.5,
    solver: str = "cg",
    max_iter: int = 10_000,
    tol_rel: float = 1e-9,
    tol_abs: float = 1e-9,
    max_global_size: int = 7,
    epsilon: float = DEFAULT_EPSILON,
) -> FGWResult:
    r"""Solve a batch of FGW problems; return values, plans and diagnostics.

    Parameters
    ----------
    M : array (B, n, m)
        Feature cost between query objects (rows) and candidate objects (columns), e.g.
        cosine distances :math:`1 - \langle x_i, y_j\rangle`.
    C1 : array (B, n, n)
        Symmetric structure matrix of the query objects.
    C2 : array (B, m, m)
        Symmetric structure matrix of the candidate objects.
    p : array (B, n), optional
        Query marginal; ``None`` = uniform ``1/n``. Zero = padding (object absent).
    q : array (B, m), optional
        Candidate marginal; ``None`` = uniform ``1/m``. Must have p's total mass.
    alpha : float in [0, 1]
        Trade-off: 0 = pure Wasserstein on ``M``, 1 = pure Gromov–Wasserstein.
    solver : {"cg", "global", "pot", "sinkhorn"}
        See the module documentation.
    max_iter, tol_rel, tol_abs
        Conditional-gradient limits, POT's defaults (``max_iter=1e4``, ``tol_rel=tol_abs=1e-9``).
    max_global_size : int
        Largest set size that ``solver="global"`` enumerates (n! vertices).
    epsilon : float > 0
        Entropic regularisation of the linear step of ``solver="sinkhorn"``.

    Returns
    -------
    FGWResult
        numpy arrays for numpy inputs; torch tensors on the inputs' device (and in their
        floating dtype) for torch inputs.

    Raises
    ------
    InvalidInputError
        Shapes that do not fit the batched layout, non-finite values, negative weights,
        unequal masses, asymmetric structure matrices, ``alpha`` outside [0, 1], or an
        unknown solver.
    """
    return _solve(M, C1, C2, p, q, alpha, solver, max_iter, tol_rel, tol_abs, max_global_size, store_plan=True, epsilon=epsilon)


def _solve(M, C1, C2, p, q, alpha, solver, max_iter, tol_rel, tol_abs, max_global_size, store_plan, epsilon=DEFAULT_EPSILON) -> FGWResult:
    if solver not in FGW_SOLVERS:
        raise InvalidInputError(f"unknown FGW solver {solver!r}; valid solvers: {', '.join(FGW_SOLVERS)}")
    if int(max_iter) < 1:
        raise InvalidInputError(f"max_iter must be ≥ 1, got {max_iter}")
    if solver == "sinkhorn" and not (isinstance(epsilon, (int, float)) and np.isfinite(epsilon) and epsilon > 0):
        raise InvalidInputError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    Mn, C1n, C2n, pn, qn, alpha, kind = _prepare(M, C1, C2, p, q, alpha)
    B, n, m = Mn.shape
    store_plan = store_plan or solver == "pot"
    cost = np.zeros(B)
    plan = np.zeros((B, n, m)) if store_plan else None
    n_iter = np.zeros(B, dtype=np.int64)
    exact = np.zeros(B, dtype=bool)
    if solver == "sinkhorn":
        from vgrc.evaluators.solvers.sinkhorn import fgw_sinkhorn_batch

        for s in range(0, B, CHUNK):
            sl = slice(s, min(B, s + CHUNK))
            c, T, it = fgw_sinkhorn_batch(Mn[sl], C1n[sl], C2n[sl], pn[sl], qn[sl], alpha, float(epsilon), int(max_iter), tol_rel, tol_abs)
            cost[sl], n_iter[sl] = c, it
            if store_plan:
                plan[sl] = T
    elif solver == "pot":
        _solve_pot(Mn, C1n, C2n, pn, qn, alpha, int(max_iter), tol_rel, tol_abs, cost, plan, n_iter)
    else:
        _run_kernels(
            Mn, C1n, C2n, pn, qn, alpha, solver, int(max_iter), float(tol_rel), float(tol_abs),
            int(max_global_size), cost, plan, n_iter, exact, store_plan,
        )
    return FGWResult(
        cost=kind.wrap(cost),
        plan=None if plan is None else kind.wrap(plan),
        n_iter=kind.wrap(n_iter),
        exact=kind.wrap(exact),
    )


def _run_kernels(M, C1, C2, p, q, alpha, solver, max_iter, tol_rel, tol_abs, max_global_size, cost, plan, n_iter, exact, store_plan):
    from vgrc.evaluators.solvers import _kernels as K

    B = M.shape[0]
    dummy = np.zeros((1, 1, 1))
    for s in range(0, B, CHUNK):
        sl = slice(s, min(B, s + CHUNK))
        nb = n_blocks(sl.stop - sl.start)
        plans = plan[sl] if store_plan else dummy
        todo = np.ones(sl.stop - sl.start, dtype=bool)
        if solver == "global":
            K.fgw_global_batch(M[sl], C1[sl], C2[sl], p[sl], q[sl], alpha, max_global_size, cost[sl], exact[sl], plans, store_plan, nb)
            todo = ~exact[sl]
        if todo.all():
            K.fgw_cg_batch(M[sl], C1[sl], C2[sl], p[sl], q[sl], alpha, max_iter, tol_rel, tol_abs, cost[sl], n_iter[sl], plans, store_plan, nb)
        elif todo.any():
            idx = np.flatnonzero(todo) + s
            c, it = np.zeros(len(idx)), np.zeros(len(idx), dtype=np.int64)
            pl = np.zeros((len(idx),) + plan.shape[1:]) if store_plan else dummy
            K.fgw_cg_batch(M[idx], C1[idx], C2[idx], p[idx], q[idx], alpha, max_iter, tol_rel, tol_abs, c, it, pl, store_plan, n_blocks(len(idx)))
            cost[idx], n_iter[idx] = c, it
            if store_plan:
                plan[idx] = pl


def fgw_cost(
    M,
    C1,
    C2,
    p=None,
    q=None,
    alpha: float = 0.5,
    solver: str = "cg",
    max_iter: int = 10_000,
    tol_rel: float = 1e-9,
    tol_abs: float = 1e-9,
    max_global_size: int = 7,
    epsilon: float = DEFAULT_EPSILON,
):
    """FGW values only, shape (B,): :func:`fgw_solve` without building the plans.

    Same parameters and errors as :func:`fgw_solve`. Rerankers use the negative value as
    the score (paper Eq. 4).
    """
    return _solve(M, C1, C2, p, q, alpha, solver, max_iter, tol_rel, tol_abs, max_global_size, store_plan=False, epsilon=epsilon).cost
