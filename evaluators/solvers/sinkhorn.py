r"""Batched FGW with an entropic (Sinkhorn) linear step: the paper's variant (§4.4).

The paper solves FGW "via conditional gradient (Frank–Wolfe), which linearizes the
quadratic GW term at each iteration and solves a linear OT subproblem via Sinkhorn".
vgrc's default (``"cg"``) solves that subproblem exactly, as POT does, so the plan moves
between vertices and values equal POT's. This module is the paper's variant, selected with
``solver="sinkhorn"`` (``vgrc eval --solver sinkhorn --epsilon E``):

.. math::

    G_t = (1-\alpha) M + 2\alpha\,\big(c_{C_1,C_2} - 2\, C_1 T_t C_2\big), \qquad
    \tilde T_t = \mathrm{Sinkhorn}_\varepsilon(p, q, G_t)
      = \arg\min_{T \in U(p,q)} \langle G_t, T\rangle - \varepsilon H(T),

followed by POT's exact line search for the square loss on :math:`T_t + \tau(\tilde T_t - T_t)`,
:math:`\tau \in [0, 1]`, and POT's stopping rule (relative or absolute change of the
objective). :math:`c_{C_1,C_2} = (C_1^{2}) p \mathbf 1^\top + \mathbf 1 q^\top (C_2^{2})^\top`
as in POT's ``init_matrix``. The value returned is the FGW objective of the final plan (no
entropy term), so it is comparable with ``"cg"``; the plans are soft (fractional mass on
several candidate objects).

All problems of a batch advance together in vectorised numpy (log-domain Sinkhorn, so a
small ``epsilon`` does not underflow); converged problems are frozen. Padding (zero
weights) is supported as everywhere else. A per-problem reference built from POT's own
``ot.sinkhorn`` is in the tests.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fgw_sinkhorn_batch", "DEFAULT_EPSILON"]

#: default entropic regularisation of the linear step (costs are cosine distances in [0, 2])
DEFAULT_EPSILON = 0.01


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    mx = np.max(a, axis=axis, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - mx).sum(axis=axis)) + np.squeeze(mx, axis=axis)


def sinkhorn_log(G: np.ndarray, logp: np.ndarray, logq: np.ndarray, epsilon: float, max_iter: int = 2000, tol: float = 1e-10) -> np.ndarray:
    """Entropic OT plans of a batch, log domain: ``G`` (B, n, m), ``log p`` (B, n), ``log q`` (B, m)."""
    f = np.zeros(logp.shape)
    g = np.zeros(logq.shape)
    p = np.exp(logp)
    for _ in range(max_iter):
        f = epsilon * logp - epsilon * _logsumexp((g[:, None, :] - G) / epsilon, axis=2)
        g = epsilon * logq - epsilon * _logsumexp((f[:, :, None] - G) / epsilon, axis=1)
        logT = (f[:, :, None] + g[:, None, :] - G) / epsilon
        err = np.abs(np.exp(_logsumexp(logT, axis=2)) - p).sum(axis=1).max()
        if err < tol:
            break
    return np.exp((f[:, :, None] + g[:, None, :] - G) / epsilon)


def fgw_sinkhorn_batch(M, C1, C2, p, q, alpha: float, epsilon: float, max_iter: int, tol_rel: float, tol_abs: float):
    """Costs (B,), plans (B, n, m) and iteration counts (B,) of the Sinkhorn-step CG.

    Inputs are validated float64 arrays in the batched layout of :func:`~vgrc.evaluators.solvers.fgw_solve`.
    """
    B = M.shape[0]
    with np.errstate(divide="ignore"):
        logp, logq = np.log(p), np.log(q)
    constC = ((C1**2) @ p[:, :, None]) + ((C2**2) @ q[:, :, None]).transpose(0, 2, 1)  # (B, n, m)

    def objective(T, idx):
        tens = constC[idx] - 2.0 * C1[idx] @ T @ C2[idx]
        return (1 - alpha) * (M[idx] * T).sum((1, 2)) + alpha * (tens * T).sum((1, 2)), tens

    T = p[:, :, None] * q[:, None, :]
    cost, tens = objective(T, np.arange(B))
    n_iter = np.zeros(B, dtype=np.int64)
    active = np.ones(B, dtype=bool)
    for it in range(1, max_iter + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        Ti, tensi = T[idx], tens[idx]
        grad = (1 - alpha) * M[idx] + 2.0 * alpha * tensi
        Tc = sinkhorn_log(grad, logp[idx], logq[idx], epsilon)
        D = Tc - Ti
        C1D = C1[idx] @ D @ C2[idx]
        a = -2.0 * alpha * (C1D * D).sum((1, 2))
        b = (1 - alpha) * (M[idx] * D).sum((1, 2)) + alpha * ((constC[idx] * D).sum((1, 2)) - 4.0 * ((C1[idx] @ Ti @ C2[idx]) * D).sum((1, 2)))
        # POT's solve_1d_linesearch_quad
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = np.where(a > 0, np.clip(-b / (2 * np.where(a > 0, a, 1.0)), 0.0, 1.0), np.where(a + b < 0, 1.0, 0.0))
        T[idx] = Ti + tau[:, None, None] * D
        new_cost, new_tens = objective(T[idx], idx)
        tens[idx] = new_tens
        change = np.abs(new_cost - cost[idx])
        rel = change / np.where(np.abs(cost[idx]) > 0, np.abs(cost[idx]), 1.0)
        cost[idx] = new_cost
        n_iter[idx] = it
        active[idx] = ~((rel < tol_rel) | (change < tol_abs))
    return cost, T, n_iter
