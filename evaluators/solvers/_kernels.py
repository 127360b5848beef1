"""Compiled (numba) kernels behind :mod:`vgrc.evaluators.solvers`.

One small problem per iteration of a serial loop, and many such loops in parallel
(``prange`` over blocks of the batch, each block allocating its workspace once). Padded
rows/columns (zero weight) are compacted away before a problem is solved.

Why numba: a problem of 3–10 objects costs ~1 kflop, and the goals are microseconds per
problem. Vectorising over the batch with numpy/torch needs a Python-level step per
Dijkstra pop, per augmentation and per conditional-gradient iteration (hundreds of
array operations per batch), which measured 10–40× slower than these loops on 2 cores.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

INF = np.inf


# --------------------------------------------------------------------------- exact transport


@njit(cache=True, nogil=True)
def transport_ssp(cost, n, m, supply, demand, flow, ws_f, ws_i, eps):
    """Exact min-cost transport by successive shortest paths (Dijkstra with potentials).

    Solves ``min <cost[:n,:m], F>`` over ``F >= 0`` with row sums ``<= supply`` and column
    sums ``<= demand``, pushing as much mass as the smaller side holds (for balanced
    problems: the transport LP; for unit supplies/demands: a rectangular assignment).
    The result is a vertex of the polytope. Writes ``flow[:n,:m]``.

    The network is source -> rows -> columns -> sink, with node potentials keeping every
    residual reduced cost ``c(u, v) + pi(u) - pi(v)`` non-negative. The source and sink
    carry potentials too, so each augmenting path is a true shortest path from the source
    to the sink, which keeps every intermediate flow of minimum cost.

    ``ws_f``: float workspace of length >= 4(n+m); ``ws_i``: int workspace >= 2(n+m).
    """
    pr = ws_f[0:n]
    pc = ws_f[n : n + m]
    dr = ws_f[n + m : 2 * n + m]
    dc = ws_f[2 * n + m : 2 * n + 2 * m]
    rs = ws_f[2 * n + 2 * m : 3 * n + 2 * m]
    rd = ws_f[3 * n + 2 * m : 3 * n + 3 * m]
    par_r = ws_i[0:n]
    par_c = ws_i[n : n + m]
    fin = ws_i[n + m : 2 * n + 2 * m]  # finalised flags: rows then cols
    for i in range(n):
        pr[i] = 0.0
        rs[i] = supply[i]
        for j in range(m):
            flow[i, j] = 0.0
    ps = 0.0
    pt = INF
    for j in range(m):
        rd[j] = demand[j]
        mn = INF
        for i in range(n):
            if cost[i, j] < mn:
                mn = cost[i, j]
        pc[j] = mn
        if mn < pt:
            pt = mn
    while True:
        for i in range(n):
            dr[i] = INF
            if rs[i] > eps:
                dr[i] = ps - pr[i] if ps > pr[i] else 0.0
            par_r[i] = -1
            fin[i] = 0
        for j in range(m):
            dc[j] = INF
            par_c[j] = -1
            fin[n + j] = 0
        tcol = -1
        dt = INF
        while True:
            best = INF
            bi = -1
            is_row = False
            for i in range(n):
                if fin[i] == 0 and dr[i] < best:
                    best = dr[i]
                    bi = i
                    is_row = True
            for j in range(m):
                if fin[n + j] == 0 and dc[j] < best:
                    best = dc[j]
                    bi = j
                    is_row = False
            if bi < 0 or best >= dt:
                break
            if is_row:
                fin[bi] = 1
                base = best + pr[bi]
                for j in range(m):
                    if fin[n + j] == 0:
                        d = base + cost[bi, j] - pc[j]
                        if d < dc[j]:
                            dc[j] = d
                            par_c[j] = bi
            else:
                fin[n + bi] = 1
                if rd[bi] > eps:
                    rc = pc[bi] - pt
                    d = best + (rc if rc > 0.0 else 0.0)
                    if d < dt:
                        dt = d
                        tcol = bi
                for i in range(n):
                    if fin[i] == 0 and flow[i, bi] > eps:
                        rc = pc[bi] - cost[i, bi] - pr[i]
                        d = best + (rc if rc > 0.0 else 0.0)
                        if d < dr[i]:
                            dr[i] = d
                            par_r[i] = bi
        if tcol < 0:
            break  # no supply or no demand left
        for i in range(n):
            pr[i] += dr[i] if dr[i] < dt else dt
        for j in range(m):
            pc[j] += dc[j] if dc[j] < dt else dt
        pt += dt
        # bottleneck along the path (backward edges limit by their flow)
        amt = rd[tcol]
        j = tcol
        while True:
            i = par_c[j]
            if par_r[i] < 0:
                if rs[i] < amt:
                    amt = rs[i]
                break
            jj = par_r[i]
            if flow[i, jj] < amt:
                amt = flow[i, jj]
            j = jj
        rd[tcol] -= amt
        j = tcol
        while True:
            i = par_c[j]
            flow[i, j] += amt
            if par_r[i] < 0:
                rs[i] -= amt
                break
            jj = par_r[i]
            flow[i, jj] -= amt
            j = jj


@njit(cache=True, nogil=True)
def hungarian(a, n, m, u, v, row_of, way, minv, used):
    """Minimum-cost assignment of all n rows to distinct columns of ``a[:n, :m]``, n <= m.

    Shortest augmenting paths with dual potentials (the O(n^2 m) Hungarian algorithm,
    Jonker–Volgenant style). On return ``row_of[j + 1]`` is the row (1-based, 0 = none)
    assigned to column j. Workspaces: ``u`` (n+1), ``v``, ``row_of``, ``way``, ``minv``,
    ``used`` (m+1).
    """
    for i in range(n + 1):
        u[i] = 0.0
    for j in range(m + 1):
        v[j] = 0.0
        row_of[j] = 0
        way[j] = 0
    for i in range(1, n + 1):
        row_of[0] = i
        j0 = 0
        for j in range(m + 1):
            minv[j] = INF
            used[j] = 0
        while True:
            used[j0] = 1
            i0 = row_of[j0]
            delta = INF
            j1 = 0
            for j in range(1, m + 1):
                if used[j] == 0:
                    cur = a[i0 - 1, j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(m + 1):
                if used[j] == 1:
                    u[row_of[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if row_of[j0] == 0:
                break
        while True:
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
            if j0 == 0:
                break


# --------------------------------------------------------------------------- FGW by conditional gradient


@njit(cache=True, nogil=True)
def _c1_x_c2(C1, X, C2, n, m, tmp, out):
    """out = C1 @ X @ (2 C2)^T for the leading (n, m) blocks (POT's hC1 X hC2^T)."""
    for i in range(n):
        for l in range(m):
            s = 0.0
            for k in range(n):
                s += C1[i, k] * X[k, l]
            tmp[i, l] = s
    for i in range(n):
        for j in range(m):
            s = 0.0
            for l in range(m):
                s += tmp[i, l] * (2.0 * C2[j, l])
            out[i, j] = s


@njit(cache=True, nogil=True)
def fgw_cg_one(M, C1, C2, p, q, n, m, alpha, max_iter, tol_rel, tol_abs, G, A, Mi, Gc, D, tmp, u, v, ws_f, ws_i, eps, square_uniform):
    """POT's conditional gradient for FGW (square loss, symmetric C1, C2) on one problem.

    Mirrors ``ot.gromov.fused_gromov_wasserstein`` + ``ot.optim.cg`` step for step:
    start at p q^T, linearise, exact transport subproblem, exact line search
    (``solve_gromov_linesearch``), cost updated from the line-search quadratic, stop when
    the relative or absolute change of the cost is below the tolerances. Returns
    ``(cost, iterations)``; the plan is left in ``G``.

    With ``square_uniform`` (n == m, uniform p and q) the transport polytope's vertices
    are permutations / n, and the linear subproblem is solved by :func:`hungarian`.
    """
    a1 = 1.0 - alpha
    for i in range(n):
        s = 0.0
        for k in range(n):
            s += C1[i, k] * C1[i, k] * p[k]
        u[i] = s
    for j in range(m):
        s = 0.0
        for l in range(m):
            s += C2[j, l] * C2[j, l] * q[l]
        v[j] = s
    for i in range(n):
        for j in range(m):
            G[i, j] = p[i] * q[j]
    _c1_x_c2(C1, G, C2, n, m, tmp, A)
    lin = 0.0
    quad = 0.0
    for i in range(n):
        for j in range(m):
            lin += a1 * M[i, j] * G[i, j]
            quad += (u[i] + v[j] - A[i, j]) * G[i, j]
    cost = lin + alpha * quad
    it = 0
    while True:
        it += 1
        old = cost
        for i in range(n):
            for j in range(m):
                Mi[i, j] = a1 * M[i, j] + alpha * (2.0 * (u[i] + v[j] - A[i, j]))
        if square_uniform:
            k = n + 1
            hungarian(Mi, n, n, ws_f[0:k], ws_f[k : 2 * k], ws_i[0:k], ws_i[k : 2 * k], ws_f[2 * k : 3 * k], ws_i[2 * k : 3 * k])
            for i in range(n):
                for j in range(n):
                    Gc[i, j] = 0.0
            for j in range(n):
                Gc[ws_i[j + 1] - 1, j] = p[0]
        else:
            transport_ssp(Mi, n, m, p, q, Gc, ws_f, ws_i, eps)
        for i in range(n):
            for j in range(m):
                Gc[i, j] -= G[i, j]  # Gc now holds deltaG
        _c1_x_c2(C1, Gc, C2, n, m, tmp, D)
        sdd = 0.0
        sdg = 0.0
        smd = 0.0
        for i in range(n):
            for j in range(m):
                sdd += D[i, j] * Gc[i, j]
                sdg += D[i, j] * G[i, j]
                smd += a1 * M[i, j] * Gc[i, j]
        a = -alpha * sdd
        b = smd - 2.0 * alpha * sdg
        if a > 0.0:
            t = -b / (2.0 * a)
            if t > 1.0:
                t = 1.0
            if t < 0.0:
                t = 0.0
        elif a + b < 0.0:
            t = 1.0
        else:
            t = 0.0
        cost = cost + a * t * t + b * t
        for i in range(n):
            for j in range(m):
                G[i, j] += t * Gc[i, j]
                A[i, j] += t * D[i, j]
        if it >= max_iter:
            break
        delta = abs(cost - old)
        if delta < tol_abs:
            break
        if cost != 0.0 and delta / abs(cost) < tol_rel:
            break
    return cost, it


@njit(cache=True, nogil=True)
def _uniform(pw, qw, n, m):
    if n != m:
        return False
    for i in range(1, n):
        if pw[i] != pw[0] or qw[i] != qw[0]:
            return False
    return pw[0] == qw[0]


@njit(cache=True, nogil=True)
def _compact(w, idx):
    k = 0
    for i in range(w.shape[0]):
        if w[i] > 0.0:
            idx[k] = i
            k += 1
    return k


@njit(cache=True, parallel=True)
def fgw_cg_batch(M, C1, C2, p, q, alpha, max_iter, tol_rel, tol_abs, out_cost, out_iter, plans, store_plan, n_blocks):
    """Solve every problem of the batch; ``plans`` is written only when ``store_plan``."""
    B, N, K = M.shape
    for blk in prange(n_blocks):
        start = blk * B // n_blocks
        stop = (blk + 1) * B // n_blocks
        ri = np.empty(N, np.int64)
        ci = np.empty(K, np.int64)
        Mw = np.empty((N, K))
        C1w = np.empty((N, N))
        C2w = np.empty((K, K))
        pw = np.empty(N)
        qw = np.empty(K)
        G = np.empty((N, K))
        A = np.empty((N, K))
        Mi = np.empty((N, K))
        Gc = np.empty((N, K))
        D = np.empty((N, K))
        tmp = np.empty((N, K))
        u = np.empty(N)
        v = np.empty(K)
        ws_f = np.empty(4 * (N + K) + 4)
        ws_i = np.empty(2 * (N + K) + 4, np.int64)
        for b in range(start, stop):
            n = _compact(p[b], ri)
            m = _compact(q[b], ci)
            mass = 0.0
            for i in range(n):
                pw[i] = p[b, ri[i]]
                mass += pw[i]
                for j in range(m):
                    Mw[i, j] = M[b, ri[i], ci[j]]
                for k in range(n):
                    C1w[i, k] = C1[b, ri[i], ri[k]]
            for j in range(m):
                qw[j] = q[b, ci[j]]
                for l in range(m):
                    C2w[j, l] = C2[b, ci[j], ci[l]]
            cost, it = fgw_cg_one(
                Mw, C1w, C2w, pw, qw, n, m, alpha, max_iter, tol_rel, tol_abs,
                G, A, Mi, Gc, D, tmp, u, v, ws_f, ws_i, 1e-12 * mass, _uniform(pw, qw, n, m),
            )
            out_cost[b] = cost
            out_iter[b] = it
            if store_plan:
                for i in range(N):
                    for j in range(K):
                        plans[b, i, j] = 0.0
                for i in range(n):
                    for j in range(m):
                        plans[b, ri[i], ci[j]] = G[i, j]


# --------------------------------------------------------------------------- global minimum over permutations


@njit(cache=True, nogil=True)
def _perm_cost(M, C1, C2, perm, n, a1, alpha):
    lin = 0.0
    for i in range(n):
        lin += M[i, perm[i]]
    quad = 0.0
    for i in range(n):
        for k in range(n):
            d = C1[i, k] - C2[perm[i], perm[k]]
            quad += d * d
    return a1 * lin / n + alpha * quad / (n * n)


@njit(cache=True, nogil=True)
def best_permutation(M, C1, C2, n, alpha, perm, c, best_perm):
    """Minimum of the FGW objective over plans P/n, P a permutation (Heap's algorithm)."""
    a1 = 1.0 - alpha
    for i in range(n):
        perm[i] = i
        c[i] = 0
        best_perm[i] = i
    best = _perm_cost(M, C1, C2, perm, n, a1, alpha)
    i = 0
    while i < n:
        if c[i] < i:
            if i % 2 == 0:
                perm[0], perm[i] = perm[i], perm[0]
            else:
                perm[c[i]], perm[i] = perm[i], perm[c[i]]
            val = _perm_cost(M, C1, C2, perm, n, a1, alpha)
            if val < best:
                best = val
                for k in range(n):
                    best_perm[k] = perm[k]
            c[i] += 1
            i = 0
        else:
            c[i] = 0
            i += 1
    return best


@njit(cache=True, parallel=True)
def fgw_global_batch(M, C1, C2, p, q, alpha, max_n, out_cost, exact, plans, store_plan, n_blocks):
    """Global minimum for problems with equal set sizes <= max_n and uniform weights.

    Problems outside that scope are left untouched (``exact[b] = False``) for the caller
    to solve by conditional gradient.
    """
    B, N, K = M.shape
    for blk in prange(n_blocks):
        start = blk * B // n_blocks
        stop = (blk + 1) * B // n_blocks
        ri = np.empty(N, np.int64)
        ci = np.empty(K, np.int64)
        Mw = np.empty((N, K))
        C1w = np.empty((N, N))
        C2w = np.empty((K, K))
        perm = np.empty(max(N, K), np.int64)
        cnt = np.empty(max(N, K), np.int64)
        best_perm = np.empty(max(N, K), np.int64)
        for b in range(start, stop):
            n = _compact(p[b], ri)
            m = _compact(q[b], ci)
            ok = n == m and n <= max_n
            if ok:
                for i in range(1, n):
                    if abs(p[b, ri[i]] - p[b, ri[0]]) > 1e-12 * p[b, ri[0]] or abs(q[b, ci[i]] - q[b, ci[0]]) > 1e-12 * q[b, ci[0]]:
                        ok = False
            exact[b] = ok
            if not ok:
                continue
            for i in range(n):
                for j in range(n):
                    Mw[i, j] = M[b, ri[i], ci[j]]
                    C1w[i, j] = C1[b, ri[i], ri[j]]
                    C2w[i, j] = C2[b, ci[i], ci[j]]
            out_cost[b] = best_permutation(Mw, C1w, C2w, n, alpha, perm, cnt, best_perm)
            if store_plan:
                for i in range(N):
                    for j in range(K):
                        plans[b, i, j] = 0.0
                for i in range(n):
                    plans[b, ri[i], ci[best_perm[i]]] = 1.0 / n


# --------------------------------------------------------------------------- assignment


@njit(cache=True, parallel=True)
def assignment_batch(M, p, q, out_cost, plans, store_plan, n_blocks):
    """Minimum-cost one-to-one matching of the active rows/columns; mean matched cost."""
    B, N, K = M.shape
    L = max(N, K) + 1
    for blk in prange(n_blocks):
        start = blk * B // n_blocks
        stop = (blk + 1) * B // n_blocks
        ri = np.empty(N, np.int64)
        ci = np.empty(K, np.int64)
        Mw = np.empty((N, K))
        Mt = np.empty((K, N))
        u = np.empty(L)
        v = np.empty(L)
        minv = np.empty(L)
        row_of = np.empty(L, np.int64)
        way = np.empty(L, np.int64)
        used = np.empty(L, np.int64)
        for b in range(start, stop):
            n = _compact(p[b], ri)
            m = _compact(q[b], ci)
            if store_plan:
                for i in range(N):
                    for j in range(K):
                        plans[b, i, j] = 0.0
            total = 0.0
            if n <= m:
                for i in range(n):
                    for j in range(m):
                        Mw[i, j] = M[b, ri[i], ci[j]]
                hungarian(Mw, n, m, u, v, row_of, way, minv, used)
                for j in range(m):
                    if row_of[j + 1] > 0:
                        i = row_of[j + 1] - 1
                        total += Mw[i, j]
                        if store_plan:
                            plans[b, ri[i], ci[j]] = 1.0
            else:
                for j in range(m):
                    for i in range(n):
                        Mt[j, i] = M[b, ri[i], ci[j]]
                hungarian(Mt, m, n, u, v, row_of, way, minv, used)
                for i in range(n):
                    if row_of[i + 1] > 0:
                        j = row_of[i + 1] - 1
                        total += Mt[j, i]
                        if store_plan:
                            plans[b, ri[i], ci[j]] = 1.0
            out_cost[b] = total / min(n, m)


# --------------------------------------------------------------------------- validation


@njit(cache=True, parallel=True)
def check_structure(C, tol):
    """First problem index whose matrix is non-finite (code 1) or asymmetric (code 2:
    ``|C_ik - C_ki| > tol * max(1, |C_ik|)``), as ``code * B + b``; 0 when all are fine.
    One pass, no temporaries."""
    B, n, _ = C.shape
    bad = np.zeros(B, np.int64)
    for b in prange(B):
        for i in range(n):
            for k in range(n):
                x = C[b, i, k]
                if not np.isfinite(x):
                    bad[b] = 1
                elif k > i and abs(x - C[b, k, i]) > tol * max(1.0, abs(x)):
                    if bad[b] == 0:
                        bad[b] = 2
    for b in range(B):
        if bad[b] != 0:
            return bad[b] * B + b
    return 0
