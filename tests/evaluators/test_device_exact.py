"""Exact search on a torch device (``--device cuda``), run here on torch's CPU device: the
same top-k, scores and ranks as the CPU path, ties included (against a full sort: the
"torch" cases of test_index.py); the keys that carry (score desc, index asc) order."""

import numpy as np
import pytest
import torch

from vgrc.evaluators.index.device_exact import device_exact_topk, keys_to_indices, keys_to_scores, score_keys
from vgrc.evaluators.index.exact import exact_topk


def test_device_topk_equals_the_cpu_path_on_random_chunkings():
    """Many shapes, chunkings and relevant lists: the device path and the CPU path (numba)
    give identical arrays on dyadic vectors, whose products are exact in float32."""
    rng = np.random.default_rng(0)
    for _ in range(25):
        n_gallery, n_queries = int(rng.integers(1, 300)), int(rng.integers(1, 60))
        G = (rng.integers(-2, 3, (n_gallery, 8)) / 4).astype(np.float32)
        Q = (rng.integers(-2, 3, (n_queries, 8)) / 4).astype(np.float32)
        relevant = [rng.choice(n_gallery, int(rng.integers(0, min(4, n_gallery) + 1)), replace=False) for _ in range(n_queries)]
        k = int(rng.integers(1, 120))
        cpu = exact_topk(Q, G, k, relevant, query_chunk=int(rng.integers(1, 20)), gallery_chunk=int(rng.integers(1, 60)))
        dev = device_exact_topk(Q, G, k, relevant, device="cpu", query_chunk=int(rng.integers(1, 20)), gallery_chunk=int(rng.integers(1, 60)))
        for a, b in zip(cpu, dev):
            assert np.array_equal(a, b)


def test_device_topk_on_unit_vectors_agrees_with_float64_where_the_order_is_clear():
    """Real-valued unit vectors: scores within float32 rounding of float64 ones, and the
    same order wherever neighbouring float64 scores are more than 1e-5 apart."""
    rng = np.random.default_rng(3)
    G = rng.normal(size=(5000, 64)).astype(np.float32)
    G /= np.linalg.norm(G, axis=1, keepdims=True)
    Q = G[rng.choice(5000, 40, replace=False)] + 0.05 * rng.normal(size=(40, 64)).astype(np.float32)
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    top, scores, rank = device_exact_topk(Q, G, 30, [np.array([i]) for i in range(40)], device="cpu", query_chunk=16, gallery_chunk=777)
    S = Q.astype(np.float64) @ G.astype(np.float64).T
    ref = np.argsort(-S, axis=1, kind="stable")[:, :30]
    assert np.allclose(scores, np.take_along_axis(S, ref, 1), atol=1e-6)
    clear = np.diff(np.take_along_axis(S, ref, 1), axis=1) < -1e-5  # both neighbours of a position clearly apart
    edge = np.ones((len(clear), 1), bool)
    sure = np.hstack([clear, edge]) & np.hstack([edge, clear])
    assert sure.mean() > 0.9 and np.array_equal(top[sure], ref[sure])
    assert [int((S[r] > S[r, r]).sum()) for r in range(40)] == rank.tolist()  # row r's relevant image is image r


def test_score_keys_order_scores_descending_then_index_ascending():
    values = [0.5, -0.0, 0.0, float("inf"), -1.5, float("nan"), 1e-45, -1e-45, 0.5, float("-inf"), -1.5, 2.0]
    S = torch.tensor([values], dtype=torch.float32)
    keys = score_keys(S, offset=10)
    assert len(set(keys[0].tolist())) == len(values)  # no two keys equal
    order = torch.sort(keys[0], descending=True).values
    got = keys_to_indices(order).tolist()
    want = sorted(range(len(values)), key=lambda i: (np.isnan(values[i]), -values[i] if not np.isnan(values[i]) else 0, i))
    assert got == [10 + i for i in want]  # ±0.0 tie (index order), NaN last
    back = keys_to_scores(keys)[0].numpy()
    finite = ~np.isnan(np.array(values, np.float32))
    assert np.array_equal(back[finite].view(np.int32), (np.array(values, np.float32)[finite] + np.float32(0)).view(np.int32))


def test_device_search_uses_full_float32_products_and_restores_the_setting():
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        G = np.eye(4, dtype=np.float32)
        top, scores, rank = device_exact_topk(G[:2], G, 2, [np.array([1]), np.array([])], device="cpu")
        assert top.tolist() == [[0, 1], [1, 0]] and rank.tolist() == [1, -1]
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


def test_device_search_degenerate_sizes():
    G = np.ones((3, 2), np.float32)
    top, scores, rank = device_exact_topk(np.zeros((0, 2), np.float32), G, 5, [], device="cpu")
    assert top.shape == (0, 3) and rank.shape == (0,)
    top, scores, rank = device_exact_topk(np.ones((2, 2), np.float32), G, 10, [np.array([2]), np.array([0, 1])], device="cpu")
    assert top.tolist() == [[0, 1, 2]] * 2 and scores.tolist() == [[2.0] * 3] * 2 and rank.tolist() == [2, 0]


def test_cuda_searches_on_the_device_only_from_the_size_threshold_on(monkeypatch):
    """A small search with --device cuda stays on the CPU (no torch import in a cached run);
    from DEVICE_SEARCH_MIN_SCORES scores on, it goes to the device (here: no CUDA, so torch
    refuses, which proves the routing)."""
    from vgrc.evaluators.first_stage import search as first_stage

    rng = np.random.default_rng(0)
    G = first_stage.normalize(rng.normal(size=(50, 8)))
    Q = first_stage.normalize(rng.normal(size=(6, 8)))
    relevant = [np.array([i]) for i in range(6)]
    assert first_stage.search_device("cuda:1", 6, 50) == "cpu" and first_stage.search_device("cpu", 10**6, 10**6) == "cpu"
    small = first_stage.cosine_topk(Q, G, 5, relevant, device="cuda")
    assert all(np.array_equal(a, b) for a, b in zip(small, first_stage.cosine_topk(Q, G, 5, relevant)))
    monkeypatch.setattr(first_stage, "DEVICE_SEARCH_MIN_SCORES", 300)
    assert first_stage.search_device("cuda:1", 6, 50) == "cuda:1"
    if not torch.cuda.is_available():
        with pytest.raises((AssertionError, RuntimeError)):  # torch: "Torch not compiled with CUDA enabled"
            first_stage.cosine_topk(Q, G, 5, relevant, device="cuda")
