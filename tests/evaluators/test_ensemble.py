"""``--stage1 ensemble``: z-score fusion by hand, the exact dot-product form, a case where
fusion beats either model, end to end, bad inputs."""

import json

import numpy as np
import pandas as pd
import pytest

from vgrc.evaluators.errors import VgrcError
from vgrc.evaluators.first_stage.ensemble import fusion_vectors, parse_weights, zscore_fusion
from vgrc.evaluators.pipeline import EvalConfig, run_eval


def test_zscore_fusion_by_hand():
    """Rows [1, 2, 3] and [3, 1, 2]: each has mean 2 and standard deviation √(2/3), so the
    z-scores are ±1.2247 and 0, and their sum is [0, −1.2247, 1.2247]."""
    z = np.sqrt(1.5)
    np.testing.assert_allclose(zscore_fusion([np.array([[1.0, 2, 3]]), np.array([[3.0, 1, 2]])], (1, 1)), [[0, -z, z]], atol=1e-12)
    np.testing.assert_allclose(zscore_fusion([np.array([[1.0, 2, 3]]), np.array([[3.0, 1, 2]])], (2, 0)), [[-2 * z, 0, 2 * z]], atol=1e-12)


def test_fused_vectors_reproduce_the_fused_scores_exactly():
    rng = np.random.default_rng(0)
    qs = [rng.normal(size=(7, 16)), rng.normal(size=(7, 24))]
    gs = [rng.normal(size=(30, 16)), rng.normal(size=(30, 24))]
    qs = [q / np.linalg.norm(q, axis=1, keepdims=True) for q in qs]
    gs = [g / np.linalg.norm(g, axis=1, keepdims=True) for g in gs]
    for w in ((1, 1), (0.7, 0.3), (0, 1)):
        qf, gf = fusion_vectors(qs, gs, w)
        np.testing.assert_allclose(qf.astype(np.float64) @ gf.T, zscore_fusion([q @ g.T for q, g in zip(qs, gs)], w), atol=1e-4)


def test_fusion_beats_either_model_alone():
    """Model A ranks query 0's target second, model B query 1's; each is sure where it is
    right, so the equal-weight fusion ranks every target first."""
    a = np.array([[0.50, 0.55, 0.1, 0.0], [0.1, 0.9, 0.0, 0.0], [0.0, 0.1, 0.9, 0.1], [0.0, 0.0, 0.1, 0.9]])
    b = np.array([[0.9, 0.1, 0.0, 0.0], [0.60, 0.55, 0.1, 0.0], [0.1, 0.0, 0.8, 0.0], [0.0, 0.1, 0.0, 0.8]])
    target = np.arange(4)

    def r1(s):
        return float(np.mean(s.argmax(axis=1) == target))

    assert r1(a) == r1(b) == 0.75 and r1(zscore_fusion([a, b], (1, 1))) == 1.0


def test_the_same_model_twice_ranks_as_cosine(shapes_dir, tmp_path):
    """Per-query z-scores are a positive affine map of each query's cosines: the ensemble of a
    model with itself gives the cosine ranking, query by query."""
    base = dict(data=str(shapes_dir), model="tiny-random", k=10, cache_dir=str(tmp_path / "cache"))
    run_eval(EvalConfig(**base, out=str(tmp_path / "cos")))
    m = run_eval(EvalConfig(**base, stage1="ensemble", models="tiny-random", weights="1,3", out=str(tmp_path / "ens")))
    a, b = pd.read_parquet(tmp_path / "ens" / "per_query.parquet"), pd.read_parquet(tmp_path / "cos" / "per_query.parquet")
    assert (a.rank_stage1 == b.rank_stage1).all() and 0 <= m["t2i_R@1"] <= 1


@pytest.mark.parametrize("kw, message", [
    (dict(stage1="ensemble"), "--stage1 ensemble needs --models"),
    (dict(stage1="ensemble", models="tiny-random", weights="1,2,3"), "--weights '1,2,3': expected 2 comma-separated weights"),
    (dict(stage1="ensemble", models="tiny-random", weights="1,-1"), "--weights '1,-1'"),
    (dict(stage1="ensemble", models="tiny-random", weights="fit", fit_fraction=0.0), "--stage1 ensemble needs fit rows"),
    (dict(stage1="ensemble", models="ViT-Q-99"), "ViT-Q-99"),
    (dict(stage1="ensemble", models="tiny-random", index="flat"), "use it with --index exact"),
])
def test_bad_ensemble_options_are_one_line(shapes_dir, tmp_path, kw, message):
    with pytest.raises(VgrcError, match=message.replace("(", r"\(").replace("[", r"\[")):
        EvalConfig(data=str(shapes_dir), model="tiny-random", out=str(tmp_path / "x"), **kw).check()
    assert parse_weights(None, 2) is None


def test_fitted_weights_are_the_grid_point_with_the_best_fit_recall(shapes_dir, tmp_path):
    """--weights fit holds 20% of the rows out (as ridge does), searches the weight grid on
    them, and the chosen weights are the ones fit_weights gives on those rows."""
    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model
    from vgrc.evaluators.first_stage.ensemble import fit_weights
    from vgrc.evaluators.retrieval_data import load_retrieval

    m = run_eval(EvalConfig(data=str(shapes_dir), model="tiny-random", k=10, cache_dir=str(tmp_path / "cache"), stage1="ensemble",
                            models="shapes-tiny", weights="fit", out=str(tmp_path / "fit")))
    run = json.loads((tmp_path / "fit" / "run.json").read_text())
    assert m["n_queries"] == 48.0 and "grid search" in run["diagnostics"]["ensemble"]["weights_from"]
    ev, fit, _ = load_retrieval(shapes_dir, fit_fraction=0.2)
    texts, images = [], []
    for name in ("tiny-random", "shapes-tiny"):
        enc = ClipEncoder(resolve_model(name)).load()
        texts.append(enc.encode_texts(fit.captions))
        images.append(enc.encode_image_bytes([(str(p), p.read_bytes()) for p in fit.image_paths]))
    want = fit_weights(texts, images, fit.relevant)
    assert run["diagnostics"]["ensemble"]["weights"] == pytest.approx(list(want), abs=1e-9)
