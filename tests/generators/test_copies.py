"""``vgrc build-copies``: exact counts, recorded transforms that are the ones applied,
determinism, resume after an interruption, bad inputs."""

import hashlib
import json
from collections import Counter

import numpy as np
import pytest
from helpers import one_error_line
from PIL import Image
from typer.testing import CliRunner

from vgrc.cli.main import app
from vgrc.evaluators.dataset import read_manifest, read_split
from vgrc.generators.copies.build import CopiesConfig, build_copies


def photo_folder(root, n=4, size=(96, 72)):
    """``n`` images in nested folders, each white with one red 6 × 6 block at a known place."""
    spots = {}
    for i in range(n):
        arr = np.full((size[1], size[0], 3), 255, np.uint8)
        x, y = 20 + 10 * i, 18 + 6 * i
        arr[y : y + 6, x : x + 6] = (220, 0, 0)
        path = root / ("sub" if i % 2 else "") / f"p{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)
        spots[path.relative_to(root).with_suffix("").as_posix()] = (x + 3.0, y + 3.0)
    return spots


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "copies" / "images").iterdir())}


def test_copies_record_the_transform_that_was_applied(tmp_path):
    """With colour jitter off, the red block's centre in each copy lies where the recorded
    homography sends the source's block centre (within 1.5 px)."""
    spots = photo_folder(tmp_path / "photos")
    result = build_copies(tmp_path / "out", CopiesConfig(src=str(tmp_path / "photos"), copies=3, jitter=0.0, jpeg_min=95))
    assert result.counts == {"originals": 4, "copies": 12} and result.written == 12
    rows = read_split(tmp_path / "out", "copies")
    assert Counter(r["query_of"] for r in rows) == {k: 3 for k in spots}
    assert {r["query_of"] for r in rows} == set(spots) and all(r["id"] == f"{r['query_of']}#{r['id'][-1]}" for r in rows)
    checked = 0
    for r in rows:
        H = np.asarray(r["transform"]["homography"]).reshape(3, 3)
        x, y = spots[r["query_of"]]
        u, v, w = H @ [x, y, 1.0]
        u, v = u / w, v / w
        arr = np.asarray(Image.open(tmp_path / "out" / "copies" / r["file_name"]).convert("RGB")).astype(int)
        red = (arr[:, :, 0] > 150) & (arr[:, :, 1] < 90) & (arr[:, :, 2] < 90)
        if not (3 <= u < arr.shape[1] - 3 and 3 <= v < arr.shape[0] - 3):
            continue  # cropped away: nothing to see
        ys, xs = np.nonzero(red)
        assert len(xs) > 4
        assert abs(xs.mean() + 0.5 - u) < 1.5 and abs(ys.mean() + 0.5 - v) < 1.5
        checked += 1
    assert checked >= 8
    originals = read_split(tmp_path / "out", "originals")
    assert {r["id"] for r in originals} == set(spots)
    manifest = read_manifest(tmp_path / "out")
    assert manifest["query_split"] == "copies" and manifest["gallery_split"] == "originals"


def test_same_seed_same_bytes_independent_of_the_other_images(tmp_path):
    photo_folder(tmp_path / "photos")
    build_copies(tmp_path / "a", CopiesConfig(src=str(tmp_path / "photos"), copies=2))
    build_copies(tmp_path / "b", CopiesConfig(src=str(tmp_path / "photos"), copies=2))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    build_copies(tmp_path / "one", CopiesConfig(src=str(tmp_path / "photos"), copies=2, limit=1))
    one = digest(tmp_path / "one")
    assert len(one) == 2 and all(digest(tmp_path / "a")[name] == h for name, h in one.items())  # a copy depends on its image alone
    build_copies(tmp_path / "c", CopiesConfig(src=str(tmp_path / "photos"), copies=2, seed=1))
    assert set(digest(tmp_path / "c").values()).isdisjoint(digest(tmp_path / "a").values())


def test_an_interrupted_build_resumes_to_the_same_bytes(tmp_path):
    photo_folder(tmp_path / "photos")
    config = CopiesConfig(src=str(tmp_path / "photos"), copies=3)

    def stop(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_copies(tmp_path / "out", config, on_progress=stop)
    assert not (tmp_path / "out" / "manifest.json").exists()
    resumed = build_copies(tmp_path / "out", config)
    assert resumed.state == "resume" and resumed.kept == 5 and resumed.written == 7
    build_copies(tmp_path / "clean", config)
    assert digest(tmp_path / "out") == digest(tmp_path / "clean")
    assert build_copies(tmp_path / "out", config).state == "complete"


def test_a_vgrc_dataset_as_the_source(shapes_dir, tmp_path):
    result = CliRunner().invoke(app, ["build-copies", "--src", str(shapes_dir), "--out", str(tmp_path / "c"), "--copies", "1", "--limit", "7", "-q"])
    assert result.exit_code == 0, result.output
    rows = read_split(tmp_path / "c", "copies")
    ids = {r["id"] for r in read_split(shapes_dir, "compositions")}
    assert len(rows) == 7 and {r["query_of"] for r in rows} <= ids
    assert "compositions" in json.loads((tmp_path / "c" / "manifest.json").read_text())["source"]


@pytest.mark.parametrize("args, message", [
    (["--copies", "0"], "--copies must be ≥ 1, got 0"),
    (["--rotate", "200"], "--rotate must be in [0, 180], got 200.0"),
    (["--jpeg-min", "0"], "--jpeg-min must be in [1, 95], got 0"),
])
def test_bad_options_are_one_line_and_write_nothing(tmp_path, args, message):
    photo_folder(tmp_path / "photos")
    result = CliRunner().invoke(app, ["build-copies", "--src", str(tmp_path / "photos"), "--out", str(tmp_path / "out"), *args])
    assert message in one_error_line(result) and not (tmp_path / "out").exists()


def test_bad_sources_are_one_line_and_write_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    for src, out, message in ((tmp_path / "nowhere", tmp_path / "o1", "no such folder"), (tmp_path / "empty", tmp_path / "o2", "no images found")):
        result = CliRunner().invoke(app, ["build-copies", "--src", str(src), "--out", str(out)])
        assert message in one_error_line(result) and not out.exists()
    photo_folder(tmp_path / "photos")
    result = CliRunner().invoke(app, ["build-copies", "--src", str(tmp_path / "photos"), "--out", str(tmp_path / "photos" / "copies")])
    assert "is inside --src" in one_error_line(result) and not (tmp_path / "photos" / "copies").exists()
