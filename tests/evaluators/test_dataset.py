"""The dataset folder contract: build life cycle, atomic writes, verified reading."""

import json

import pytest

from vgrc.evaluators.dataset import (
    FORMAT,
    MANIFEST_NAME,
    MARKER_NAME,
    atomic_write_text,
    finish_dataset,
    prepare_output,
    read_manifest,
    read_split,
    remove_stale_temporaries,
    write_jsonl,
)
from vgrc.evaluators.errors import DatasetFolderError, OutputError

CFG = {"size": 8, "seed": 0}
TOY_FILES = ("train/metadata.jsonl", "train/images/a.png")


def _finish(out, rows=({"id": "a", "file_name": "images/a.png", "caption": "x", "objects": []},)):
    (out / "train" / "images").mkdir(parents=True, exist_ok=True)
    (out / "train" / "images" / "a.png").write_bytes(b"png")
    write_jsonl(out / "train" / "metadata.jsonl", rows)
    return finish_dataset(out, "toy", CFG, version="0", command="vgrc toy", seed=0, splits=["train"], files=TOY_FILES)


def test_life_cycle_new_resume_complete(tmp_path):
    out = tmp_path / "d"
    assert prepare_output(out, "toy", CFG) == "new"
    assert (out / MARKER_NAME).exists()
    with pytest.raises(DatasetFolderError, match="interrupted"):
        read_manifest(out)  # unfinished builds are never declared finished
    assert prepare_output(out, "toy", CFG) == "resume"
    manifest = _finish(out)
    assert not (out / MARKER_NAME).exists()
    assert manifest["splits"]["train"]["rows"] == 1
    assert prepare_output(out, "toy", CFG) == "complete"
    assert read_split(out, "train")[0]["id"] == "a"


def test_different_dataset_refused_unless_overwrite(tmp_path):
    out = tmp_path / "d"
    prepare_output(out, "toy", CFG, files=TOY_FILES)
    _finish(out)
    with pytest.raises(DatasetFolderError, match="different dataset.*--overwrite"):
        prepare_output(out, "toy", {**CFG, "seed": 1})
    with pytest.raises(DatasetFolderError, match="different dataset"):
        prepare_output(out, "other", CFG)
    assert prepare_output(out, "toy", {**CFG, "seed": 1}, overwrite=True) == "new"
    assert sorted(p.name for p in out.iterdir()) == [MARKER_NAME]


def test_overwrite_removes_only_vgrc_files_and_refuses_foreign_ones(tmp_path):
    out = tmp_path / "d"
    prepare_output(out, "toy", CFG, files=TOY_FILES)
    _finish(out)
    (out / "notes").mkdir()
    (out / "notes" / "thesis.tex").write_text("precious")
    with pytest.raises(DatasetFolderError, match=r"holds a vgrc dataset and 'notes/thesis.tex', which vgrc did not write"):
        prepare_output(out, "toy", {**CFG, "seed": 1}, overwrite=True)
    assert (out / "notes" / "thesis.tex").read_text() == "precious" and (out / "manifest.json").exists()
    (out / "notes" / "thesis.tex").unlink()
    (out / "notes").rmdir()
    assert prepare_output(out, "toy", {**CFG, "seed": 1}, overwrite=True, files=TOY_FILES) == "new"
    assert sorted(p.name for p in out.iterdir()) == [MARKER_NAME]


def test_an_unrelated_manifest_does_not_make_a_folder_vgrcs(tmp_path):
    """The review's case: a folder with someone else's manifest.json and a thesis."""
    out = tmp_path / "d"
    (out / "thesis").mkdir(parents=True)
    (out / "thesis" / "main.tex").write_text("precious")
    (out / "manifest.json").write_text('{"name": "my-app", "version": 3}')
    for overwrite in (False, True):
        with pytest.raises(DatasetFolderError, match="not a vgrc dataset"):
            prepare_output(out, "toy", CFG, overwrite=overwrite)
    assert (out / "thesis" / "main.tex").read_text() == "precious"
    # even with vgrc's format marker but no record of its files, nothing is deleted
    (out / "manifest.json").write_text(json.dumps({"format": FORMAT, "dataset": "toy", "config": {"x": 1}, "splits": {}}))
    with pytest.raises(DatasetFolderError, match="cannot prove what it may delete"):
        prepare_output(out, "toy", CFG, overwrite=True)
    assert (out / "thesis" / "main.tex").read_text() == "precious"
    # a record from an older vgrc that holds patterns proves nothing about single files
    (out / "manifest.json").write_text(json.dumps({"format": FORMAT, "dataset": "toy", "config": {"x": 1}, "splits": {}, "files": ["train/images/*.png"]}))
    (out / "train" / "images").mkdir(parents=True)
    (out / "train" / "images" / "a.png").write_bytes(b"png")
    with pytest.raises(DatasetFolderError, match="did not record each file it wrote"):
        prepare_output(out, "toy", CFG, overwrite=True, files=TOY_FILES)
    assert (out / "thesis" / "main.tex").read_text() == "precious" and (out / "train" / "images" / "a.png").exists()


def test_overwrite_spares_a_user_file_beside_vgrcs_at_every_depth(tmp_path):
    """Issue 21: a user's file among vgrc's images (same folder, same extension) or in a
    folder of its own survives --overwrite, which refuses and deletes nothing."""
    out = tmp_path / "d"
    prepare_output(out, "toy", CFG, files=TOY_FILES)
    _finish(out)
    for rel in ("train/images/my_own_figure.png", "train/notes.png", "holiday/beach.png", "top.png",
                "train/images/a.png.vgrc-tmp-x", "train/images/b.png.vgrc-tmp-12"):
        user = out / rel
        user.parent.mkdir(parents=True, exist_ok=True)
        user.write_bytes(b"mine")
        before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
        with pytest.raises(DatasetFolderError, match=f"and {rel!r}, which vgrc did not write"):
            prepare_output(out, "toy", {**CFG, "seed": 1}, overwrite=True, files=TOY_FILES)
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
        user.unlink()
    # vgrc's own leftover temporary (its target is recorded) is vgrc's and goes
    (out / "train" / "images" / "a.png.vgrc-tmp-77").write_bytes(b"half")
    assert prepare_output(out, "toy", {**CFG, "seed": 1}, overwrite=True, files=TOY_FILES) == "new"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [MARKER_NAME]


def test_patterns_are_refused_as_a_record(tmp_path):
    with pytest.raises(ValueError, match="exact files"):
        prepare_output(tmp_path / "d", "toy", CFG, files=("train/images/*.png",))


def test_unfinished_different_build_is_refused(tmp_path):
    out = tmp_path / "d"
    prepare_output(out, "toy", CFG)
    with pytest.raises(DatasetFolderError, match="unfinished build"):
        prepare_output(out, "toy", {**CFG, "size": 9})


def test_foreign_folder_is_never_deleted(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(DatasetFolderError, match="not a vgrc dataset"):
            prepare_output(out, "toy", CFG, overwrite=overwrite)
    assert (out / "thesis.tex").read_text() == "precious"


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        prepare_output(blocker, "toy", CFG)
    with pytest.raises(OutputError, match="cannot create"):
        prepare_output(blocker / "sub", "toy", CFG)
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write_text(tmp_path / "missing-dir" / "f.txt", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_read_split_detects_edits_and_unknown_split(tmp_path):
    out = tmp_path / "d"
    prepare_output(out, "toy", CFG)
    _finish(out)
    with pytest.raises(DatasetFolderError, match="no split 'test'; its splits: train"):
        read_split(out, "test")
    meta = out / "train" / "metadata.jsonl"
    meta.write_text(meta.read_text().replace('"x"', '"y"'))
    with pytest.raises(DatasetFolderError, match="sha256"):
        read_split(out, "train")
    assert read_split(out, "train", verify=False)[0]["caption"] == "y"


def test_not_a_dataset_messages(tmp_path):
    with pytest.raises(DatasetFolderError, match="is not a folder"):
        read_manifest(tmp_path / "nope")
    with pytest.raises(DatasetFolderError, match="gen-shapes"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DatasetFolderError, match="unknown format"):
        read_manifest(tmp_path)


def test_write_jsonl_is_reproducible_and_hashed(tmp_path):
    import hashlib

    rows = [{"id": "é", "objects": [{"noun": "n", "attributes": [], "bbox": None}]}]
    sha = write_jsonl(tmp_path / "a.jsonl", rows)
    data = (tmp_path / "a.jsonl").read_bytes()
    assert data == '{"id":"é","objects":[{"noun":"n","attributes":[],"bbox":null}]}\n'.encode()
    assert sha == hashlib.sha256(data).hexdigest()


def test_stale_temporaries_removed(tmp_path):
    (tmp_path / "a.png.vgrc-tmp-123").write_bytes(b"half")
    (tmp_path / "b.png").write_bytes(b"whole")
    (tmp_path / "notes.vgrc-tmp-draft.txt").write_bytes(b"a user's")  # not vgrc's temporary form
    (tmp_path / "c.png.vgrc-tmp-9").write_bytes(b"target not vgrc's")
    assert remove_stale_temporaries(tmp_path, {"a.png", "b.png"}) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "c.png.vgrc-tmp-9", "notes.vgrc-tmp-draft.txt"]
