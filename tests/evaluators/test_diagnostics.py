"""`vgrc diagnose`: each number against an independent computation on hand-made fixtures."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vgrc.cli.main import app
from vgrc.evaluators.diagnostics.substitution import substitution_matrix


def o(colour, shape):
    return {"noun": shape, "attributes": [colour]}


def test_substitution_matrix_from_hand_written_rankings():
    queries = [
        [o("red", "pentagon"), o("blue", "star")],
        [o("red", "pentagon"), o("green", "circle")],
        [o("black", "star"), o("red", "square")],
    ]
    retrieved = [
        # top-1 swaps pentagon for hexagon (colour kept); top-2 is relevant (never counted)
        [[o("red", "hexagon"), o("blue", "star")], [o("red", "pentagon"), o("blue", "star")]],
        # colour AND shape change: not a substitution with colour held fixed; then pentagon→hexagon
        [[o("blue", "hexagon"), o("green", "circle")], [o("red", "hexagon"), o("green", "circle")]],
        # star → triangle (top-1), and two objects changed (top-2): not counted
        [[o("black", "triangle"), o("red", "square")], [o("black", "triangle"), o("red", "circle")]],
    ]
    relevant = [[False, True], [False, False], [False, False]]
    nouns, counts, rates = substitution_matrix(queries, retrieved, relevant, k=1)
    i = {n: k for k, n in enumerate(nouns)}
    assert counts[i["pentagon"], i["hexagon"]] == 1 and counts[i["star"], i["triangle"]] == 1 and counts.sum() == 2
    assert rates[i["pentagon"], i["hexagon"]] == pytest.approx(1 / 2)  # 2 queries contain a pentagon, k = 1
    assert rates[i["star"], i["triangle"]] == pytest.approx(1 / 2)
    _, counts2, rates2 = substitution_matrix(queries, retrieved, relevant, k=2)
    assert counts2[i["pentagon"], i["hexagon"]] == 2 and rates2[i["pentagon"], i["hexagon"]] == pytest.approx(2 / 4)
    assert counts2.sum() == 3


def test_diagnose_substitution_cli_writes_every_output(shapes_dir, tmp_path):
    out = tmp_path / "diag"
    args = ["diagnose", "substitution", "--data", str(shapes_dir), "--model", "tiny-random", "--top-k", "3", "--out", str(out), "--cache-dir", str(tmp_path / "c"), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("substitution_counts.csv", "substitution_rates.csv", "substitution.md", "substitution.png", "run.json"):
        assert (out / name).stat().st_size > 0
    counts = np.loadtxt(out / "substitution_counts.csv", delimiter=",", skiprows=1, usecols=range(1, 7))
    run = json.loads((out / "run.json").read_text())
    assert run["format"] == "vgrc-run/1" and run["summary"]["substitutions"] == int(counts.sum())
    assert (out / "substitution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = CliRunner().invoke(app, args)  # an existing output is never replaced silently
    assert again.exit_code == 2 and "pass --overwrite" in again.stderr
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0
