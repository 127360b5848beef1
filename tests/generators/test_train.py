"""`vgrc train`: open_clip's own trainer on the tests' small Synthetic Shapes build (the same
code path as the full recipe, a few steps), the held-out split, resume after an
interruption, the checkpoint in `vgrc eval`, bad inputs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import one_error_line
from typer.testing import CliRunner

from vgrc.cli.main import app
from vgrc.evaluators.dataset import read_manifest
from vgrc.generators.train.run import split_rows

VGRC = str(Path(sys.executable).with_name("vgrc"))
FAST = ["--epochs", "1", "--batch-size", "32", "--workers", "0", "-q"]


@pytest.fixture(scope="module")
def trained(shapes_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "model"
    result = CliRunner().invoke(app, ["train", "--data", str(shapes_dir), "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_weights_heldout_rows_and_a_complete_record(trained, shapes_dir):
    heldout = (trained / "heldout_ids.txt").read_text().split()
    train_csv = (trained / "train.csv").read_text().splitlines()
    assert len(heldout) == 12 and len(train_csv) == 1 + 48 + 42  # 20% of the 60 compositions; the 42 primitives all train
    trained_paths = {line.split("\t")[0] for line in train_csv[1:]}
    assert not any(f"/{i}.png" in p for i in heldout for p in trained_paths)  # never trained on
    manifest = read_manifest(trained / "heldout")
    assert manifest["splits"]["compositions"]["rows"] == 12 and manifest["recommended"] == read_manifest(shapes_dir)["recommended"]
    run = json.loads((trained / "run.json").read_text())
    assert run["kind"] == "train" and run["complete"] and run["counts"] == {"train_rows": 90, "object_crops": 0, "heldout_rows": 12, "heldout_split": "compositions"}
    assert run["final_loss"] is not None and np.isfinite(run["final_loss"])
    assert "Train Epoch: 0" in (trained / "train.log").read_text() and (trained / "logs" / "run" / "out.log").is_file()


def test_the_checkpoint_loads_in_eval_with_the_trained_weights(trained, tmp_path):
    """`vgrc eval --model shapes-tiny --pretrained OUT/model.pt` on the held-out dataset, and
    the encoder it builds holds exactly the checkpoint's weights (not random ones)."""
    import torch

    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model

    result = CliRunner().invoke(app, ["eval", "--data", str(trained / "heldout"), "--model", "shapes-tiny", "--pretrained", str(trained / "model.pt"),
                                      "--rerank", "fgw", "--k", "5", "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["n_queries"] == 12.0
    saved = torch.load(trained / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    model = ClipEncoder(resolve_model("shapes-tiny", str(trained / "model.pt"))).load().model
    loaded = model.state_dict()
    assert set(saved) == set(loaded) and all(torch.equal(saved[k], loaded[k]) for k in saved)
    random_model = ClipEncoder(resolve_model("shapes-tiny")).load().model.state_dict()
    assert not torch.equal(random_model["visual.conv1.weight"], loaded["visual.conv1.weight"])


def test_holdout_is_seeded_and_keeps_the_other_splits_in_training(shapes_dir):
    manifest = read_manifest(shapes_dir)
    train_a, held_a, main = split_rows(str(shapes_dir), manifest, 0.25, seed=1)
    _, held_b, _ = split_rows(str(shapes_dir), manifest, 0.25, seed=1)
    _, held_c, _ = split_rows(str(shapes_dir), manifest, 0.25, seed=2)
    ids = lambda rows: sorted(r["id"] for r in rows)  # noqa: E731
    assert main == "compositions" and len(held_a) == 15 and ids(held_a) == ids(held_b) != ids(held_c)
    assert not set(ids(held_a)) & set(ids(train_a)) and len(train_a) == 45 + 42
    assert all(Path(r["file_name"]).is_absolute() and Path(r["file_name"]).is_file() for r in train_a + held_a)
    everything, none, _ = split_rows(str(shapes_dir), manifest, 0.0, seed=1)
    assert none == [] and len(everything) == 102


def test_an_interrupted_run_resumes_from_its_latest_epoch(shapes_dir, tmp_path):
    """Ctrl-C during the second of two epochs; the same command finishes from the first."""
    out = tmp_path / "model"
    cmd = [VGRC, "train", "--data", str(shapes_dir), "--out", str(out), "--epochs", "2", "--batch-size", "8", "--workers", "0", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    first = out / "logs" / "run" / "checkpoints" / "epoch_latest.pt"  # written after epoch_1.pt, atomically
    deadline = time.time() + 120
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.exists() and proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    record = json.loads((out / "run.json").read_text())
    assert not record["complete"] and not (out / "model.pt").exists()
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    import torch

    assert torch.load(out / "model.pt", map_location="cpu", weights_only=True)["epoch"] == 2
    log = (out / "train.log").read_text()
    assert "resuming checkpoint" in log and log.count("Train Epoch: 0") > 0 and "Train Epoch: 1" in log
    assert json.loads((out / "run.json").read_text())["complete"]


@pytest.mark.parametrize("args, message", [
    (["--holdout", "1.5"], "--holdout must be in [0, 1), got 1.5"),
    (["--epochs", "0"], "--epochs must be ≥ 1, got 0"),
    (["--lr", "0"], "--lr must be > 0, got 0.0"),
    (["--model", "clip"], "vgrc train takes an architecture"),
    (["--model", "ViT-B-99"], "unknown model"),
    (["--precision", "fp8"], "--precision 'fp8'"),
    (["--object-crops", "-1"], "--object-crops must be ≥ 0, got -1"),
])
def test_bad_options_are_one_line_and_write_nothing(shapes_dir, tmp_path, args, message):
    result = CliRunner().invoke(app, ["train", "--data", str(shapes_dir), "--out", str(tmp_path / "m"), *args])
    assert message in one_error_line(result) and not (tmp_path / "m").exists()


def test_a_finished_run_is_not_replaced_without_overwrite(trained, shapes_dir):
    result = CliRunner().invoke(app, ["train", "--data", str(shapes_dir), "--out", str(trained), *FAST])
    assert "--overwrite" in one_error_line(result)


def test_the_newest_whole_checkpoint_is_the_one_resumed(tmp_path):
    """A run killed between the trainer's epoch_N.pt and epoch_latest.pt resumes from
    epoch_N.pt; one cut short mid-write (not a whole zip archive) is passed over."""
    import zipfile

    from vgrc.generators.train.run import _promote_newest_checkpoint

    with zipfile.ZipFile(tmp_path / "epoch_1.pt", "w") as zf:
        zf.writestr("data.pkl", b"epoch one")
    with zipfile.ZipFile(tmp_path / "epoch_2.pt", "w") as zf:
        zf.writestr("data.pkl", b"epoch two" * 100)
    whole = (tmp_path / "epoch_2.pt").read_bytes()
    (tmp_path / "epoch_2.pt").write_bytes(whole[: len(whole) // 2])  # killed while writing
    _promote_newest_checkpoint(tmp_path)
    assert (tmp_path / "epoch_latest.pt").read_bytes() == (tmp_path / "epoch_1.pt").read_bytes()
    (tmp_path / "epoch_2.pt").write_bytes(whole)
    _promote_newest_checkpoint(tmp_path)
    assert (tmp_path / "epoch_latest.pt").read_bytes() == whole and not (tmp_path / "tmp.pt").exists()


def test_object_crops_train_on_each_chosen_box_with_its_phrase(shapes_dir, tmp_path):
    """--object-crops 2: two boxes of every training row (a seeded choice; the primitives
    have one), each written as the exact box's pixels and captioned with its phrase; the
    files are recorded, so --overwrite may delete them."""
    from PIL import Image

    from vgrc.evaluators.objects.regions import clamp_box
    from vgrc.evaluators.retrieval_data import object_phrase
    from vgrc.generators.train.run import choose_object_crops, write_object_crops

    manifest = read_manifest(shapes_dir)
    rows = split_rows(str(shapes_dir), manifest, 0.2, 0)[0]
    chosen = choose_object_crops(rows, 2, 0)
    assert len(chosen) == 48 * 2 + 42 and chosen == choose_object_crops(rows, 2, 0)
    crop_rows = write_object_crops(tmp_path, chosen)
    for (name, row, obj), crop in zip(chosen[:10], crop_rows):
        image = Image.open(row["file_name"]).convert("RGB")
        want = np.asarray(image.crop(clamp_box(obj["bbox"], *image.size)))
        assert np.array_equal(np.asarray(Image.open(tmp_path / name).convert("RGB")), want)
        assert crop["caption"] == object_phrase(obj) and crop["file_name"] == str((tmp_path / name).resolve())
    out = tmp_path / "m"
    result = CliRunner().invoke(app, ["train", "--data", str(shapes_dir), "--out", str(out), "--object-crops", "1", *FAST])
    assert result.exit_code == 0, result.output
    assert len((out / "train.csv").read_text().splitlines()) == 1 + 48 + 42 + 48 + 42
    record = json.loads((out / "run.json").read_text())
    assert record["counts"]["object_crops"] == 90 and sum(f.startswith("crops/") for f in record["files"]) == 90
