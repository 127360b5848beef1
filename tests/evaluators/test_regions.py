"""Candidate object sets cut from the pixels (issue 25): the rerankers on planted regions,
the region-space structure, the grouping of patches, the crops, the dense features."""

import numpy as np
import pytest

from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.objects.candidates import RegionSets
from vgrc.evaluators.objects.crops import grid_boxes, parse_scales
from vgrc.evaluators.objects.grouping import AUTO_K, group_patches, kmeans_batched, silhouettes
from vgrc.evaluators.objects.regions import box_picture, clamp_box, occlusion_vectors
from vgrc.evaluators.rerankers.context import ObjectTable, RerankContext, rerank_scores

D = 24


def unit(x):
    x = np.asarray(x, np.float64)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def planted(rng, n_queries=30, n_gallery=40, n_obj=3, noise=0.15, scramble=0.0):
    """Queries of ``n_obj`` text objects; gallery image ``q`` holds query ``q``'s objects as
    noisy regions (a ``scramble`` share of them replaced by random vectors), every other
    image random regions. Returns the query table, the region table and the shortlists."""
    words = unit(rng.normal(size=(60, D)))
    q_sets = [rng.choice(60, n_obj, replace=False) for _ in range(n_queries)]
    phrases = words
    q_table = ObjectTable(np.array(q_sets), np.full((n_queries, n_obj), 1 / n_obj), np.vstack([phrases, np.zeros((1, D), np.float32)]))
    embs, weights = [], []
    for g in range(n_gallery):
        if g < n_queries:
            regs = words[q_sets[g]] + noise * rng.normal(size=(n_obj, D))
            swap = rng.random(n_obj) < scramble
            regs[swap] = rng.normal(size=(int(swap.sum()), D))
        else:
            regs = rng.normal(size=(n_obj, D))
        embs.append(unit(regs))
        weights.append(np.full(n_obj, 1.0))
    g_table = ObjectTable.from_regions(RegionSets.from_lists(embs, weights, D))
    shortlist = np.stack([rng.permutation(n_gallery)[:20] for _ in range(n_queries)])
    for q in range(n_queries):  # the target in every shortlist, somewhere
        if q not in shortlist[q]:
            shortlist[q, rng.integers(20)] = q
    return q_table, g_table, shortlist


def target_ranks(reranker, q_table, g_table, shortlist, **opts):
    from vgrc.evaluators import registry

    component = registry.get("reranker", reranker)
    ctx = RerankContext(q_table, g_table, np.zeros((g_table.index.shape[0], D), np.float32))
    scores = rerank_scores(component, ctx, shortlist, np.zeros(shortlist.shape, np.float32), component.Options(**opts))
    ranks = []
    for q in range(len(shortlist)):
        s = scores[q, list(shortlist[q]).index(q)]
        ranks.append(int((scores[q] > s).sum()))
    return np.array(ranks)


@pytest.mark.parametrize("reranker", ["hungarian", "fgw"])
def test_planted_regions_are_found_and_scrambling_degrades_gracefully(reranker):
    """With clean planted regions the target ranks first for every query; as a growing share
    of its regions is scrambled the mean rank grows step by step, and fully scrambled it is
    no better than a random image."""
    means = []
    for scramble in (0.0, 0.34, 0.67, 1.0):
        ranks = np.concatenate([target_ranks(reranker, *planted(np.random.default_rng(seed), scramble=scramble)) for seed in range(4)])
        if scramble == 0.0:
            assert (ranks == 0).all()
        means.append(ranks.mean())
    assert all(a < b for a, b in zip(means, means[1:])), means
    assert means[-1] > 5.0  # a random image's expected rank among 20 is 9.5


def test_region_space_structure_is_what_the_gw_term_compares():
    """FGW with α = 1 sees only C1 (text space) against C2 (region space). The target's
    regions are the query's objects rotated into another basis: M says nothing, their
    pairwise geometry matches exactly, so the target is found; a context whose C2 came from
    the text table would not see the rotation at all."""
    rng = np.random.default_rng(3)
    n_q, n_g, n_obj = 12, 30, 4
    words = unit(rng.normal(size=(80, D)))
    q_sets = [rng.choice(80, n_obj, replace=False) for _ in range(n_q)]
    q_table = ObjectTable(np.array(q_sets), np.full((n_q, n_obj), 1 / n_obj), np.vstack([words, np.zeros((1, D), np.float32)]))
    rot = np.linalg.qr(rng.normal(size=(D, D)))[0]
    embs = [unit(words[q_sets[g]] @ rot.T) if g < n_q else unit(rng.normal(size=(n_obj, D))) for g in range(n_g)]
    g_table = ObjectTable.from_regions(RegionSets.from_lists(embs, [np.ones(n_obj)] * n_g, D))
    shortlist = np.stack([np.r_[q, rng.choice(np.setdiff1d(np.arange(n_g), [q]), 14, replace=False)] for q in range(n_q)])
    ranks = target_ranks("fgw", q_table, g_table, shortlist, fgw_alpha=1.0)
    assert (ranks == 0).all()
    ranks_feature_only = target_ranks("fgw", q_table, g_table, shortlist, fgw_alpha=0.0)
    assert (ranks_feature_only > 0).mean() > 0.5  # the rotation hides them from M


@pytest.mark.parametrize("reranker", ["hungarian", "fgw"])
def test_regions_equal_to_the_phrases_reproduce_the_annotation_path(reranker):
    """A region table whose regions are the candidates' phrase embeddings gives the scores
    of the shared phrase table (the paper's path), problem by problem."""
    rng = np.random.default_rng(0)
    phrases = unit(rng.normal(size=(25, D)))
    q_sets = [list(rng.choice(25, rng.integers(1, 4), replace=False)) for _ in range(10)]
    g_sets = [list(rng.choice(25, rng.integers(1, 6), replace=False)) for _ in range(16)]
    index = {f"p{i}": i for i in range(25)}
    q_table = ObjectTable.build([[f"p{i}" for i in s] for s in q_sets], index, phrases)
    shared = ObjectTable.build([[f"p{i}" for i in s] for s in g_sets], index, phrases)
    regions = ObjectTable.from_regions(RegionSets.from_lists([phrases[s] for s in g_sets], [np.ones(len(s)) for s in g_sets], D))
    shortlist = np.stack([rng.permutation(16)[:8] for _ in range(10)])
    img = np.zeros((16, D), np.float32)
    a = rerank_scores(reranker, RerankContext(q_table, shared, img), shortlist, np.zeros(shortlist.shape))
    b = rerank_scores(reranker, RerankContext(q_table, regions, img), shortlist, np.zeros(shortlist.shape))
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_region_weights_become_marginals_summing_to_one():
    sets = RegionSets.from_lists([np.eye(3, D), np.eye(2, D), np.zeros((0, D))], [np.array([2.0, 1.0, 1.0]), np.array([0.3, 0.3]), np.zeros(0)], D)
    table = ObjectTable.from_regions(sets)
    np.testing.assert_allclose(table.weight, [[0.5, 0.25, 0.25], [0.5, 0.5, 0], [0, 0, 0]])
    assert table.sizes.tolist() == [3, 2, 0] and table.space == "regions"
    assert (table.index[2] == len(sets.emb)).all()  # no regions: all padding (scores -inf, ranks last)


def test_kmeans_recovers_planted_clusters_in_every_image_of_a_batch():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 4, 5)) * 6
    truth = rng.integers(0, 4, size=(6, 40))
    X = centres[np.arange(6)[:, None], truth] + rng.normal(size=(6, 40, 5)) * 0.3
    labels = kmeans_batched(X, 4, seed=0)
    for b in range(6):  # the same partition, up to the names of the clusters
        pairs = set(zip(truth[b].tolist(), labels[b].tolist()))
        assert len(pairs) == len(set(truth[b].tolist())) == len(set(labels[b].tolist()))


def test_silhouettes_agree_with_the_definition_point_by_point():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3, 15, 2))
    labels = rng.integers(0, 3, size=(3, 15))
    labels[:, 0] = 0
    D2 = np.linalg.norm(X[:, :, None] - X[:, None], axis=-1)
    got = silhouettes(D2, labels, 3)
    for b in range(3):
        s = []
        for i in range(15):
            same = [j for j in range(15) if labels[b, j] == labels[b, i] and j != i]
            if not same:
                s.append(0.0)
                continue
            a = np.mean(D2[b, i, same])
            others = [np.mean(D2[b, i, labels[b] == c]) for c in set(labels[b].tolist()) if c != labels[b, i]]
            bb = min(others)
            s.append((bb - a) / max(a, bb))
        assert got[b] == pytest.approx(np.mean(s), rel=1e-9)


def test_grouped_patches_two_colours_two_regions_with_their_shares():
    """A 4 × 4 grid, its left 3 columns one feature and its right column another: K = 2
    finds them, weights 3/4 and 1/4, embeddings the two features; automatic K pads to 8."""
    a, b = unit(np.eye(D)[0]), unit(np.eye(D)[1])
    feats = np.empty((1, 4, 4, D), np.float32)
    feats[0, :, :3], feats[0, :, 3] = a, b
    emb, w = group_patches(feats, 2, spatial_weight=0.1)
    order = np.argsort(-w[0])
    np.testing.assert_allclose(w[0][order], [0.75, 0.25])
    np.testing.assert_allclose(emb[0][order], np.stack([a, b]), atol=1e-6)
    emb, w = group_patches(feats, 0, spatial_weight=0.1)
    assert emb.shape == (1, max(AUTO_K), D) and w.sum() == pytest.approx(1.0)


def test_grid_cells_tile_the_image_exactly():
    cells = grid_boxes(64, 48, [2, 3])
    assert len(cells) == 13
    for s, part in ((2, cells[:4]), (3, cells[4:])):
        assert sum((r - l) * (b - t) for l, t, r, b in part) == 64 * 48
    assert parse_scales("2,3") == [2, 3]
    for bad in ("", "0", "2,2", "x", "17"):
        with pytest.raises(InvalidInputError, match="--grid-scales"):
            parse_scales(bad)


def test_boxes_are_clamped_and_pictures_keep_the_right_pixels():
    from PIL import Image

    assert clamp_box([-3.2, 4.5, 20, 10], 16, 12) == (0, 4, 16, 12)
    assert clamp_box([30, 30, 5, 5], 16, 12) is None
    arr = np.full((12, 16, 3), 255, np.uint8)
    arr[2:6, 3:9] = (200, 10, 10)
    image = Image.fromarray(arr)
    assert box_picture(image, (3, 2, 9, 6), "crop").size == (6, 4)
    masked = np.asarray(box_picture(image, (3, 2, 9, 6), "mask"))
    assert (masked[2:6, 3:9] == (200, 10, 10)).all() and (masked[7:] == 255).all()
    occluded = np.asarray(box_picture(image, (3, 2, 9, 6), "occlude"))
    assert (occluded == 255).all()
    v = occlusion_vectors(np.array([[1.0, 0.0]]), np.array([0, 0]), np.array([[0.0, 1.0], [1.0, 0.0]]))
    np.testing.assert_allclose(v, [[2 ** -0.5, -(2 ** -0.5)], [0.0, 0.0]])


@pytest.mark.parametrize("variant", ["maskclip", "clearclip"])
def test_dense_value_path_equals_the_last_block_with_an_identity_attention_map(variant):
    """MaskCLIP's path is the last block with each token attending only to itself: run the
    real open_clip block with a diagonal-only attention mask and compare."""
    import open_clip
    import torch

    from vgrc.evaluators.encoders.dense import patch_features
    from vgrc.evaluators.encoders.models import _register_tiny_configs

    _register_tiny_configs()
    torch.manual_seed(0)
    model = open_clip.create_model("vgrc-shapes-tiny").eval()
    pixels = torch.randn(2, 3, 64, 64)
    got = patch_features(model, pixels, variant)
    visual = model.visual
    with torch.no_grad():
        x = visual._embeds(pixels)
        for block in visual.transformer.resblocks[:-1]:
            x = block(x)
        last = visual.transformer.resblocks[-1]
        n = x.shape[1]
        diag = torch.full((n, n), float("-inf"))
        diag.fill_diagonal_(0.0)
        if variant == "maskclip":
            y = last(x, attn_mask=diag)
        else:
            y = last.ls_1(last.attention(last.ln_1(x), attn_mask=diag))
        y = visual.ln_post(y[:, 1:]) @ visual.proj
        want = torch.nn.functional.normalize(y, dim=-1).reshape(2, 8, 8, -1).numpy()
    assert got.shape == (2, 8, 8, model.visual.output_dim)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_dense_features_refuse_a_tower_that_is_not_a_vit():
    class Tower:
        pass

    class Model:
        visual = Tower()

    with pytest.raises(InvalidInputError, match="needs an open_clip ViT image tower; this model's is Tower"):
        patch_features_of(Model())


def patch_features_of(model):
    from vgrc.evaluators.encoders.dense import patch_features

    return patch_features(model, None)


@pytest.mark.parametrize("reranker", ["hungarian", "fgw"])
def test_fusing_with_stage1_adds_the_weighted_cosine_and_can_beat_either_alone(reranker):
    """--fuse-stage1 w scores −cost + w·s₁: the difference from w = 0 is exactly w·s₁. On a
    constructed shortlist where the region sets tie two candidates and stage 1 ranks a third
    first, only the fusion puts the target first."""
    from vgrc.evaluators import registry

    rng = np.random.default_rng(5)
    q_table, g_table, shortlist = planted(rng, n_queries=6, n_gallery=12)
    s1 = rng.random(shortlist.shape).astype(np.float32)
    component = registry.get("reranker", reranker)
    ctx = RerankContext(q_table, g_table, np.zeros((12, D), np.float32))
    plain = rerank_scores(component, ctx, shortlist, s1, component.Options())
    fused = rerank_scores(component, ctx, shortlist, s1, component.Options(fuse_stage1=2.5))
    np.testing.assert_allclose(fused - plain, 2.5 * s1, rtol=1e-6)
    # two candidates whose sets both match the query's (a copy of the target's regions), stage 1 prefers the copy's rival
    emb = [q_table.phrases[q_table.index[0]], q_table.phrases[q_table.index[0]], unit(rng.normal(size=(3, D)))]
    g = ObjectTable.from_regions(RegionSets.from_lists(emb, [np.ones(3)] * 3, D))
    q = ObjectTable(q_table.index[:1], q_table.weight[:1], q_table.phrases)
    short, s1 = np.array([[2, 1, 0]]), np.array([[0.9, 0.5, 0.6]], np.float32)  # target: image 0
    ctx = RerankContext(q, g, np.zeros((3, D), np.float32))
    first = {w: short[0, np.argmax(rerank_scores(component, ctx, short, s1, component.Options(fuse_stage1=w))[0])] for w in (0.0, 1.0)}
    assert short[0, np.argmax(s1[0])] == 2 and first[1.0] == 0  # stage 1 alone is wrong; fused is right
    plain_scores = rerank_scores(component, ctx, short, s1, component.Options())[0]
    assert plain_scores[1] == pytest.approx(plain_scores[2])  # the sets alone tie target and copy
