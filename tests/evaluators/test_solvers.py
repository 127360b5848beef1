"""Batched FGW and assignment solvers: agreement with POT / scipy / brute force, and
the mathematical properties the reranker relies on."""

import itertools
import re

import numpy as np
import ot
import pytest
from scipy.optimize import linear_sum_assignment

from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.solvers import assignment_cost, assignment_solve, fgw_cost, fgw_solve, list_fgw_solvers


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def problems(X, Y):
    """Cosine-distance M, C1, C2 for batches of object embeddings X (B, n, d), Y (B, m, d)."""
    return 1 - X @ Y.transpose(0, 2, 1), 1 - X @ X.transpose(0, 2, 1), 1 - Y @ Y.transpose(0, 2, 1)


def random_problems(rng, B, n, m, d=8):
    return problems(unit(rng.normal(size=(B, n, d))), unit(rng.normal(size=(B, m, d))))


def structured_problems(rng, B, n, m, d=16):
    """CLIP-like: a shared modality offset per side plus object identity; candidates
    share some objects with the query (so good matches exist)."""
    offset_t, offset_i = rng.normal(size=d) * 2, rng.normal(size=d) * 2
    objs = rng.normal(size=(B, n + m, d))
    X = unit(objs[:, :n] + offset_t + 0.3 * rng.normal(size=(B, n, d)))
    keep = objs[:, rng.permutation(n + m)[:m]]
    Y = unit(keep + offset_i + 0.3 * rng.normal(size=(B, m, d)))
    return problems(X, Y)


def pot_values(M, C1, C2, p=None, q=None, alpha=0.5):
    out = []
    for b in range(M.shape[0]):
        r = np.flatnonzero(p[b] > 0) if p is not None else np.arange(M.shape[1])
        c = np.flatnonzero(q[b] > 0) if q is not None else np.arange(M.shape[2])
        pb = p[b, r] if p is not None else ot.unif(len(r))
        qb = q[b, c] if q is not None else ot.unif(len(c))
        out.append(ot.gromov.fused_gromov_wasserstein2(M[b][np.ix_(r, c)], C1[b][np.ix_(r, r)], C2[b][np.ix_(c, c)], pb, qb, symmetric=True, alpha=alpha))
    return np.array(out)


# --------------------------------------------------------------------------- agreement with POT


@pytest.mark.parametrize("n, m", [(1, 1), (2, 2), (3, 3), (3, 5), (5, 2), (6, 6), (10, 7)])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 0.9])
def test_random_agrees_with_pot(n, m, alpha):
    rng = np.random.default_rng(n * 100 + m)
    M, C1, C2 = random_problems(rng, 40, n, m)
    ours = fgw_cost(M, C1, C2, alpha=alpha)
    assert np.abs(ours - pot_values(M, C1, C2, alpha=alpha)).max() <= 1e-9


@pytest.mark.parametrize("n, m", [(3, 3), (4, 6), (8, 8)])
def test_structured_agrees_with_pot_and_ranks_identically(n, m):
    rng = np.random.default_rng(7)
    M, C1, C2 = structured_problems(rng, 300, n, m)
    ours, ref = fgw_cost(M, C1, C2, alpha=0.5), pot_values(M, C1, C2, alpha=0.5)
    assert np.abs(ours - ref).max() <= 1e-9
    # 30 queries × 10 candidates: identical candidate order per query
    assert (np.argsort(ours.reshape(30, 10), axis=1, kind="stable") == np.argsort(ref.reshape(30, 10), axis=1, kind="stable")).all()


def test_mixed_sizes_with_padding_agree_with_pot():
    rng = np.random.default_rng(3)
    B, N, K = 200, 10, 10
    M, C1, C2 = random_problems(rng, B, N, K)
    ns, ms = rng.integers(1, N + 1, B), rng.integers(1, K + 1, B)
    p = (np.arange(N) < ns[:, None]) / ns[:, None]
    q = (np.arange(K) < ms[:, None]) / ms[:, None]
    # padded entries hold garbage: they must not matter
    M[p[:, :, None].repeat(K, 2) == 0] = 1e3
    ours = fgw_solve(M, C1, C2, p, q, alpha=0.5)
    assert np.abs(ours.cost - pot_values(M, C1, C2, p, q)).max() <= 1e-9
    assert np.abs(ours.plan.sum(axis=2) - p).max() <= 1e-12
    assert np.abs(ours.plan.sum(axis=1) - q).max() <= 1e-12
    assert (ours.plan[p == 0] == 0).all()


def test_non_uniform_weights_agree_with_pot():
    rng = np.random.default_rng(11)
    M, C1, C2 = random_problems(rng, 50, 4, 5)
    p = rng.random((50, 4))
    q = rng.random((50, 5))
    p /= p.sum(1, keepdims=True)
    q /= q.sum(1, keepdims=True)
    assert np.abs(fgw_cost(M, C1, C2, p, q, alpha=0.4) - pot_values(M, C1, C2, p, q, alpha=0.4)).max() <= 1e-9


def test_ties_from_duplicate_objects():
    rng = np.random.default_rng(5)
    X = unit(rng.normal(size=(60, 3, 8)))
    Y = unit(rng.normal(size=(60, 4, 8)))
    X[:, 2] = X[:, 0]  # a query naming the same object twice
    Y[:, 1] = Y[:, 0] = X[:, 0]  # a candidate showing it twice
    M, C1, C2 = problems(X, Y)
    ours = fgw_solve(M, C1, C2, alpha=0.5)
    assert np.abs(ours.cost - pot_values(M, C1, C2)).max() <= 1e-9
    assert np.abs(ours.plan.sum(axis=2) - 1 / 3).max() <= 1e-12


def test_pot_solver_is_pot():
    rng = np.random.default_rng(2)
    M, C1, C2 = random_problems(rng, 10, 3, 4)
    assert np.array_equal(fgw_cost(M, C1, C2, solver="pot"), pot_values(M, C1, C2))
    assert list_fgw_solvers() == ["cg", "global", "pot", "sinkhorn"]


# --------------------------------------------------------------------------- mathematical properties


def objective(M, C1, C2, T, alpha):
    """The FGW objective evaluated directly from its definition (no solver algebra)."""
    quad = np.einsum("bik,bjl,bij,bkl->b", C1**2, np.ones_like(C2), T, T) + np.einsum("bik,bjl,bij,bkl->b", np.ones_like(C1), C2**2, T, T)
    quad -= 2 * np.einsum("bik,bjl,bij,bkl->b", C1, C2, T, T)
    return (1 - alpha) * (M * T).sum((1, 2)) + alpha * quad


@pytest.mark.parametrize("alpha", [0.2, 0.5, 1.0])
@pytest.mark.parametrize("solver", ["cg", "global"])
def test_value_is_the_objective_at_the_plan_and_cg_is_stationary(alpha, solver):
    """Also covers alpha = 1 with 2 candidate objects, where the first linear subproblem
    ties exactly and CG may legitimately follow another path than POT's simplex."""
    rng = np.random.default_rng(21)
    for n, m in ((4, 4), (5, 2)):
        M, C1, C2 = random_problems(rng, 60, n, m)
        r = fgw_solve(M, C1, C2, alpha=alpha, solver=solver)
        assert np.abs(objective(M, C1, C2, r.plan, alpha) - r.cost).max() <= 1e-12
        if solver == "cg":  # no feasible descent direction: <grad f(T), S - T> >= 0 at the LP vertex S
            T = r.plan
            grad = (1 - alpha) * M + alpha * 2 * (
                (C1**2 @ np.full((60, n, 1), 1 / n)) + (np.full((60, 1, m), 1 / m) @ (C2**2).transpose(0, 2, 1)) - 2 * C1 @ T @ C2
            )
            for b in range(60):
                S = np.zeros((n, m))
                S[...] = ot.emd(ot.unif(n), ot.unif(m), grad[b])
                assert (grad[b] * (S - T[b])).sum() >= -1e-9


def test_plans_satisfy_marginals():
    rng = np.random.default_rng(0)
    M, C1, C2 = random_problems(rng, 100, 4, 6)
    for solver in ("cg", "pot"):
        plan = fgw_solve(M, C1, C2, solver=solver).plan
        assert (plan >= -1e-15).all()
        assert np.allclose(plan.sum(axis=2), 1 / 4, atol=1e-12) and np.allclose(plan.sum(axis=1), 1 / 6, atol=1e-12)
    M, C1, C2 = random_problems(rng, 100, 4, 4)
    plan = fgw_solve(M, C1, C2, solver="global").plan
    assert np.allclose(plan.sum(axis=2), 1 / 4) and np.allclose(plan.sum(axis=1), 1 / 4)
    assert set(np.unique(plan)) <= {0.0, 0.25}  # vertices: permutations / n


@pytest.mark.parametrize("solver", ["cg", "global"])
def test_known_permutation_is_recovered(solver):
    rng = np.random.default_rng(4)
    B, n = 50, 5
    X = unit(rng.normal(size=(B, n, 16)))
    perms = np.array([rng.permutation(n) for _ in range(B)])
    Y = np.take_along_axis(X, perms[:, :, None], axis=1)  # candidate object j = query object perms[j]
    M, C1, C2 = problems(X, Y)
    result = fgw_solve(M, C1, C2, alpha=0.5, solver=solver)
    expected = np.zeros((B, n, n))
    for b in range(B):
        expected[b, perms[b], np.arange(n)] = 1 / n
    assert np.allclose(result.plan, expected, atol=1e-12)
    assert np.abs(result.cost).max() <= 1e-12  # identical sets: distance 0
    match = assignment_solve(M).matching
    assert np.array_equal(match, expected * n)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.8])
def test_one_object_per_side_is_scaled_cosine_distance(alpha):
    """Paper §4.2, "From one object to many": a single point has no internal geometry."""
    rng = np.random.default_rng(1)
    x, y = unit(rng.normal(size=(30, 1, 8))), unit(rng.normal(size=(30, 1, 8)))
    M, C1, C2 = problems(x, y)
    cos_dist = 1 - (x[:, 0] * y[:, 0]).sum(-1)
    for solver in ("cg", "global", "pot"):
        assert np.allclose(fgw_cost(M, C1, C2, alpha=alpha, solver=solver), (1 - alpha) * cos_dist, atol=1e-12)
    assert np.allclose(assignment_cost(M), cos_dist)


def test_alpha_zero_is_linear_ot():
    rng = np.random.default_rng(9)
    M, C1, C2 = random_problems(rng, 60, 4, 7)
    emd = np.array([ot.emd2(ot.unif(4), ot.unif(7), M[b]) for b in range(60)])
    assert np.abs(fgw_cost(M, C1, C2, alpha=0.0) - emd).max() <= 1e-12


def test_global_is_the_brute_force_minimum_and_never_above_cg():
    rng = np.random.default_rng(12)
    n, alpha = 4, 0.7
    M, C1, C2 = structured_problems(rng, 300, n, n)
    result = fgw_solve(M, C1, C2, alpha=alpha, solver="global")
    assert result.exact.all() and (result.n_iter == 0).all()
    brute = np.full(300, np.inf)
    for perm in itertools.permutations(range(n)):
        perm = list(perm)
        lin = M[:, np.arange(n), perm].sum(1) / n
        quad = ((C1 - C2[:, perm][:, :, perm]) ** 2).sum((1, 2)) / n**2
        brute = np.minimum(brute, (1 - alpha) * lin + alpha * quad)
    assert np.abs(result.cost - brute).max() <= 1e-12
    cg = fgw_cost(M, C1, C2, alpha=alpha)
    assert (result.cost <= cg + 1e-12).all()


def test_global_falls_back_to_cg_outside_its_scope():
    rng = np.random.default_rng(13)
    M, C1, C2 = random_problems(rng, 20, 3, 5)
    result = fgw_solve(M, C1, C2, solver="global")
    assert not result.exact.any() and (result.n_iter > 0).all()
    assert np.allclose(result.cost, fgw_cost(M, C1, C2))
    M, C1, C2 = random_problems(rng, 20, 9, 9)
    assert not fgw_solve(M, C1, C2, solver="global", max_global_size=8).exact.any()


# --------------------------------------------------------------------------- assignment


def padded_square_cost(sub, unmatched=1.0, surplus=0.0):
    """The definition: scipy on the square problem padded with the penalty costs, / n."""
    n, m = sub.shape
    N = max(n, m)
    sq = np.zeros((N, N))
    sq[:n, :m] = sub
    sq[:n, m:] = unmatched
    sq[n:, :m] = surplus
    r, c = linear_sum_assignment(sq)
    return sq[r, c].sum() / n


@pytest.mark.parametrize("n, m", [(1, 1), (3, 3), (5, 5), (2, 5), (6, 3)])
def test_assignment_equals_brute_force_and_scipy(n, m):
    rng = np.random.default_rng(n * 10 + m)
    M = rng.random((40, n, m))
    k = min(n, m)
    # brute force over injections of the smaller side into the larger
    best = np.full(40, np.inf)
    small, large = (n, m) if n <= m else (m, n)
    for inj in itertools.permutations(range(large), small):
        idx = (np.arange(small), list(inj)) if n <= m else (list(inj), np.arange(small))
        best = np.minimum(best, M[:, idx[0], idx[1]].sum(1))
    ours = assignment_solve(M, unmatched_cost=0.7, surplus_cost=0.3)
    penalty = 0.7 * max(n - m, 0) + 0.3 * max(m - n, 0)
    assert np.abs(ours.cost - (best + penalty) / n).max() <= 1e-12
    scipy_cost = np.array([padded_square_cost(M[b], 0.7, 0.3) for b in range(40)])
    assert np.abs(ours.cost - scipy_cost).max() <= 1e-12
    assert (ours.matching.sum((1, 2)) == k).all() and ours.matching.sum(2).max() <= 1 and ours.matching.sum(1).max() <= 1


@pytest.mark.parametrize("unmatched, surplus", [(1.0, 0.0), (1.0, 1.0), (0.25, 2.0)])
def test_assignment_with_padding_matches_scipy_on_the_padded_square(unmatched, surplus):
    rng = np.random.default_rng(8)
    M = 2 * rng.random((100, 6, 8))
    ns, ms = rng.integers(1, 7, 100), rng.integers(1, 9, 100)
    p = (np.arange(6) < ns[:, None]).astype(float)
    q = (np.arange(8) < ms[:, None]).astype(float)
    ref = [padded_square_cost(M[b, : ns[b], : ms[b]], unmatched, surplus) for b in range(100)]
    got = assignment_cost(M, p, q, unmatched_cost=unmatched, surplus_cost=surplus)
    assert np.abs(got - np.array(ref)).max() <= 1e-12


def _objects(names, d=12, seed=3):
    """Unit vectors, one per distinct object name (orthogonal-ish random directions)."""
    rng = np.random.default_rng(seed)
    basis = {n: unit(rng.normal(size=d)) for n in sorted(set(names))}
    return basis


def test_assignment_orders_exact_superset_subset_disjoint():
    """A candidate holding 1 of the query's 3 objects must not tie the exact match."""
    names = ["red circle", "blue star", "green square", "black hexagon", "orange star", "purple circle", "yellow square"]
    e = _objects(names)
    query = ["red circle", "blue star", "green square"]
    candidates = {
        "exact": ["green square", "red circle", "blue star"],
        "superset": ["red circle", "blue star", "green square", "black hexagon"],
        "subset": ["red circle"],
        "disjoint": ["orange star", "purple circle", "yellow square"],
    }
    m_max = 4
    M = np.zeros((4, 3, m_max))
    q = np.zeros((4, m_max))
    for b, objs in enumerate(candidates.values()):
        Y = np.stack([e[o] for o in objs])
        X = np.stack([e[o] for o in query])
        M[b, :, : len(objs)] = 1 - X @ Y.T
        q[b, : len(objs)] = 1
    p = np.ones((4, 3))
    exact, superset, subset, disjoint = assignment_cost(M, p, q)
    assert exact == pytest.approx(0.0, abs=1e-12) and superset == pytest.approx(0.0, abs=1e-12)
    assert exact < subset < disjoint
    assert subset == pytest.approx(2 / 3)  # two query objects unmatched at cost 1, / 3 query objects
    strict = assignment_cost(M, p, q, surplus_cost=1.0)
    assert strict[0] < strict[1] == pytest.approx(1 / 3)


def test_assignment_penalties_are_validated():
    M = np.zeros((1, 2, 2))
    for bad in (-1.0, float("nan"), "x"):
        with pytest.raises(InvalidInputError, match="unmatched_cost must be"):
            assignment_cost(M, unmatched_cost=bad)
    with pytest.raises(InvalidInputError, match="surplus_cost must be"):
        assignment_cost(M, surplus_cost=-0.5)


def test_assignment_equals_fgw_alpha_zero_for_equal_sizes():
    rng = np.random.default_rng(6)
    M, C1, C2 = random_problems(rng, 50, 5, 5)
    assert np.allclose(assignment_cost(M), fgw_cost(M, C1, C2, alpha=0.0), atol=1e-12)


# --------------------------------------------------------------------------- inputs


def test_torch_tensors_in_torch_out():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    M, C1, C2 = random_problems(rng, 8, 3, 4)
    out = fgw_cost(torch.tensor(M, dtype=torch.float32), torch.tensor(C1, dtype=torch.float32), torch.tensor(C2, dtype=torch.float32))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert np.allclose(out.numpy(), fgw_cost(M.astype(np.float32), C1.astype(np.float32), C2.astype(np.float32)), atol=1e-6)
    res = fgw_solve(torch.from_numpy(M), torch.from_numpy(C1), torch.from_numpy(C2))
    assert res.plan.shape == (8, 3, 4) and res.cost.dtype == torch.float64
    assert isinstance(assignment_cost(torch.from_numpy(M)), torch.Tensor)


def _bad(**over):
    rng = np.random.default_rng(0)
    M, C1, C2 = random_problems(rng, 4, 3, 2)
    args = dict(M=M, C1=C1, C2=C2, p=None, q=None, alpha=0.5)
    args.update(over)
    return args


@pytest.mark.parametrize(
    "over, message",
    [
        ({"M": np.zeros((3, 2))}, "M must be a batch of shape (B, n, m), got shape (3, 2)"),
        ({"C1": np.zeros((4, 2, 2))}, "C1 must have shape (4, 3, 3), got (4, 2, 2)"),
        ({"C2": np.zeros((4, 3, 3))}, "C2 must have shape (4, 2, 2)"),
        ({"p": -np.ones((4, 3)) / 3}, "p has negative weights (problem 0)"),
        ({"q": np.zeros((4, 2))}, "q has no positive weight in problem 0"),
        ({"p": np.ones((4, 3))}, "p and q must have the same total mass"),
        ({"alpha": 1.5}, "alpha must be in [0, 1], got 1.5"),
        ({"alpha": "x"}, "alpha must be a number in [0, 1]"),
        ({"M": np.full((4, 3, 2), np.nan)}, "M contains NaN or infinite values"),
        ({"C1": np.arange(36.0).reshape(4, 3, 3)}, "C1 must be symmetric (problem 0)"),
        ({"C2": np.where(np.arange(16).reshape(4, 2, 2) == 13, np.inf, 0.0)}, "C2 contains NaN or infinite values (problem 3)"),
        ({"M": np.zeros((0, 3, 2))}, "M must hold at least one problem"),
        ({"M": "abc"}, "M must be a numeric array"),
    ],
)
def test_bad_inputs_raise_one_clear_error(over, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        fgw_cost(**_bad(**over))


def test_bad_solver_and_assignment_inputs():
    rng = np.random.default_rng(0)
    M, C1, C2 = random_problems(rng, 2, 2, 2)
    with pytest.raises(InvalidInputError, match="unknown FGW solver 'exact'; valid solvers: cg, global, pot, sinkhorn"):
        fgw_cost(M, C1, C2, solver="exact")
    with pytest.raises(InvalidInputError, match="epsilon must be a finite number > 0"):
        fgw_cost(M, C1, C2, solver="sinkhorn", epsilon=0.0)
    with pytest.raises(InvalidInputError, match="max_iter must be ≥ 1"):
        fgw_solve(M, C1, C2, max_iter=0)
    with pytest.raises(InvalidInputError, match="p has negative weights"):
        assignment_cost(M, p=-np.ones((2, 2)))
    with pytest.raises(InvalidInputError, match=re.escape("M must be a batch of shape (B, n, m)")):
        assignment_cost(np.zeros(3))


# --------------------------------------------------------------------------- float32 and CUDA


def _mixed_float32(rng, B=60, n_max=5, m_max=6):
    M, C1, C2 = random_problems(rng, B, n_max, m_max)
    ns, ms = rng.integers(1, n_max + 1, B), rng.integers(1, m_max + 1, B)
    p = (np.arange(n_max) < ns[:, None]) / ns[:, None]
    q = (np.arange(m_max) < ms[:, None]) / ms[:, None]
    return M, C1, C2, p, q


@pytest.mark.parametrize("solver", ["cg", "global", "sinkhorn"])
def test_float32_mixed_sizes_are_accepted_and_agree_with_float64(solver):
    """float32 uniform weights 1/3 vs 1/2 differ in total mass by float32 rounding (~1e-7)."""
    rng = np.random.default_rng(11)
    M, C1, C2, p, q = _mixed_float32(rng)
    f32 = [a.astype(np.float32) for a in (M, C1, C2, p, q)]
    assert np.abs(f32[3].astype(np.float64).sum(1) - f32[4].astype(np.float64).sum(1)).max() > 1e-9  # the case that used to fail "1 vs 1"
    # symmetrise in float32 (1 - X Xᵀ is not bit-symmetric after the cast)
    f32[1] = 0.5 * (f32[1] + f32[1].transpose(0, 2, 1))
    f32[2] = 0.5 * (f32[2] + f32[2].transpose(0, 2, 1))
    got = fgw_cost(*f32, alpha=0.5, solver=solver)
    M64, C164, C264, p64, q64 = (a.astype(np.float64) for a in f32)
    ref = fgw_cost(M64, C164, C264, p64 / p64.sum(1, keepdims=True), q64 / q64.sum(1, keepdims=True), alpha=0.5, solver=solver)
    assert np.abs(got - ref).max() <= 1e-6
    assert np.abs(assignment_cost(f32[0], f32[3], f32[4]) - assignment_cost(M, p, q)).max() <= 1e-5


def test_torch_float32_mixed_sizes_and_cuda_when_present():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    M, C1, C2, p, q = _mixed_float32(rng)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    ref = fgw_cost(M, C1, C2, p, q)
    for dev in devices:
        t = [torch.tensor(a, dtype=torch.float32, device=dev) for a in (M, C1, C2, p, q)]
        t[1] = 0.5 * (t[1] + t[1].transpose(1, 2))
        t[2] = 0.5 * (t[2] + t[2].transpose(1, 2))
        out = fgw_cost(*t)
        assert out.dtype == torch.float32 and out.device.type == dev
        assert np.abs(out.cpu().double().numpy() - ref).max() <= 1e-5


def test_unequal_masses_beyond_rounding_are_still_refused():
    rng = np.random.default_rng(13)
    M, C1, C2, p, q = _mixed_float32(rng)
    with pytest.raises(InvalidInputError, match="same total mass"):
        fgw_cost(M.astype(np.float32), C1, C2, p.astype(np.float32), (q * 1.001).astype(np.float32))


# --------------------------------------------------------------------------- sinkhorn (the paper's linear step)


def sinkhorn_cg_reference(M, C1, C2, p, q, alpha, epsilon, max_iter=10_000, tol=1e-9):
    """Per-problem conditional gradient with POT's own pieces: ot.gromov.init_matrix /
    gwloss / gwggrad for the GW term, ot.sinkhorn for the linear step, and the exact
    quadratic line search of POT's solve_1d_linesearch_quad."""
    from ot.gromov import gwggrad, gwloss, init_matrix
    from ot.optim import solve_1d_linesearch_quad

    constC, hC1, hC2 = init_matrix(C1, C2, p, q, "square_loss")

    def f(T):
        return (1 - alpha) * np.sum(M * T) + alpha * gwloss(constC, hC1, hC2, T)

    T = np.outer(p, q)
    cost = f(T)
    for _ in range(max_iter):
        G = (1 - alpha) * M + alpha * gwggrad(constC, hC1, hC2, T)
        Tc = ot.sinkhorn(p, q, G, epsilon, method="sinkhorn_log", numItermax=5000, stopThr=1e-12)
        D = Tc - T
        a = -2 * alpha * np.sum((C1 @ D @ C2) * D)
        b = (1 - alpha) * np.sum(M * D) + alpha * (np.sum(constC * D) - 4 * np.sum((C1 @ T @ C2) * D))
        tau = solve_1d_linesearch_quad(a, b)
        T = T + tau * D
        new = f(T)
        done = abs(new - cost) < tol or abs(new - cost) / max(abs(cost), 1e-300) < tol
        cost = new
        if done:
            break
    return cost, T


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.7])
def test_sinkhorn_solver_matches_a_per_problem_pot_reference(alpha):
    rng = np.random.default_rng(21)
    M, C1, C2, p, q = _mixed_float32(rng, B=12, n_max=4, m_max=5)
    res = fgw_solve(M, C1, C2, p, q, alpha=alpha, solver="sinkhorn", epsilon=0.05)
    for b in range(12):
        r, c = np.flatnonzero(p[b] > 0), np.flatnonzero(q[b] > 0)
        ref_cost, ref_T = sinkhorn_cg_reference(M[b][np.ix_(r, c)], C1[b][np.ix_(r, r)], C2[b][np.ix_(c, c)], p[b, r], q[b, c], alpha, 0.05)
        assert res.cost[b] == pytest.approx(ref_cost, abs=1e-6)
        assert np.abs(res.plan[b][np.ix_(r, c)] - ref_T).max() <= 1e-5
        # marginals hold and padding carries no mass
        assert np.allclose(res.plan[b].sum(1), p[b], atol=1e-8) and np.allclose(res.plan[b].sum(0), q[b], atol=1e-8)


def test_sinkhorn_plans_are_soft_and_approach_exact_as_epsilon_shrinks():
    rng = np.random.default_rng(22)
    M, C1, C2 = structured_problems(rng, 30, 3, 3)
    exact = fgw_cost(M, C1, C2, alpha=0.5, solver="cg")
    soft = fgw_solve(M, C1, C2, alpha=0.5, solver="sinkhorn", epsilon=0.1)
    assert (soft.plan > 1e-4).sum((1, 2)).min() > 3  # fractional mass on more than a permutation's 3 cells
    sharp = fgw_cost(M, C1, C2, alpha=0.5, solver="sinkhorn", epsilon=0.002)
    assert np.abs(sharp - exact).mean() < np.abs(soft.cost - exact).mean()
