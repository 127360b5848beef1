"""``vgrc eval --save-plans`` and ``vgrc show`` (issue 27): the saved plans are the
reranker's own (its scores, POT's plans), the site's data is the runs' data, the output
folder rules, and every bad input as one line with nothing written. The page itself is
tested in a real browser in tests/cli/test_show_browser.py."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import one_error_line, tree_digest
from typer.testing import CliRunner

from vgrc.cli.main import app
from vgrc.evaluators.pipeline import EvalConfig, run_eval
from vgrc.evaluators.retrieval_data import load_retrieval

runner = CliRunner()
K = 20
SAVED = 6


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shapes_dir):
    """fgw and hungarian runs with saved plans, a run without, and one on other queries."""
    root = tmp_path_factory.mktemp("show-runs")
    cache = root / "cache"
    made = {}
    for name, kw in {"fgw": dict(rerank="fgw", save_plans=SAVED), "hungarian": dict(rerank="hungarian", save_plans=SAVED),
                     "min": dict(rerank="min"), "fewer": dict(rerank="fgw", limit=30),
                     "boxes": dict(rerank="hungarian", candidate_objects="boxes", save_plans=2)}.items():
        run_eval(EvalConfig(data=str(shapes_dir), out=str(root / name), model="tiny-random", k=K, cache_dir=str(cache), **kw))
        made[name] = root / name
    return made


def _js_data(path):
    text = path.read_text()
    return json.loads(text[text.index("=") + 1 : text.rstrip().rindex(";")])


def test_saved_plans_are_the_rerankers_own(runs):
    """Each saved cost is minus the pair's reranking score (the same solve); each plan is a
    coupling of the saved marginals; the saved pairs are each query's final top 10 (and
    its first relevant image below them); the object labels name M's rows and columns."""
    import ot

    per_query = pd.read_parquet(runs["fgw"] / "per_query.parquet")
    plans = pd.read_parquet(runs["fgw"] / "plans.parquet")
    assert sorted(plans["query_id"].unique()) == sorted(per_query["query_id"][:SAVED])
    for qid, group in plans.groupby("query_id"):
        row = per_query[per_query["query_id"] == qid].iloc[0]
        top = list(row["top10_final"])
        assert list(group.sort_values("rank_final")["gallery_id"][:10]) == top  # the final top 10, in order
        rank = int(row["rank_final"])
        assert group["relevant"].any() == (0 <= rank < K)
        if 10 <= rank < K:  # the first relevant image, ranked below the top 10, is saved too
            assert len(group) == 11 and group["rank_final"].max() == rank
    for p in plans.itertuples():
        n, m = p.n, p.m
        M, C1, C2, T = (np.asarray(x).reshape(shape) for x, shape in ((p.M, (n, m)), (p.C1, (n, n)), (p.C2, (m, m)), (p.plan, (n, m))))
        a, b = np.asarray(p.p), np.asarray(p.q)
        assert p.cost == pytest.approx(-p.score, abs=1e-12)  # the run's own score: --fuse-stage1 0
        np.testing.assert_allclose(T.sum(1), a, atol=1e-9)
        np.testing.assert_allclose(T.sum(0), b, atol=1e-9)
        # POT reaches the same value from the saved inputs (its plan may differ where optima tie)
        pot_cost = ot.gromov.fused_gromov_wasserstein2(M, C1, C2, a, b, alpha=0.5, loss_fun="square_loss")
        assert p.cost == pytest.approx(float(pot_cost), abs=1e-7)
        value = 0.5 * (M * T).sum() + 0.5 * (((C1[:, None, :, None] - C2[None, :, None, :]) ** 2) * T[:, :, None, None] * T[None, None, :, :]).sum()
        assert p.cost == pytest.approx(value, abs=1e-9)  # Eq. 4 evaluated on the saved plan by hand
        for i, qo in enumerate(p.query_objects):  # the labels name M's rows and columns: a phrase meets itself at cost 0
            for j, co in enumerate(p.candidate_objects):
                assert (abs(M[i, j]) < 1e-6) == (qo == co), (qo, co, M[i, j])


def test_region_plans_carry_the_regions_boxes(runs, shapes_dir):
    """With --candidate-objects boxes a plan's columns are the candidate's regions, and each
    carries its box: the annotated bbox (cut by clamp_box) as fractions of the image, in
    the regions' order."""
    from PIL import Image

    ev, _, _ = load_retrieval(shapes_dir, fit_fraction=0.0)
    rows = dict(zip(ev.ids, zip(ev.objects, ev.image_paths)))
    plans = pd.read_parquet(runs["boxes"] / "plans.parquet")
    assert len(plans) >= 20
    for p in plans.itertuples():
        objects, path = rows[p.gallery_id]
        w, h = Image.open(path).size
        expected = [[np.floor(x) / w, np.floor(y) / h, np.ceil(x + bw) / w, np.ceil(y + bh) / h] for x, y, bw, bh in (o["bbox"] for o in objects)]
        assert list(p.candidate_objects) == [f"region {j + 1}" for j in range(p.m)] and p.m == len(objects)
        np.testing.assert_allclose(np.reshape(p.candidate_boxes, (-1, 4)), np.clip(expected, 0, 1), atol=1e-5)
        T = np.asarray(p.plan).reshape(p.n, p.m)
        assert p.cost == pytest.approx(-p.score, abs=1e-12) and T.sum() == min(p.n, p.m)


def test_hungarian_plans_are_matchings(runs):
    plans = pd.read_parquet(runs["hungarian"] / "plans.parquet")
    assert len(plans) >= SAVED * 10
    for p in plans.itertuples():
        T = np.asarray(p.plan).reshape(p.n, p.m)
        assert set(np.unique(T)) <= {0.0, 1.0} and (T.sum(1) <= 1).all() and (T.sum(0) <= 1).all()
        assert T.sum() == min(p.n, p.m)
        assert p.cost == pytest.approx(-p.score, abs=1e-12)


def test_site_holds_the_runs_data(runs, tmp_path, shapes_dir):
    out = tmp_path / "site"
    result = runner.invoke(app, ["show", str(runs["fgw"]), str(runs["min"]), "--out", str(out), "--top", "4", "-q"])
    assert result.exit_code == 0, result.output
    data = _js_data(out / "data" / "queries.js")
    images = data["images"]["ids"]
    for r, name in enumerate(("fgw", "min")):
        pq = pd.read_parquet(runs[name] / "per_query.parquet")
        assert data["queries"]["ids"] == list(pq["query_id"])
        run = data["runs"][r]
        assert run["rankFinal"] == list(pq["rank_final"]) and run["rankStage1"] == list(pq["rank_stage1"])
        assert [[images[i] for i in row] for row in run["final"]] == [list(x[:4]) for x in pq["top10_final"]]
        stage1 = data["stage1Lists"][run["stage1"]]
        assert [[images[i] for i in row] for row in stage1] == [list(x[:4]) for x in pq["top10_stage1"]]
    assert data["runs"][0]["stage1"] == data["runs"][1]["stage1"]  # the same stage 1: one list, shown once
    # each thumbnail's grade is App. H's symbolic relevance of that (query, image) pair, by the per-pair definition
    from vgrc.evaluators.metrics import symbolic_relevance

    ev, _, _ = load_retrieval(shapes_dir, fit_fraction=0.0)
    objects = dict(zip(ev.ids, ev.objects))
    asked = dict(zip(ev.ids, ev.query_objects))
    for lists, grades in ((data["runs"][0]["final"], data["runs"][0]["finalGrades"]), (data["stage1Lists"][0], data["stage1Grades"][0])):
        for q, (row, g) in enumerate(zip(lists, grades)):
            qid = data["queries"]["ids"][q]
            assert g == [round(symbolic_relevance(asked[qid], objects[images[i]]), 2) for i in row]
    assert any(0 < v < 4 for g in data["runs"][1]["finalGrades"] for v in g)  # partial matches occur: the check can tell
    assert data["runs"][0]["plansChunk"] and not data["runs"][1]["plansChunk"]
    for q, rel in zip(data["queries"]["ids"], data["queries"]["relevant"]):
        assert images[rel[0]] == q  # a shapes caption's target is its own image
    assert all((out / t).is_file() for t in data["images"]["thumbs"])
    record = json.loads((out / "site.json").read_text())
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"site.json"}
    assert record["complete"] is True and set(record["files"]) == on_disk
    html = (out / "index.html").read_text()
    assert "<h2>vgrc report</h2>" in html and "fgw_alpha=0.5" in html  # two runs: the report table


def test_rebuild_resumes_and_is_identical(runs, tmp_path):
    """An interrupted build (site.json unfinished, some thumbnails missing) finishes with
    the same data and thumbnails as an uninterrupted one; --overwrite replaces a site and
    leaves a file it never listed untouched."""
    out = tmp_path / "site"
    args = ["show", str(runs["fgw"]), "--out", str(out), "-q"]
    assert runner.invoke(app, args).exit_code == 0
    first = {k: v for k, v in tree_digest(out).items() if k != "index.html"}
    record = json.loads((out / "site.json").read_text())
    record["complete"] = False
    (out / "site.json").write_text(json.dumps(record))
    for t in sorted((out / "thumbs").iterdir())[::2]:
        t.unlink()
    (out / "data" / "queries.js").unlink()
    (out / "thumbs" / "0123.jpg.vgrc-tmp-999").write_bytes(b"half a JPEG")  # a killed build's temporary
    assert runner.invoke(app, args).exit_code == 0
    assert not list((out / "thumbs").glob("*vgrc-tmp*"))
    assert {k: v for k, v in tree_digest(out).items() if k != "index.html"} == first
    result = runner.invoke(app, args)
    assert "pass --overwrite" in one_error_line(result)
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_bad_inputs_one_line_nothing_written(runs, tmp_path, shapes_dir):
    fgw, fewer = str(runs["fgw"]), str(runs["fewer"])
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    not_a_run = tmp_path / "photos"
    not_a_run.mkdir()
    (not_a_run / "a.txt").write_text("x")
    out = tmp_path / "out"
    cases = [
        (["show", str(not_a_run), "--out", str(out)], "not a vgrc run folder"),
        (["show", str(tmp_path / "missing"), "--out", str(out)], "is not a folder"),
        (["show", str(shapes_dir), "--out", str(out)], "not a vgrc run folder"),
        (["show", fgw, fewer, "--out", str(out)], "different queries"),
        (["show", fgw, "--out", str(runs["fgw"] / "site")], "inside the run folder"),
        (["show", fgw, "--out", fgw], "inside the run folder"),
        (["show", fgw, fgw, "--out", str(out)], "given twice"),
        (["show", fgw, "--out", str(foreign)], "thesis.tex"),
        (["show", fgw, "--out", str(out), "--top", "11"], "--top must be 1–10"),
        (["show", fgw, "--out", str(out), "--page-size", "0"], "--page-size"),
        (["show", fgw, "--out", str(out), "--thumb-size", "4"], "--thumb-size"),
        (["show", fgw, "--out", str(out), "--workers", "0"], "--workers"),
    ]
    before = {name: tree_digest(path) for name, path in runs.items()}
    for args, says in cases:
        result = runner.invoke(app, args)
        line = one_error_line(result)
        assert says in line, (args, line)
        assert not out.exists(), args
        assert not (runs["fgw"] / "site").exists()
        assert tree_digest(foreign) == {"thesis.tex": tree_digest(foreign)["thesis.tex"]}
    assert {name: tree_digest(path) for name, path in runs.items()} == before


def test_save_plans_bad_inputs(shapes_dir, tmp_path):
    base = ["eval", "--data", str(shapes_dir), "--model", "tiny-random", "--out", str(tmp_path / "o")]
    assert "--save-plans must be ≥ 0" in one_error_line(runner.invoke(app, [*base, "--rerank", "fgw", "--save-plans", "-1"]))
    line = one_error_line(runner.invoke(app, [*base, "--rerank", "min", "--save-plans", "3"]))
    assert "hungarian / fgw" in line and "--rerank min" in line
    assert not (tmp_path / "o").exists()


def test_a_moved_dataset_is_one_line(runs, tmp_path, shapes_dir):
    moved = tmp_path / "runs"
    shutil.copytree(runs["min"], moved / "min")
    record = json.loads((moved / "min" / "run.json").read_text())
    record["config"]["data"]["data"] = str(tmp_path / "gone")
    (moved / "min" / "run.json").write_text(json.dumps(record))
    line = one_error_line(runner.invoke(app, ["show", str(moved / "min"), "--out", str(tmp_path / "site")]))
    assert "is gone" in line
    assert not os.path.exists(tmp_path / "site")


def test_report_csv_quotes_fields_with_commas(runs):
    """The report's CSV (which the site's report table reads) keeps one field per column
    when a settings cell holds a comma ("1,234 queries")."""
    import csv
    import io

    from vgrc.evaluators.report import report_table

    _, table_csv, _ = report_table([runs["fgw"], runs["min"]])
    rows = list(csv.reader(io.StringIO(table_csv)))
    assert all(len(r) == len(rows[0]) for r in rows)
    assert rows[1][rows[0].index("settings")].endswith("60 queries / 60 images")
    from vgrc.evaluators.report import csv_row

    assert next(csv.reader([csv_row(["a", "13,244 queries", 'say "x"'])])) == ["a", "13,244 queries", 'say "x"']


def test_image_query_runs(runs, tmp_path):
    """--task i2i runs: each row's query is its image, the target is its query_of, the
    lists are the runs'; text- and image-query runs are not shown together."""
    from helpers import picture

    from vgrc.generators.copies.build import CopiesConfig, build_copies

    (tmp_path / "photos").mkdir()
    for i in range(12):
        picture(120, 90, 300 + i).save(tmp_path / "photos" / f"p{i:02d}.png")
    build_copies(tmp_path / "copies", CopiesConfig(src=str(tmp_path / "photos"), copies=2))
    for rerank in ("none", "orb"):
        run_eval(EvalConfig(data=str(tmp_path / "copies"), task="i2i", rerank=rerank, out=str(tmp_path / rerank), model="tiny-random", k=12,
                            cache_dir=str(tmp_path / "cache")))
    out = tmp_path / "site"
    assert runner.invoke(app, ["show", str(tmp_path / "none"), str(tmp_path / "orb"), "--out", str(out), "-q"]).exit_code == 0
    data = _js_data(out / "data" / "queries.js")
    images = data["images"]["ids"]
    pq = pd.read_parquet(tmp_path / "orb" / "per_query.parquet")
    assert data["queries"]["ids"] == list(pq["query_id"]) and len(pq) == 24
    assert [images[i] for i in data["queries"]["images"]] == [f"query:{q}" for q in pq["query_id"]]
    assert [images[r[0]] for r in data["queries"]["relevant"]] == list(pq["query_of"])
    assert [[images[i] for i in row] for row in data["runs"][1]["final"]] == [list(x[:5]) for x in pq["top10_final"]]
    assert data["runs"][1]["rankFinal"] == list(pq["rank_final"]) and data["runs"][1]["finalGrades"] is None
    assert all((out / t).is_file() for t in data["images"]["thumbs"])
    assert "i2i" not in (out / "index.html").read_text().split("<table class=\"meta metrics\">")[1].split("</table>")[0]  # R@1 …, not i2i_R@1
    line = one_error_line(runner.invoke(app, ["show", str(tmp_path / "orb"), str(runs["fgw"]), "--out", str(tmp_path / "mixed")]))
    assert "different kinds of queries" in line and not (tmp_path / "mixed").exists()


def test_an_unreadable_image_leaves_a_blank_tile(shapes_dir, tmp_path):
    """An image damaged after the run: the site is still written, that tile is blank, and
    the command says which image (one note line)."""
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    run_eval(EvalConfig(data=str(data), out=str(tmp_path / "run"), model="tiny-random", k=K, cache_dir=str(tmp_path / "cache")))
    victim = pd.read_parquet(tmp_path / "run" / "per_query.parquet")["query_id"][0]
    (data / "compositions" / "images" / f"{victim}.png").write_bytes(b"not a picture")
    result = runner.invoke(app, ["show", str(tmp_path / "run"), "--out", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and f"{victim}.png" in notes[0]
    site = _js_data(tmp_path / "site" / "data" / "queries.js")
    blank = [i for i, t in zip(site["images"]["ids"], site["images"]["thumbs"]) if not t]
    assert blank == [victim]
    assert "59 thumbnails made" in result.stdout
