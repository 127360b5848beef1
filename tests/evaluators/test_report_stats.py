"""`vgrc report --bootstrap` and the per-category breakdown, against independent computations."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from vgrc.cli.main import app
from vgrc.evaluators.report_stats import paired_bootstrap


def test_paired_bootstrap_agrees_with_scipy_percentile_interval():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(3)
    a = (rng.random(400) < 0.3).astype(float)
    b = np.where(rng.random(400) < 0.2, 1 - a, a)  # flips 20% of the outcomes
    diff, lo, hi = paired_bootstrap(a, b, 20_000, seed=1)
    ref = bootstrap(((b - a),), np.mean, n_resamples=20_000, method="percentile", random_state=7).confidence_interval
    assert diff == pytest.approx(np.mean(b - a))
    assert lo == pytest.approx(ref.low, abs=0.006) and hi == pytest.approx(ref.high, abs=0.006)
    assert lo < diff < hi


def test_paired_bootstrap_degenerate_cases():
    a = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    assert paired_bootstrap(a, a, 500) == (0.0, 0.0, 0.0)  # identical runs: no spread
    assert paired_bootstrap(a, a + 0.25, 500) == pytest.approx((0.25, 0.25, 0.25))  # a constant shift
    # pairing matters: the same marginals unpaired would give a wide interval
    x = np.linspace(0, 1, 200)
    d, lo, hi = paired_bootstrap(x, x + 0.01, 1000)
    assert hi - lo < 1e-9


def test_report_bootstrap_and_categories_end_to_end(shapes_dir, tmp_path):
    base = ["eval", "--data", str(shapes_dir), "--model", "tiny-random", "--k", "10", "--cache-dir", str(tmp_path / "c"), "-q"]
    for name, extra in (("cos", []), ("hun", ["--rerank", "hungarian"]), ("lim", ["--limit", "20"])):
        assert CliRunner().invoke(app, [*base, *extra, "--out", str(tmp_path / name)]).exit_code == 0
    args = ["report", str(tmp_path / "cos"), str(tmp_path / "hun"), str(tmp_path / "lim"), "--out", str(tmp_path / "t.md"), "--bootstrap", "1000", "--seed", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "lim" in result.stderr and "no other run on the same queries" in result.stderr  # --limit 20: other queries
    rows = pd.read_csv(tmp_path / "t.bootstrap.csv")
    assert set(rows.run) == {"hun"} and set(rows.baseline) == {"cos"}
    cos, hun = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("cos", "hun"))
    for metric, key in (("R@1", "t2i_R@1"), ("R@10", "t2i_R@10"), ("nDCG@10", "t2i_nDCG@10"), ("CAS-noun@10", "t2i_CAS-noun@10")):
        row = rows[rows.metric == metric].iloc[0]
        assert row.difference == pytest.approx(hun[key] - cos[key]) and row.ci_low <= row.difference <= row.ci_high
    # seeded: the same command gives the same intervals
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert pd.read_csv(tmp_path / "t.bootstrap.csv").equals(rows)
    md = (tmp_path / "t.md").read_text()
    assert "## Paired bootstrap" in md and "## Per category" in md
    # per-category R@1 against a direct count from the per-query file
    frame = pd.read_parquet(tmp_path / "hun" / "per_query.parquet")
    mask = frame.categories.apply(lambda c: "star" in list(c))
    line = next(line for line in md.splitlines() if line.startswith("| star |"))
    assert f"{100 * (frame.rank_final[mask] == 0).mean():.1f} / {100 * (frame.rank_final[mask] < 10).mean():.1f} (n={mask.sum()})" in line


@pytest.mark.parametrize("value", ["-1", "50"])
def test_report_rejects_too_few_resamples(tmp_path, value):
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "t.md"), "--bootstrap", value])
    assert result.exit_code == 2 and f"--bootstrap {value}" in result.stderr and not (tmp_path / "t.md").exists()
