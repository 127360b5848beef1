"""Geometric verification (``--rerank orb|sift|orb+sift``) and image queries (``--task i2i``):
known transforms, RANSAC refusing a pair with many raw matches, the keypoint cache, the
task end to end on a ``build-copies`` dataset, the stage checks."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from vgrc.evaluators.errors import VgrcError
from vgrc.evaluators.pipeline import EvalConfig, run_eval
from vgrc.evaluators.rerankers.keypoints import KeypointStore, detect, verify_pair
from vgrc.generators.copies.build import CopiesConfig, build_copies, copy_transform, warp


def textured(seed: int, size=(160, 120)) -> Image.Image:
    """A photo-like test image: noise, filled rectangles and ellipses, lines (many corners)."""
    rng = np.random.default_rng(seed)
    im = Image.fromarray((rng.random((size[1], size[0], 3)) * 60 + 100).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(25):
        x, y, w, h = rng.integers(0, size[0]), rng.integers(0, size[1]), rng.integers(8, 40), rng.integers(8, 40)
        shape = d.rectangle if rng.random() < 0.5 else d.ellipse
        shape([x, y, x + w, y + h], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    for _ in range(10):
        d.line([tuple(int(v) for v in rng.integers(0, 120, 2)), tuple(int(v) for v in rng.integers(0, 120, 2))],
               fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=2)
    return im


def png(image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("method", ["orb", "sift"])
def test_a_transformed_copy_verifies_against_its_source_and_not_against_others(method):
    config = CopiesConfig(src="-", jpeg_min=80)
    source = textured(0)
    copy = warp(source, copy_transform(config, "x", 0, *source.size))
    q = detect(copy, method, 1000)
    true_inliers, _ = verify_pair(q, detect(png(source), method, 1000), method)
    others = [verify_pair(q, detect(png(textured(s)), method, 1000), method)[0] for s in range(1, 6)]
    assert true_inliers >= 25 and max(others) <= 0.3 * true_inliers, (true_inliers, others)


def test_ransac_rejects_a_pair_with_many_raw_matches_but_no_common_geometry():
    """The same 16 tiles, shuffled: ORB's ratio test keeps many matches (identical patches),
    but no single homography explains them, so few survive RANSAC; the unshuffled copy keeps
    nearly all of its matches."""
    base = np.asarray(textured(3, size=(256, 256)))
    tiles = [base[r : r + 64, c : c + 64] for r in range(0, 256, 64) for c in range(0, 256, 64)]
    rng = np.random.default_rng(0)
    while True:  # a shuffle in which every tile moves by a different offset: no two tiles share a translation
        order = rng.permutation(16)
        moves = {(j // 4 - t // 4, j % 4 - t % 4) for j, t in enumerate(order)}
        if len(moves) == 16:
            break
    rows = [np.concatenate([tiles[order[4 * r + c]] for c in range(4)], axis=1) for r in range(4)]
    shuffled = np.concatenate(rows, axis=0)
    a = detect(png(Image.fromarray(base)), "orb", 2000)
    inliers, raw = verify_pair(a, detect(png(Image.fromarray(shuffled)), "orb", 2000), "orb")
    same_inliers, same_raw = verify_pair(a, detect(png(Image.fromarray(base)), "orb", 2000), "orb")
    assert raw >= 40 and inliers <= 0.35 * raw, (inliers, raw)
    assert same_inliers >= 0.9 * same_raw


def test_keypoints_are_computed_once_and_read_back_identical(tmp_path):
    path = tmp_path / "a.png"
    textured(4).save(path)
    store = KeypointStore(tmp_path / "cache", "orb", 500)
    first = store.get("k" * 64, path)
    again = KeypointStore(tmp_path / "cache", "orb", 500)
    second = again.get("k" * 64, path)
    assert store.computed == 1 and again.computed == 0
    assert np.array_equal(first.points, second.points) and np.array_equal(first.descriptors, second.descriptors)


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("geo")
    (root / "photos").mkdir()
    for i in range(30):
        textured(100 + i).save(root / "photos" / f"t{i:02d}.png")
    build_copies(root / "copies", CopiesConfig(src=str(root / "photos"), copies=1))
    return root / "copies"


def test_image_queries_end_to_end_with_orb_reranking(copies, tmp_path):
    base = dict(data=str(copies), task="i2i", model="tiny-random", k=30, cache_dir=str(tmp_path / "cache"))
    plain = run_eval(EvalConfig(**base, out=str(tmp_path / "none")))
    orb = run_eval(EvalConfig(**base, rerank="orb", out=str(tmp_path / "orb")))
    assert plain["n_queries"] == orb["n_queries"] == 30.0 and plain["n_gallery"] == 30.0
    assert orb["i2i_shortlist_recall@30"] == 1.0  # every source is shortlisted at k = the gallery
    assert orb["i2i_R@1"] == 1.0 > plain["i2i_R@1"]  # the random model ranks near chance; verification finds every source
    frame = pd.read_parquet(tmp_path / "orb" / "per_query.parquet")
    assert (frame.top1_final == frame.query_of).all() and frame.rank_final.eq(0).all()
    assert orb["i2i_R@5"] == pytest.approx(np.mean(frame.rank_final < 5))
    run = json.loads((tmp_path / "orb" / "run.json").read_text())
    assert run["diagnostics"]["keypoints_computed"]["orb"] == 60
    run_eval(EvalConfig(**base, rerank="orb", out=str(tmp_path / "again")))
    assert json.loads((tmp_path / "again" / "run.json").read_text())["diagnostics"]["keypoints_computed"]["orb"] == 0


@pytest.mark.parametrize("kw, message", [
    (dict(task="i2i", rerank="hungarian"), "--task i2i ranks images by cosine (or an ensemble), then by --rerank none / orb"),
    (dict(task="i2i", stage1="ensemble", models="tiny-random", weights="fit"), "--task i2i holds no rows out to fit --stage1 ensemble on"),
    (dict(task="retrieval", rerank="orb"), "--rerank orb compares query images with candidates: use it with --task i2i"),
    (dict(task="i2i", gallery_split="nowhere"), "--gallery-split 'nowhere'"),
])
def test_stage_checks_are_one_line(copies, tmp_path, kw, message):
    with pytest.raises(VgrcError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        config = EvalConfig(data=str(copies), model="tiny-random", out=str(tmp_path / "x"), **kw)
        config.check()
        run_eval(config)


def test_image_queries_with_an_ensemble_stage1(copies, tmp_path):
    """--task i2i --stage1 ensemble: a model fused with itself ranks as the model alone."""
    base = dict(data=str(copies), task="i2i", model="tiny-random", k=10, cache_dir=str(tmp_path / "cache"))
    run_eval(EvalConfig(**base, out=str(tmp_path / "cos")))
    m = run_eval(EvalConfig(**base, stage1="ensemble", models="tiny-random", weights="2,1", out=str(tmp_path / "ens")))
    a, b = pd.read_parquet(tmp_path / "ens" / "per_query.parquet"), pd.read_parquet(tmp_path / "cos" / "per_query.parquet")
    assert (a.rank_stage1 == b.rank_stage1).all() and m["n_queries"] == 30.0
    assert json.loads((tmp_path / "ens" / "run.json").read_text())["diagnostics"]["ensemble"]["weights"] == [2.0, 1.0]


def test_query_images_from_a_folder_or_a_list(copies, tmp_path):
    """--queries: a folder of query images whose file stems are gallery ids (here: the
    originals themselves, so every query finds itself first), or a .txt list of paths."""
    originals = sorted(p for p in (copies.parent / "photos").glob("*.png"))
    (tmp_path / "q").mkdir()
    for p in originals[:5]:
        (tmp_path / "q" / p.name).write_bytes(p.read_bytes())
    (tmp_path / "list.txt").write_text("".join(f"q/{p.name}\n" for p in originals[5:8]))
    base = dict(data=str(copies), task="i2i", model="tiny-random", k=10, cache_dir=str(tmp_path / "cache"))
    m = run_eval(EvalConfig(**base, queries=str(tmp_path / "q"), out=str(tmp_path / "folder")))
    assert m["n_queries"] == 5.0 and m["i2i_R@1"] == 1.0  # the same image: cosine 1
    with pytest.raises(VgrcError, match="is not a file"):
        run_eval(EvalConfig(**base, queries=str(tmp_path / "list.txt"), out=str(tmp_path / "list")))
    (tmp_path / "list.txt").write_text("".join(f"{p}\n" for p in originals[5:8]))
    assert run_eval(EvalConfig(**base, queries=str(tmp_path / "list.txt"), out=str(tmp_path / "list")))["n_queries"] == 3.0
    with pytest.raises(VgrcError, match="expected a folder of images or a .txt file"):
        run_eval(EvalConfig(**base, queries=str(tmp_path / "nowhere.jpg"), out=str(tmp_path / "bad")))


def test_report_reads_image_query_runs(copies, tmp_path):
    from vgrc.evaluators.report import report_table

    base = dict(data=str(copies), task="i2i", model="tiny-random", k=30, cache_dir=str(tmp_path / "cache"))
    m = run_eval(EvalConfig(**base, rerank="orb", out=str(tmp_path / "orb")))
    run_eval(EvalConfig(**base, stage1="ensemble", models="tiny-random", weights="1,1", out=str(tmp_path / "ens")))
    md, _, _ = report_table([tmp_path / "orb", tmp_path / "ens"])
    row = next(line for line in md.splitlines() if line.startswith("| orb |"))
    assert "cosine (image queries)" in row and f"| {100 * m['i2i_R@1']:.1f} |" in row
    assert "models=tiny-random,tiny-random weights=1,1" in md
