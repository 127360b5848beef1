"""Third-party components through entry points (issue 23).

The README's example reranker package is built as a wheel from the README's own
```python and ```toml blocks and unpacked into a site folder on PYTHONPATH, so
``importlib.metadata`` finds its ``vgrc.rerankers`` entry point exactly as after
``pip install``. Without any edit to vgrc it appears in ``vgrc eval --help``, runs, is
range-checked, is recorded with its package and version in ``run.json`` and shows in
``vgrc report``. A second package (tests/plugin_package) covers the other groups: a first
stage, a task, an importer and a NAC judge."""

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
VGRC = Path(sys.executable).with_name("vgrc")


def _readme_blocks() -> tuple[str, str]:
    """The plug-in module and its pyproject.toml, as the README shows them."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### A reranker of your own, as a package", 1)[1]
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    return python, toml


def _install(src: Path, site: Path, wheels: Path, stem: str) -> None:
    """``pip install`` without touching the environment: build the wheel, unpack it into
    ``site`` (what pip's installer does, bar the RECORD bookkeeping)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
                   check=True, capture_output=True)
    (wheel,) = wheels.glob(f"{stem}-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("plugin-src")
    python, toml = _readme_blocks()
    (src / "cosine_of_means.py").write_text(python)
    (src / "pyproject.toml").write_text(toml)
    site, wheels = tmp_path_factory.mktemp("plugin-site"), tmp_path_factory.mktemp("plugin-wheel")
    _install(src, site, wheels, "vgrc_cosine_of_means-0.1.0")
    _install(Path(__file__).parent / "plugin_package", site, wheels, "vgrc_test_plugins-0.2.0")
    assert (site / "vgrc_cosine_of_means-0.1.0.dist-info" / "entry_points.txt").read_text().count("cosine-of-means") == 1
    return site


def _vgrc(site: Path | None, *args, cwd=None):
    env = {**os.environ, "TERMINAL_WIDTH": "200", "NO_COLOR": "1"}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    return subprocess.run([str(VGRC), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)


def test_the_plugin_appears_in_eval_help(plugin_site):
    shown = _vgrc(plugin_site, "eval", "--help").stdout
    flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", shown).split())
    assert "cosine-of-means: cosine of the query's mean object with the candidate's mean object (a plug-in)" in flat
    assert "--stage1-weight" in flat and "weight of the stage-1 score in the final score" in flat
    assert "--stage1-weight" not in _vgrc(None, "eval", "--help").stdout  # not installed: not there


def test_the_plugin_runs_is_recorded_and_reported(plugin_site, shapes_dir, tmp_path):
    base = ["eval", "--data", shapes_dir, "--model", "tiny-random", "--k", "10", "--cache-dir", tmp_path / "c", "-q"]
    done = _vgrc(plugin_site, *base, "--rerank", "cosine-of-means", "--stage1-weight", "0.25", "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["reranker"] == {"name": "cosine-of-means", "options": {"stage1_weight": 0.25}, "package": "vgrc-cosine-of-means",
                                         "version": "0.1.0", "entry_point": "cosine_of_means:CosineOfMeans"}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["config"]["rerank"] == "cosine-of-means" and metrics["config"]["plugins"]["reranker"]["version"] == "0.1.0"
    # the final order is the plug-in's score: with the stage-1 weight at 1 it keeps stage 1's order exactly
    same = _vgrc(plugin_site, *base, "--rerank", "cosine-of-means", "--stage1-weight", "1", "--out", tmp_path / "w1")
    assert same.returncode == 0, same.stderr
    frame = pd.read_parquet(tmp_path / "w1" / "per_query.parquet")
    assert (frame.rank_final == frame.rank_stage1).all()
    moved = pd.read_parquet(tmp_path / "run" / "per_query.parquet")
    assert (moved.rank_final != moved.rank_stage1).any()  # and at 0.25 the object means move some targets
    # in the report, with its options and package
    table = _vgrc(plugin_site, "report", tmp_path / "run", "--out", tmp_path / "table.md")
    assert table.returncode == 0, table.stderr
    assert "stage1_weight=0.25 k=10 (vgrc-cosine-of-means 0.1.0)" in (tmp_path / "table.md").read_text()


def test_the_plugin_option_is_checked_and_unknown_without_the_package(plugin_site, shapes_dir, tmp_path):
    base = ["eval", "--data", shapes_dir, "--model", "tiny-random", "--cache-dir", tmp_path / "c", "-q"]
    bad = _vgrc(plugin_site, *base, "--rerank", "cosine-of-means", "--stage1-weight", "1.5", "--out", tmp_path / "bad")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --stage1-weight must be in [0, 1], got 1.5" and not (tmp_path / "bad").exists()
    inert = _vgrc(plugin_site, *base, "--stage1-weight", "0.5", "--out", tmp_path / "inert")
    assert inert.returncode == 0 and "warning: --stage1-weight 0.5 does nothing here: only --rerank cosine-of-means uses it" in inert.stderr
    missing = _vgrc(None, *base, "--rerank", "cosine-of-means", "--out", tmp_path / "none")
    assert missing.returncode == 2 and "unknown --rerank 'cosine-of-means'" in missing.stderr


def test_the_plugin_scores_are_the_cosine_of_the_object_means():
    """The README's score on a hand-made context: the mean objects' cosine, computed apart."""
    python, _ = _readme_blocks()
    namespace: dict = {}
    exec(compile(python, "cosine_of_means.py", "exec"), namespace)
    from vgrc.evaluators.rerankers.context import ObjectTable, RerankContext

    phrases = np.eye(4, dtype=np.float32)
    index = {f"p{i}": i for i in range(4)}
    q = ObjectTable.build([["p0", "p1"]], index, phrases)
    g = ObjectTable.build([["p0"], ["p2", "p3"], ["p0", "p1"]], index, phrases)
    ctx = RerankContext(q, g, np.zeros((3, 4), np.float32))
    reranker = namespace["CosineOfMeans"]()
    scores = reranker.score(ctx, np.array([[0, 1, 2]]), np.zeros((1, 3)), reranker.Options())
    assert np.allclose(scores, [[np.sqrt(0.5), 0.0, 1.0]])


def test_a_plugin_first_stage_task_importer_and_judge(plugin_site, tmp_path):
    """The other entry-point groups: ``vgrc import stems`` (options from its declaration)
    builds a dataset, ``--task retrieval-again --stage1 image-oracle`` evaluates it with
    the plug-in's own query vectors (R@1 = 1: each query is its own image), and the NAC
    judge is a --judge choice."""
    from helpers import jpeg

    for i, caption in enumerate(["red_kite", "blue_boat", "green_tree", "black_cat"]):
        jpeg(tmp_path / "photos" / f"{caption}.jpg", 60 * i)
    helped = " ".join(_vgrc(plugin_site, "import", "stems", "--help").stdout.split())
    assert "--src" in helped and "Folder of images whose file names are their captions." in helped
    done = _vgrc(plugin_site, "import", "stems", "--src", tmp_path / "photos", "--out", tmp_path / "data")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "data" / "images" / "metadata.jsonl").read_text().splitlines()]
    assert sorted(r["caption"] for r in rows) == ["black cat", "blue boat", "green tree", "red kite"]
    bad = _vgrc(plugin_site, "import", "stems", "--src", tmp_path / "nowhere", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "--src" in bad.stderr and not (tmp_path / "x").exists()
    run = _vgrc(plugin_site, "eval", "--data", tmp_path / "data", "--model", "tiny-random", "--task", "retrieval-again", "--stage1", "image-oracle",
                "--cache-dir", tmp_path / "c", "--out", tmp_path / "run", "-q")
    assert run.returncode == 0, run.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["t2i_R@1"] == 1.0 and metrics["n_queries"] == 4
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert recorded["stage1"]["package"] == recorded["task"]["package"] == "vgrc-test-plugins"
    assert "always-yes: answers yes to every question" in " ".join(_vgrc(plugin_site, "build-nac", "--help").stdout.split())
