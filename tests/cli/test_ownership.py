"""Issue 21: a user's file at every depth of every output kind survives `--overwrite`.

For each kind of folder vgrc writes (gen-shapes, build-vg, an import, an eval run, a
diagnose run, a diagnose-all folder), the folder is built, then a file of the user's is
dropped at each depth in turn: beside the record, in a split folder, among vgrc's own
images with their extension, and in folders of its own. `--overwrite` with other options
must refuse with one line naming that file, and leave every file exactly as it was.
"""

import pytest
from helpers import one_error_line, tree_digest
from typer.testing import CliRunner

from vgrc.cli.main import app

runner = CliRunner()


def _invoke(args):
    return runner.invoke(app, [str(a) for a in args])


def _kinds(tmp_path, shapes_dir):
    from vg_fixture import write_vg

    vg = write_vg(tmp_path / "vg-src")
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (16, 16), (40 * i, 10, 10)).save(photos / f"p{i}.png")
    (tmp_path / "c.csv").write_text("file_name,caption\np0.png,a red kite\np1.png,a blue boat\np2.png,a green car\n")
    (tmp_path / "c2.csv").write_text("file_name,caption\np0.png,a red kite\np1.png,a blue boat\n")
    ev = ["eval", "--data", shapes_dir, "--model", "tiny-random", "--cache-dir", tmp_path / "cache", "-q"]
    dg = ["diagnose", "substitution", "--data", shapes_dir, "--model", "tiny-random", "--cache-dir", tmp_path / "cache", "-q"]
    return {
        # kind: (first command, a different command for the same --out, user-file paths to try)
        "gen-shapes": (["gen-shapes", "--size", "32", "--limit", "6", "--seed", "1", "-q"], ["gen-shapes", "--size", "32", "--limit", "6", "--seed", "2", "-q"],
                       ["notes.txt", "compositions/mine.png", "compositions/images/my_own_figure.png", "primitives/images/red_star (1).png",
                        "holiday/beach.png", "compositions/images/deep/er/x.png"]),
        "build-vg": (["build-vg", "--vg-dir", vg, "--min-images", "9", "-q"], ["build-vg", "--vg-dir", vg, "--min-images", "10", "-q"],
                     ["notes.txt", "images/my.jsonl", "images/sub/metadata.jsonl", "holiday/beach.png"]),
        "import": (["import", "captions", "--images", photos, "--captions", tmp_path / "c.csv", "-q"],
                   ["import", "captions", "--images", photos, "--captions", tmp_path / "c2.csv", "-q"],
                   ["notes.txt", "images/p0.png", "images/x/y.png"]),
        "eval": ([*ev, "--rerank", "none"], [*ev, "--rerank", "hungarian"], ["notes.txt", "recall_curve (copy).png", "plots/mine.png"]),
        "diagnose": ([*dg, "--top-k", "1"], [*dg, "--top-k", "2"], ["notes.txt", "substitution.png.bak", "old/substitution.csv"]),
    }


@pytest.mark.parametrize("kind", ["gen-shapes", "build-vg", "import", "eval", "diagnose"])
def test_a_user_file_at_any_depth_survives_overwrite(shapes_dir, tmp_path, kind):
    first, other, user_files = _kinds(tmp_path, shapes_dir)[kind]
    out = tmp_path / "out"
    built = _invoke([*first, "--out", out])
    assert built.exit_code == 0, built.output
    for rel in user_files:
        user = out / rel
        user.parent.mkdir(parents=True, exist_ok=True)
        user.write_bytes(b"the user's own bytes")
        before = tree_digest(out)
        line = one_error_line(_invoke([*other, "--out", out, "--overwrite"]))
        assert repr(rel) in line or f"'{rel}'" in line, f"{kind}: {rel}: {line}"
        assert tree_digest(out) == before, f"{kind}: --overwrite changed files with {rel} present"
        user.unlink()
        for parent in user.relative_to(out).parents:  # folders the test made for it
            if str(parent) != "." and (out / parent).is_dir() and not any((out / parent).iterdir()):
                (out / parent).rmdir()
    replaced = _invoke([*other, "--out", out, "--overwrite"])  # with only vgrc's files left, it replaces them
    assert replaced.exit_code == 0, replaced.output
