"""Issue 22 §5: tests that catch a wrong number the other tests let through.

Each was written against a deliberate one-line mistake in a copy of the code, and checks
the number against a value computed another way (a hand-built mapper, the lists recomputed
from the outputs, POT, two real tags, the literal colours).
"""

import json

import numpy as np
import ot
import pandas as pd
import pytest
from PIL import Image

from vgrc.evaluators.dataset import read_split
from vgrc.evaluators.first_stage.ridge import RidgeMapper
from vgrc.evaluators.pipeline import EvalConfig, run_eval


def test_ridge_mapper_equals_an_augmented_least_squares_solution():
    """W = argmin ||XW - Y||² + λ||W||², solved as least squares on [X; √λ I] W = [Y; 0]:
    another method than the mapper's normal equations; λ matters."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))  # one joint space: the mapper also reports text-image distances
    for lam in (0.01, 7.0):
        W = np.linalg.lstsq(np.vstack([X, np.sqrt(lam) * np.eye(6)]), np.vstack([Y, np.zeros((6, 6))]), rcond=None)[0]
        assert np.allclose(RidgeMapper(ridge_lambda=lam).fit(X, Y).W_, W, atol=1e-10)
    assert not np.allclose(RidgeMapper(ridge_lambda=0.01).fit(X, Y).W_, RidgeMapper(ridge_lambda=7.0).fit(X, Y).W_)


def test_eval_uses_the_ridge_lambda_it_is_given(shapes_dir, tmp_path):
    """The value is used, not only recorded: two λ far apart give different mapped-distance
    reductions (a mapper built with its default would give the same)."""
    reductions = []
    for lam in (1e-3, 1e3):
        out = tmp_path / f"r{lam:g}"
        run_eval(EvalConfig(data=str(shapes_dir), out=str(out), model="tiny-random", stage1="ridge", ridge_lambda=lam, cache_dir=str(tmp_path / "c")))
        run = json.loads((out / "run.json").read_text())
        assert run["config"]["stage1"]["options"]["ridge_lambda"] == lam
        reductions.append(run["diagnostics"]["ridge"]["reduction"])
    assert abs(reductions[0] - reductions[1]) > 1e-3, reductions


def test_the_final_lists_keep_the_stage1_tail_beyond_the_shortlist(shapes_dir, tmp_path):
    """k = 5: the reranker permutes the first 5 and the stage-1 order continues after them.
    Stage 1 is recomputed by brute force, and nDCG@10 per query from the annotations over
    the reported final list."""
    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model
    from vgrc.evaluators.metrics import ndcg_per_query, symbolic_relevance
    from vgrc.evaluators.retrieval_data import load_retrieval

    out = tmp_path / "run"
    run_eval(EvalConfig(data=str(shapes_dir), out=str(out), model="tiny-random", rerank="hungarian", k=5, cache_dir=str(tmp_path / "c")))
    frame = pd.read_parquet(out / "per_query.parquet")
    ev, _, _ = load_retrieval(shapes_dir, fit_fraction=0.0)
    enc = ClipEncoder(resolve_model("tiny-random"))
    S = enc.encode_texts(ev.captions) @ enc.encode_image_bytes([(str(p), p.read_bytes()) for p in ev.image_paths]).T
    index = {rid: i for i, rid in enumerate(ev.ids)}
    changed = 0
    for q, row in enumerate(frame.itertuples()):
        brute = [ev.ids[i] for i in np.lexsort((np.arange(len(ev)), -S[q]))[:10]]
        stage1, final = list(row.top10_stage1), list(row.top10_final)
        assert stage1 == brute
        assert sorted(final[:5]) == sorted(stage1[:5]) and final[5:] == stage1[5:]  # the tail in stage-1 order
        changed += final[:5] != stage1[:5]
        grades = np.array([[symbolic_relevance(ev.query_objects[q], ev.objects[index[g]]) for g in final]])
        assert frame["ndcg@10"].iloc[q] == pytest.approx(ndcg_per_query(grades, 10)[0])
    assert changed > 0  # the reranker did reorder: the check is not vacuous


def test_fgw_agrees_with_pot_on_problems_that_converge_slowly():
    """60 random 10×7 problems on which a million-fold looser convergence tolerance moves
    the cost by up to 3e-3: vgrc's exact CG must agree with POT to 1e-9."""
    from vgrc.evaluators.solvers import fgw_cost

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    rng = np.random.default_rng(3)
    base = rng.normal(size=(1, 1, 8))
    X, Y = unit(base + rng.normal(size=(60, 10, 8))), unit(base + rng.normal(size=(60, 7, 8)))
    M, C1, C2 = 1 - X @ Y.transpose(0, 2, 1), 1 - X @ X.transpose(0, 2, 1), 1 - Y @ Y.transpose(0, 2, 1)
    for alpha in (0.5, 0.9):
        ref = np.array([ot.gromov.fused_gromov_wasserstein2(M[b], C1[b], C2[b], ot.unif(10), ot.unif(7), symmetric=True, alpha=alpha) for b in range(60)])
        assert np.abs(fgw_cost(M, C1, C2, alpha=alpha) - ref).max() <= 1e-9
        loose = fgw_cost(M, C1, C2, alpha=alpha, tol_rel=1e-3, tol_abs=1e-3)
        assert np.abs(loose - ref).max() > 1e-4  # these problems do tell a loose solver apart


def test_the_cache_key_tells_two_weight_tags_of_one_architecture_apart():
    """Two real open_clip tags of ViT-B-32 (keys are computed without their weights):
    embeddings of one must never be served for the other."""
    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model

    keys = {tag: ClipEncoder(resolve_model(f"ViT-B-32:{tag}")).cache_key for tag in ("openai", "laion2b_s34b_b79k")}
    assert keys["openai"] != keys["laion2b_s34b_b79k"]
    assert ClipEncoder(resolve_model("ViT-B-32:openai")).cache_key == keys["openai"]  # and stable


#: Synthetic Shapes' colours as its data card states them (literal values, not the code's table)
CARD_RGB = {"red": (255, 0, 0), "orange": (255, 165, 0), "yellow": (255, 215, 0), "green": (0, 128, 0),
            "blue": (0, 0, 255), "purple": (128, 0, 128), "black": (0, 0, 0)}


def test_shapes_pixels_have_the_cards_literal_colours(shapes_dir):
    from vgrc.generators.shapes.build import reference_slot

    card = (shapes_dir / "README.md").read_text()
    for name, (r, g, b) in CARD_RGB.items():
        assert f"| {name} | ({r}, {g}, {b}) | `#{r:02x}{g:02x}{b:02x}` |" in card
    size = json.loads((shapes_dir / "manifest.json").read_text())["config"]["size"]
    slot = reference_slot(size)
    for row in read_split(shapes_dir, "primitives"):
        img = np.asarray(Image.open(shapes_dir / "primitives" / row["file_name"]).convert("RGB"))
        assert tuple(int(v) for v in img[int(slot.cy), int(slot.cx)]) == CARD_RGB[row["objects"][0]["attributes"][0]], row["id"]
