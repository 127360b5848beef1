"""`vgrc eval` and `vgrc report` through the CLI: success and every bad-input path."""


from pathlib import Path

import pytest
from helpers import one_error_line
from typer.testing import CliRunner

from vgrc.cli.main import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def base(shapes_dir, tmp_path):
    return ["eval", "--data", shapes_dir, "--model", "tiny-random", "--k", "10", "--cache-dir", tmp_path / "cache"]


def test_eval_then_report(base, tmp_path):
    result = run(*base, "--rerank", "hungarian", "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "t2i_R@1=" in result.stdout and "t2i_shortlist_recall@10=" in result.stdout
    assert run(*base, "--stage1", "ridge", "--rerank", "fgw", "--fgw-alpha", "0.3", "--out", tmp_path / "b", "-q").exit_code == 0
    result = run("report", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "table.md")
    assert result.exit_code == 0, result.output
    table = (tmp_path / "table.md").read_text()
    assert "| b | shapes | tiny-random | ridge | fgw |" in table and "fgw_alpha=0.3" in table
    assert "| a | shapes | tiny-random | cosine | hungarian |" in table
    assert (tmp_path / "table.csv").exists()
    # the README's glob on a second run: the table itself is skipped with a note, and
    # replacing the earlier report needs --overwrite
    again = run("report", tmp_path / "a", tmp_path / "b", tmp_path / "table.csv", "--out", tmp_path / "table.md")
    assert again.exit_code == 2 and "pass --overwrite" in again.stderr
    again = run("report", tmp_path / "a", tmp_path / "b", tmp_path / "table.csv", tmp_path / "table.md", "--out", tmp_path / "table.md", "--overwrite")
    assert again.exit_code == 0, again.output
    assert "skipped" in again.stderr and "table.csv" in again.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "vit-huge"], "--model 'vit-huge': unknown model"),
        (["--stage1", "bm25"], "unknown --stage1 'bm25'; valid: cosine, ridge, ridge+steer, objects-avg, objects-steer-avg"),
        (["--rerank", "sinkhorn"], "unknown --rerank 'sinkhorn'; valid: none, hungarian, fgw, min, softmin, steer-min, steer-softmin"),
        (["--solver", "lp"], "unknown --solver 'lp'; valid: cg, global, pot, sinkhorn"),
        (["--fgw-alpha", "2"], "--fgw-alpha must be in [0, 1], got 2.0"),
        (["--steer", "pentagon"], "--steer applies to --stage1 ridge+steer only"),
        (["--stage1", "ridge+steer", "--steer", "pentagon"], "--steer 'pentagon': expected SOURCE:TARGET"),
        (["--stage1", "ridge", "--fit-fraction", "0"], "--stage1 ridge needs fit rows"),
        (["--template", "a photo"], "--template 'a photo' has no '{}'"),
        (["--precision", "fp8"], "unknown --precision 'fp8'; valid: fp32, fp16, bf16"),
        (["--split", "test"], "--split 'test'"),
    ],
)
def test_bad_options(base, tmp_path, extra, message):
    assert message in one_error_line(run(*base, "--out", tmp_path / "o", *extra))


def test_not_a_dataset(shapes_dir, tmp_path):
    (tmp_path / "photos").mkdir()
    line = one_error_line(run("eval", "--data", tmp_path / "photos", "--model", "tiny-random", "--out", tmp_path / "o"))
    assert "is not a finished vgrc dataset" in line
    assert not (tmp_path / "o").exists()  # a failed run leaves no empty output folder
    (tmp_path / "file").write_text("x")
    assert "cannot create --out" in one_error_line(run("eval", "--data", shapes_dir, "--out", tmp_path / "file" / "o"))


def test_offline_weights_one_line_without_touching_the_network(shapes_dir, tmp_path, monkeypatch):
    """No download attempt, so no retry loop: any socket connection fails the test."""
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the offline check tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    line = one_error_line(run("eval", "--data", shapes_dir, "--model", "clip", "--out", tmp_path / "o", "--cache-dir", tmp_path / "c"))
    assert "model 'clip'" in line and "--pretrained PATH" in line


def test_report_bad_folder(tmp_path):
    (tmp_path / "x").mkdir()
    assert "none of the 1 path(s) is a vgrc eval run folder" in one_error_line(run("report", tmp_path / "x", "--out", tmp_path / "t.md"))
    assert not (tmp_path / "t.md").exists()


@pytest.mark.slow
def test_the_design_cards_line_works_on_a_fresh_machine(tmp_path, monkeypatch):
    """`vgrc eval --model clip --rerank fgw` as written (offline: --model tiny-random): no
    --data builds Synthetic Shapes once under the cache folder; no --out names the run
    folder after the run; an existing run is never overwritten without --overwrite."""
    import json

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VGRC_CACHE", str(tmp_path / "cache"))
    line = ["eval", "--model", "tiny-random", "--rerank", "fgw", "--limit", "20", "-q"]
    result = run(*line)
    assert result.exit_code == 0, result.output
    data = tmp_path / "cache" / "datasets" / "shapes"
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["splits"]["compositions"]["rows"] == 13_244 and manifest["splits"]["primitives"]["rows"] == 42
    run_dir = tmp_path / "results" / "shapes-tiny-random-cosine-fgw"
    assert json.loads((run_dir / "metrics.json").read_text())["n_queries"] == 20
    stamp = (data / "manifest.json").stat().st_mtime_ns
    assert "already holds a vgrc run; pass --overwrite" in one_error_line(run(*line))
    assert run(*line, "--overwrite").exit_code == 0
    assert (data / "manifest.json").stat().st_mtime_ns == stamp  # built once, reused


def _fake_run(folder, dataset, model, stage1, rerank, **metrics):
    """A run folder in vgrc's format with chosen metrics (report reads metrics.json)."""
    import json

    folder.mkdir(parents=True)
    config = {"data": f"/data/{dataset}", "dataset": dataset, "model": model, "stage1": stage1, "rerank": rerank, "k": 50, "task": "retrieval"}
    (folder / "metrics.json").write_text(json.dumps({**metrics, "config": config, "notes": []}))
    return folder


def test_report_paper_puts_runs_beside_the_papers_table(tmp_path):
    a = _fake_run(tmp_path / "clip-none", "shapes", "clip", "cosine", "none", **{"t2i_R@1": 0.04, "t2i_R@5": 0.134, "t2i_nDCG@1": 0.45})
    b = _fake_run(tmp_path / "clip-fgw", "shapes", "clip", "cosine", "fgw", **{"t2i_R@1": 0.051})
    other = _fake_run(tmp_path / "urban", "urban1k", "clip", "cosine", "none", **{"t2i_R@1": 0.5})
    result = run("report", a, b, other, "--out", tmp_path / "t1.md", "--paper", "1")
    assert result.exit_code == 0, result.output
    md = (tmp_path / "t1.md").read_text()
    assert "Table 1 (§6.1): Synthetic Shapes, CLIP" in md and "inferred" in md
    row = next(line for line in md.splitlines() if line.startswith("| shapes | clip | cosine | none |"))
    # Table 1's own units: R@K in % with one decimal, nDCG with one decimal (0.450 vs 0.4)
    assert "4.0 / 3.5 (+0.5)" in row and "13.4 / 13.4 (+0.0)" in row and "0.5 / 0.4 (+0.0)" in row and "— / 21.3" in row
    assert "5.1 / 5.1 (+0.0)" in next(line for line in md.splitlines() if line.startswith("| shapes | clip | cosine | fgw |"))
    assert "| shapes | clip | ridge | none | — / 72.3" in md  # a paper row without a run
    assert "matches no row of the paper's Table 1" in result.stderr and "urban" in result.stderr
    assert "| clip-none | none | relevance: symbolic; k=50 |" in row  # matches the paper's settings; its notes beside it
    csv = (tmp_path / "t1.csv").read_text().splitlines()
    assert csv[0].startswith("paper_table,dataset,model") and "1,shapes,clip,cosine,none,t2i_R@1,0.035,0.04," in "\n".join(csv)
    assert "--paper 11: the paper has Tables 1, 2, 3, 4, 5, 6, 7, 8, 9, 10" in one_error_line(run("report", a, "--out", tmp_path / "t9.md", "--paper", "11"))


def test_sharded_eval_equals_one_process(shapes_dir, tmp_path):
    """`--shards 2` (torch.distributed's launcher, 2 local gloo workers): the same embedding
    cache, metrics and per-query ranks as one process, byte for byte."""
    import numpy as np
    from helpers import eval_one_and_sharded

    from vgrc.evaluators.encoders.cache import EmbeddingCache

    one, two = eval_one_and_sharded(tmp_path, "--data", shapes_dir, "--model", "tiny-random", "--rerank", "fgw", "--k", "10", "--batch-size", "2")
    assert one == two
    c1, c2 = tmp_path / "cache-one", tmp_path / "cache-two"
    for kind in ("image", "text"):
        (ns,) = [p.name for p in c1.iterdir() if p.name.endswith(kind)]
        a, b = EmbeddingCache(c1, ns), EmbeddingCache(c2, ns)
        assert len(a) == len(b) > 0 and all(np.array_equal(a.get(k), b.get(k)) for k in a._load())
    # --batch-size 2: 32-item chunks, so both ranks encoded (the same chunk files as one process)
    names = [sorted(p.name for p in c.glob("*-image/shard-*.npz")) for c in (c1, c2)]
    assert names[0] == names[1] and len(names[0]) >= 2


def test_a_shards_error_is_its_one_line_not_the_launchers_traceback(shapes_dir, tmp_path):
    """A damaged image met by one shard: one `error:` line naming it, exit code 2, none of
    torch.distributed's launcher output (its traceback, its worker notices)."""
    import shutil
    import sys

    from helpers import run_in_own_tmpdir

    data = tmp_path / "shapes"
    shutil.copytree(shapes_dir, data)
    import json

    rows = [json.loads(line) for line in (data / "compositions" / "metadata.jsonl").read_text().splitlines()]
    victim = data / "compositions" / rows[-1]["file_name"]  # in the last chunk: rank 1's with --batch-size 1
    assert victim.is_file()
    victim.write_bytes(b"not a png")
    done = run_in_own_tmpdir([sys.executable, "-m", "vgrc.cli.main", "eval", "--data", str(data), "--model", "tiny-random", "--batch-size", "1",
                              "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), "-q", "--shards", "2"], tmp_path / "tmpdir")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: cannot decode image") and victim.name in lines[0], done.stderr[-2000:]
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- issue 21 §3: no silent wrong results


def test_unparsable_judge_answers_are_reported_and_leave_metrics_missing_not_zero(shapes_dir, tiny_qwen, tmp_path, monkeypatch):
    """Every answer of --judge-mode json unparsable: nDCG and CAS are missing (not 0.000),
    one warning line says how many answers failed, metrics.md says it too, and the counters
    agree (made + reused = judgements ≥ unparsable)."""
    import json

    import vgrc.evaluators.judges.vlm as vlm_judges

    monkeypatch.setattr(vlm_judges, "parse_json_answer", lambda text: None)  # the real judge runs; no answer parses
    out = tmp_path / "run"
    result = run("eval", "--data", shapes_dir, "--model", "tiny-random", "--k", "10", "--limit", "6", "--relevance", "vlm",
                 "--judge-model", tiny_qwen, "--judge-mode", "json", "--cache-dir", tmp_path / "c", "--out", out)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "judge answers could not be parsed (json mode)" in warnings[0]
    metrics = json.loads((out / "metrics.json").read_text())
    # every judge-based metric is missing, not 0; CAS-noun comes from the annotations and stays
    assert not [n for n in metrics if "nDCG" in n or "CAS-gen" in n or "CAS-noun-vlm" in n], metrics
    assert "t2i_CAS-noun@10" in metrics
    assert "t2i_R@1" in metrics and "nDCG" not in result.stdout
    info = json.loads((out / "run.json").read_text())["diagnostics"]["vlm_relevance"]
    assert info["judgements_made"] + info["judgements_reused"] == info["judgements"] == info["unparsable_answers"] > 0
    assert "could not be parsed" in (out / "metrics.md").read_text()


def test_skip_bad_names_what_it_skipped(shapes_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    victim = sorted((data / "compositions" / "images").iterdir())[4]
    victim.write_bytes(b"not a png")
    out = tmp_path / "run"
    result = run("eval", "--data", data, "--model", "tiny-random", "--skip-bad", "--cache-dir", tmp_path / "c", "--out", out, "-q")
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"warning: --skip-bad: 1 image(s) could not be read and were left out of the run (first: {victim.name})"]
    assert f"1 image(s) could not be read and were left out of the run (first: {victim.name})" in (out / "metrics.md").read_text()


def test_options_that_do_nothing_get_one_warning_line_each(base, tmp_path):
    result = run(*base, "--out", tmp_path / "o", "-q", "--fgw-alpha", "0.3", "--nprobe", "8", "--judge-model", "x/y", "--solver", "global", "--rerank", "hungarian")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "warning: --fgw-alpha 0.3 does nothing here: only --rerank fgw uses it",
        "warning: --solver global does nothing here: only --rerank fgw uses it (Hungarian solves its assignment exactly)",
        "warning: --nprobe 8 does nothing here: only --index ivf uses it",
        "warning: --judge-model x/y does nothing here: only --relevance vlm uses it",
    ]
    quiet = run(*base, "--out", tmp_path / "o2", "-q", "--rerank", "fgw", "--fgw-alpha", "0.3")  # used: no warning
    assert quiet.exit_code == 0 and quiet.stderr.strip() == ""


def test_hungarian_costs_default_to_the_datasets_recommendation(base, tmp_path):
    """Synthetic Shapes recommends surplus 1.0 (whole-scene captions): a plain Hungarian run
    uses it and says so; an explicit option wins and is named as given."""
    import json

    assert run(*base, "--rerank", "hungarian", "--out", tmp_path / "a", "-q").exit_code == 0
    config = json.loads((tmp_path / "a" / "run.json").read_text())["config"]
    hungarian = config["reranker"]["options"]
    assert (hungarian["unmatched_cost"], hungarian["surplus_cost"]) == (1.0, 1.0)
    assert config["costs_from"] == {"unmatched_cost": "the dataset's recommendation", "surplus_cost": "the dataset's recommendation"}
    md = (tmp_path / "a" / "metrics.md").read_text()
    assert "surplus candidate object 1 (the dataset's recommendation)" in md and "recommends" not in md
    assert run(*base, "--rerank", "hungarian", "--surplus-cost", "0", "--out", tmp_path / "b", "-q").exit_code == 0
    md = (tmp_path / "b" / "metrics.md").read_text()
    assert "surplus candidate object 0 (given)" in md and "this dataset recommends --unmatched-cost 1 --surplus-cost 1" in md
    ranks = [json.loads((tmp_path / r / "metrics.json").read_text())["t2i_R@1"] for r in "ab"]
    assert json.loads((tmp_path / "b" / "run.json").read_text())["config"]["reranker"]["options"]["surplus_cost"] == 0.0 and len(ranks) == 2


def test_report_paper_puts_a_steering_run_in_no_row_and_names_every_difference(tmp_path):
    """Issue 22 §1: on CLEVR-HOPE, a --task steering run (recorded with stage1 cosine and
    rerank none) no longer fills Table 3's "Baseline CLIP" row: the retrieval run does. A
    tiny-random run sits beside the CLIP row with the model named; Table 3 prints fractions
    with three decimals; the gallery size is compared with the paper's 1,000."""
    def run_folder(name, model, stage1, rerank, task="retrieval", n=1000, **metrics):
        folder = _fake_run(tmp_path / name, "clevr-hope", model, stage1, rerank, **metrics, n_queries=n, n_gallery=n)
        import json

        m = json.loads((folder / "metrics.json").read_text())
        m["config"]["task"] = task
        (folder / "metrics.json").write_text(json.dumps(m))
        return folder

    steer = run_folder("steer", "clip", "cosine", "none", task="steering", **{"t2i_R@1": 0.9})
    base = run_folder("base", "clip", "cosine", "none", n=800, **{"t2i_R@1": 0.05, "t2i_nDCG@1": 0.061})
    tiny = run_folder("tiny", "tiny-random", "cosine", "hungarian", **{"t2i_R@1": 0.7})
    result = run("report", steer, base, tiny, "--out", tmp_path / "t3.md", "--paper", "3")
    assert result.exit_code == 0, result.output
    rows = {line.split(" | ")[2] + "/" + line.split(" | ")[3]: line for line in (tmp_path / "t3.md").read_text().splitlines()
            if line.startswith("| clevr-hope |")}
    baseline = rows["cosine/none"]
    assert "| base |" in baseline and "0.050 / 0.050 (+0.000)" in baseline and "0.061 / 0.054 (+0.007)" in baseline
    assert "gallery: 800 images (paper: 1,000)" in baseline and "800 queries / 800 images" in baseline
    assert "| tiny |" in rows["cosine/hungarian"] and "model: tiny-random (paper: CLIP)" in rows["cosine/hungarian"]
    assert "steer" in result.stderr and "--task steering: the paper's Table 3 reports retrieval" in result.stderr


@pytest.mark.skipif(not (Path(__file__).resolve().parents[3] / "shared" / "reference" / "geometry-aware-clip-retrieval.txt").exists(), reason="the paper beside the checkout")
def test_the_papers_statistics_and_app_j_figures_are_its_own_words(tmp_path):
    """Tables 8-10 and App. J's prose figures, transcribed: each table cell and each quoted
    sentence is in the reference text, and report prints them (Table 3 with App. J's
    figures and the 0.521 vs 0.682 disagreement)."""
    import re

    from vgrc.evaluators.paper_tables import APP_J_FIGURES, PAPER_STATISTICS

    paper = (Path(__file__).resolve().parents[3] / "shared" / "reference" / "geometry-aware-clip-retrieval.txt").read_text(encoding="utf-8")
    flat = re.sub(r"\s+", " ", paper)
    for number in (8, 9):
        for row in PAPER_STATISTICS[number]["rows"]:
            assert "| " + " | ".join(row) + " |" in paper, row
    for row in PAPER_STATISTICS[10]["rows"]:
        for noun in row[1].split(", "):
            assert noun in paper, noun
    for _, value, sentence in APP_J_FIGURES:
        for part in sentence.split(" ... "):
            assert part in flat, part
    a = _fake_run(tmp_path / "runs" / "a", "clevr-hope", "clip", "cosine", "fgw", **{"t2i_R@10": 0.6})
    result = run("report", a, "--out", tmp_path / "t8.md", "--paper", "8")
    assert result.exit_code == 0, result.output
    assert "| Visual Genome | 108,077 | Real-world | Dense grounding |" in (tmp_path / "t8.md").read_text()
    assert run("report", a, "--out", tmp_path / "t3.md", "--paper", "3").exit_code == 0
    t3 = (tmp_path / "t3.md").read_text()
    assert "| FGW R@10 | 0.521 |" in t3 and "Table 3 gives FGW R@10 = 0.682" in t3
