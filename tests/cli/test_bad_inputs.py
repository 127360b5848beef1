"""A table of bad inputs across every command. For each: a non-zero exit, no traceback,
ONE `error:` line that names the bad value, and no file created, changed or deleted
anywhere we can see (the inputs, the output folder, the embedding cache, the working
folder)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import one_error_line, tree_digest
from typer.testing import CliRunner
from vg_fixture import write_vg

from vgrc.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory, shapes_dir):
    """Inputs every case may point at; none of them may change."""
    root = tmp_path_factory.mktemp("bad-inputs")
    vg = write_vg(root / "vg")
    broken_vg = root / "broken-vg"
    broken_vg.mkdir()
    (broken_vg / "attributes.json").write_text('[{"image_id": 1, "attributes": [{"names": ["car"], ')
    foreign = root / "thesis"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    (root / "notes.md").write_text("my own notes\n")
    (root / "contrasts.yaml").write_text("- {category: color, a: [white], b: [white]}\n")
    (root / "a-file").write_text("x")
    # issue 21: files that are not UTF-8 text, and inputs whose problem used to be misreported
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    (root / "picture.png").write_bytes(png)
    latin_vg = root / "latin1-vg"
    latin_vg.mkdir()
    (latin_vg / "attributes.json").write_bytes('[{"image_id": 1, "attributes": [{"names": ["caf\u00e9"], "attributes": ["red"]}]}]'.encode("latin-1"))
    mit = root / "mit-states"
    (mit / "release_dataset" / "images" / "red car").mkdir(parents=True)
    (mit / "adj_ants.csv").write_bytes("red,green\nna\u00efve,worldly\n".encode("latin-1"))
    (root / "broken-plausible.yaml").write_text("car: [red, green\n  bus: ]\n")
    photos = root / "photos"
    photos.mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8), (1, 2, 3)).save(photos / "a.png")
    (root / "empty.csv").write_text("")
    (root / "header-only.csv").write_text("file_name,caption\n")
    (root / "no-caption-column.csv").write_text("file_name,text\na.png,a red car\n")
    (root / "empty-captions.csv").write_text("file_name,caption\na.png,\na.png,   \n")
    (root / "numeric.jsonl").write_text('{"file_name": "a.png", "caption": 42}\n')
    foreign_run = root / "foreign-run"
    foreign_run.mkdir()
    (foreign_run / "run.json").write_text('{"epochs": 3}')  # another tool's run.json
    (foreign_run / "metrics.json").write_text("{}")
    run = root / "run-damaged"
    run.mkdir()
    (run / "metrics.json").write_text('{"t2i_R@1": 0.5, "config": {"task": "retrieval", "model": "m", "stage1": "cosine", "rerank": "none"}, "notes": []}')
    (run / "per_query.parquet").write_bytes(b"")
    return {"root": root, "vg": vg, "broken_vg": broken_vg, "foreign": foreign, "shapes": shapes_dir, "latin_vg": latin_vg, "mit": mit, "photos": photos, "run_damaged": run, "foreign_run": foreign_run}


def _cases(w):
    r, shapes = w["root"], w["shapes"]
    out = r / "out"
    ev = ["eval", "--data", shapes, "--model", "tiny-random", "--out", out]
    nac = ["build-nac", "--out", out, "--judge", "none", "--limit", "1"]
    dg, dg_args = ["diagnose"], ["--data", shapes, "--model", "tiny-random", "--out", out]
    return [
        # gen-shapes
        (["gen-shapes", "--out", out, "--shapes", "octagon"], "'octagon'"),
        (["gen-shapes", "--out", out, "--colors", "teal"], "'teal'"),
        (["gen-shapes", "--out", out, "--size", "8"], "got 8"),
        (["gen-shapes", "--out", out, "--limit", "-3"], "got -3"),
        (["gen-shapes", "--out", out, "--limit", "many"], "'many'"),
        (["gen-shapes", "--out", out, "--workers", "0"], "got 0"),
        (["gen-shapes", "--out", w["foreign"]], "thesis.tex"),
        (["gen-shapes", "--out", r / "a-file" / "d"], "a-file"),
        # build-vg
        (["build-vg", "--vg-dir", r / "no-such-vg", "--out", out], "no-such-vg"),
        (["build-vg", "--vg-dir", w["broken_vg"], "--out", out], "attributes.json"),
        (["build-vg", "--vg-dir", w["vg"], "--out", out, "--min-images", "0"], "got 0"),
        (["build-vg", "--vg-dir", w["vg"], "--out", out, "--query-template", "a {colour} {noun}"], "a {colour} {noun}"),
        (["build-vg", "--vg-dir", w["vg"], "--out", out, "--contrasts", r / "contrasts.yaml"], "'white' in both poles"),
        (["build-vg", "--vg-dir", w["vg"], "--out", w["foreign"]], "thesis.tex"),
        # build-nac
        (["build-nac", "--out", out, "--model", "/nonexistent/flux", "--limit", "1"], "/nonexistent/flux"),
        (["build-nac", "--out", out, "--model", "not a valid//hub id", "--limit", "1"], "not a valid//hub id"),
        (["build-nac", "--out", out, "--judge-model", r / "no-such-qwen", "--limit", "1"], "no-such-qwen"),
        (["build-nac", "--out", out, "--judge", "gpt"], "'gpt'"),
        ([*nac, "--clipscore-model", "clipp"], "'clipp'"),
        ([*nac, "--height", "20"], "got 20"),
        ([*nac, "--min-confidence", "1.5"], "got 1.5"),
        ([*nac, "--num-shards", "2", "--shard-index", "3"], "got 3"),
        ([*nac, "--steps", "0"], "got 0"),
        # propose-nac
        (["propose-nac", "--mit-states", r / "no-mit", "--out", r / "c.yaml"], "no-mit"),
        (["propose-nac", "--mit-states", r / "no-mit", "--out", r / "notes.md"], "notes.md"),
        # issue 21: inputs that are not UTF-8 text, read before any model loads
        (["build-vg", "--vg-dir", w["latin_vg"], "--out", out], "attributes.json: not UTF-8"),
        (["build-vg", "--vg-dir", w["vg"], "--out", out, "--contrasts", r / "picture.png"], "picture.png: not UTF-8"),
        (["build-vg", "--vg-dir", w["vg"], "--out", out, "--query-template", "a {noun}"], "'a {noun}'"),
        ([*nac, "--contrasts", r / "picture.png"], "picture.png: not UTF-8"),
        ([*nac, "--plausible", r / "picture.png", "--dry-run"], "picture.png: not UTF-8"),
        ([*nac, "--plausible", r / "broken-plausible.yaml"], "broken-plausible.yaml: invalid YAML"),
        (["propose-nac", "--mit-states", w["mit"], "--out", r / "c.yaml"], "adj_ants.csv: not UTF-8"),
        (["import", "captions", "--images", w["photos"], "--captions", r / "empty.csv", "--out", out], "empty.csv: the file is empty"),
        (["import", "captions", "--images", w["photos"], "--captions", r / "header-only.csv", "--out", out], "header-only.csv: no rows"),
        (["import", "captions", "--images", w["photos"], "--captions", r / "no-caption-column.csv", "--out", out], "no 'caption' column"),
        (["import", "captions", "--images", w["photos"], "--captions", r / "empty-captions.csv", "--out", out], "every caption is empty"),
        (["import", "captions", "--images", w["photos"], "--captions", r / "numeric.jsonl", "--out", out], "'caption' must be text, got 42"),
        ([*ev, "--cache-dir", "/proc/1/vgrc-cache"], "--cache-dir /proc/1/vgrc-cache is not writable"),
        (["eval", "--data", shapes, "--model", "tiny-random", "--out", w["foreign_run"], "--overwrite"], "holds a run.json that vgrc did not write"),
        (["report", w["run_damaged"], "--out", r / "t2.md", "--bootstrap", "100"], "per_query.parquet is damaged (it is empty)"),
        # eval
        ([*ev, "--model", "clipp"], "'clipp'"),
        ([*ev, "--precision", "fp8"], "'fp8'"),
        ([*ev, "--stage1", "bm25"], "'bm25'"),
        ([*ev, "--rerank", "sinkhorn"], "'sinkhorn'"),
        ([*ev, "--solver", "lp"], "'lp'"),
        ([*ev, "--fgw-alpha", "2"], "got 2.0"),
        ([*ev, "--stage1", "ridge+steer", "--steer", "pentagon:octagon"], "'octagon'"),
        ([*ev, "--limit", "-1"], "got -1"),
        ([*ev, "--k", "0"], "got 0"),
        ([*ev, "--device", "gpu"], "'gpu'"),
        ([*ev, "--rerank", "fgw", "--solver", "sinkhorn", "--epsilon", "0"], "got 0.0"),
        ([*ev, "--surplus-cost", "-1"], "got -1.0"),
        ([*ev, "--pretrained", r / "nope.pt"], "nope.pt"),
        (["eval", "--data", r / "no-data", "--model", "tiny-random", "--out", out], "no-data"),
        ([*ev, "--split", "test"], "'test'"),
        ([*ev, "--template", "a photo"], "'a photo'"),
        ([*ev, "--fit-fraction", "1.5"], "got 1.5"),
        (["eval", "--data", shapes, "--model", "tiny-random", "--out", w["foreign"]], "thesis.tex"),
        # report
        (["report", w["foreign"], "--out", r / "table.md"], "thesis"),
        (["report", w["foreign"], "--out", r / "missing" / "table.md"], "missing"),
        (["report", w["foreign"], "--out", r / "notes.md"], "notes.md"),
        (["report", w["foreign"], "--out", r / "t.md", "--bootstrap", "10"], "--bootstrap 10"),
        ([*ev, "--index", "ivff"], "'ivff'"),
        ([*ev, "--index", "ivf", "--nprobe", "0"], "got 0"),
        ([*ev, "--decode-workers", "-2"], "got -2"),
        ([*ev, "--preprocess", "quick"], "'quick'"),
        ([*ev, "--shards", "0"], "got 0"),
        ([*ev, "--shards", "2", "--device", "cuda:1"], "pass --device cuda"),
        ([*ev, "--shards", "2", "--device", "cuda"], "needs 2 GPUs, this machine has 0"),
        # diagnose
        ([*dg, "k-sweep", *dg_args, "--k-values", "5,x"], "'x'"),
        ([*dg, "k-sweep", *dg_args, "--trajectories", "-1"], "got -1"),
        ([*dg, "fgw-alpha", *dg_args, "--fgw-alpha", "0,1.5"], "1.5 is outside [0, 1]"),
        ([*dg, "composition", *dg_args, "--steer-alpha", "-1"], "-1 is below the minimum 0"),
        ([*dg, "alpha-sweep", *dg_args, "--query", "no-such-row"], "'no-such-row'"),
        ([*dg, "substitution", *dg_args, "--top-k", "0"], "got 0"),
        ([*dg, "geometry", "--data", shapes, "--model", "clipp", "--out", out], "'clipp'"),
        ([*dg, "substitution", "--data", shapes, "--model", "tiny-random", "--out", w["foreign"]], "thesis.tex"),
        ([*dg, "all", "--data", shapes, "--model", "tiny-random", "--out", w["foreign"]], "thesis.tex"),
    ]


def _snapshot(w) -> dict:
    cache = Path(os.environ["VGRC_CACHE"])
    return {
        "root": tree_digest(w["root"]),
        "shapes": tree_digest(w["shapes"]),
        "cache": tree_digest(cache) if cache.exists() else {},
        "cwd": sorted(os.listdir(".")),
    }


def test_the_table_is_large_and_covers_every_command(world):
    cases = _cases(world)
    assert len(cases) >= 30
    assert {str(c[0][0]) for c in cases} == {"gen-shapes", "build-vg", "build-nac", "propose-nac", "eval", "report", "diagnose", "import"}
    assert len(cases) == 78  # every case is parametrized below


@pytest.mark.parametrize("case", range(78))
def test_bad_input_one_line_nothing_touched(world, case):
    cases = _cases(world)
    args, names = cases[case]
    before = _snapshot(world)
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    line = one_error_line(result)
    assert names in line, f"{args}: the error does not name the bad value {names!r}: {line}"
    assert _snapshot(world) == before, f"{args}: files changed"
    assert not (world["root"] / "out").exists(), f"{args}: the output folder was created"


@pytest.mark.parametrize("bad", [["--model", "clipp"], ["--precision", "fp8"], ["--rerank", "x"], ["--k", "0"], ["--steer", "a:b"]])
def test_bad_options_fail_before_torch_or_open_clip_is_imported(shapes_dir, tmp_path, bad):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from vgrc.cli.main import app\n"
        f"r = CliRunner().invoke(app, ['eval', '--data', {str(shapes_dir)!r}, '--out', {str(tmp_path / 'o')!r}, *{bad!r}])\n"
        "print(r.exit_code, [m for m in ('torch', 'open_clip') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2 []", out.stdout + out.stderr
