"""`vgrc demo`: the documented offline way to try build-vg and build-nac (issue 21)."""

import json

from helpers import one_error_line, tree_digest
from typer.testing import CliRunner

from vgrc.cli.main import app

runner = CliRunner()


def test_demo_inputs_run_build_vg_and_build_nac_offline(tmp_path):
    demo = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(demo), "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in demo.iterdir()) == ["tiny-flux", "tiny-llm", "tiny-qwen", "visual_genome"]
    before = tree_digest(demo)
    assert runner.invoke(app, ["demo", "--out", str(demo), "-q"]).exit_code == 0 and tree_digest(demo) == before  # nothing rebuilt
    # the README's two commands, as written there
    vg = runner.invoke(app, ["build-vg", "--vg-dir", str(demo / "visual_genome"), "--out", str(tmp_path / "vg"), "--min-images", "9", "-q"])
    assert vg.exit_code == 0, vg.output
    assert json.loads((tmp_path / "vg" / "manifest.json").read_text())["pairs_grounded"] == 2
    nac = runner.invoke(app, ["build-nac", "--out", str(tmp_path / "nac"), "--model", str(demo / "tiny-flux"), "--judge-model", str(demo / "tiny-qwen"),
                              "--limit", "4", "--samples-per-contrast", "2", "--steps", "2", "--height", "32", "--width", "32",
                              "--min-samples", "1", "--min-confidence", "0", "-q"])
    assert nac.exit_code == 0, nac.output
    rows = (tmp_path / "nac" / "pairs" / "metadata.jsonl").read_text().splitlines()
    assert len(rows) == 8 and (tmp_path / "nac" / "manifest.json").exists()


def test_demo_refuses_a_folder_of_yours_and_finishes_an_interrupted_one(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    assert "'thesis.tex'" in one_error_line(runner.invoke(app, ["demo", "--out", str(mine)]))
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    demo = tmp_path / "demo"
    (demo / ".tiny-flux.partial-123").mkdir(parents=True)  # a killed run's half-built part
    (demo / ".tiny-flux.partial-123" / "model_index.json").write_text("{")
    assert runner.invoke(app, ["demo", "--out", str(demo), "-q"]).exit_code == 0
    assert sorted(p.name for p in demo.iterdir()) == ["tiny-flux", "tiny-llm", "tiny-qwen", "visual_genome"]
