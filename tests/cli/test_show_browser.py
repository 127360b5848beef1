"""``vgrc show``'s page in a real browser (headless Chromium through Selenium): the query
count, the "degraded" filter against per_query.parquet, and a detail view's transport
plans against the solver's. Skipped where no browser is installed, except in CI, which
installs one (.ci/run)."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import chromium, missing, page_errors, wait_ready
from typer.testing import CliRunner

from vgrc.cli.main import app
from vgrc.evaluators.pipeline import EvalConfig, run_eval
from vgrc.evaluators.solvers import fgw_solve

why = missing()
if why and os.environ.get("CI") != "true":
    pytest.skip(f"no browser to drive: {why}", allow_module_level=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory, shapes_dir):
    root = tmp_path_factory.mktemp("show-browser")
    runs = {}
    for name, kw in {"fgw": dict(rerank="fgw", save_plans=5), "min": dict(rerank="min"),
                     "boxes": dict(rerank="fgw", candidate_objects="boxes", save_plans=3)}.items():
        run_eval(EvalConfig(data=str(shapes_dir), out=str(root / name), model="tiny-random", k=20, cache_dir=str(root / "cache"), **kw))
        runs[name] = root / name
    result = CliRunner().invoke(app, ["show", str(runs["fgw"]), str(runs["min"]), "--out", str(root / "site"), "--page-size", "1000", "-q"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["show", str(runs["boxes"]), "--out", str(root / "regions"), "--page-size", "7", "-q"])
    assert result.exit_code == 0, result.output
    return root / "site", runs


def _status(rs: int, rf: int) -> str:
    if rf == rs:
        return "unchanged"
    if rs < 0:
        return "improved"
    return "degraded" if rf < 0 or rf > rs else "improved"


def test_page_filters_and_plans(site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    if why:
        pytest.fail(f"CI must have a browser (.ci/run installs chromium and chromium-driver): {why}")
    out, runs = site
    per_query = {name: pd.read_parquet(path / "per_query.parquet") for name, path in runs.items()}
    with chromium() as driver:
        driver.get(Path(out / "index.html").resolve().as_uri())
        wait_ready(driver)
        n = len(per_query["fgw"])
        assert driver.find_element(By.ID, "shown-count").text == driver.find_element(By.ID, "total-count").text == str(n)
        assert len(driver.find_elements(By.CSS_SELECTOR, "tr.query-row")) == n

        # "degraded" by the second run's reranker: exactly the rows per_query.parquet says
        Select(driver.find_element(By.ID, "run-select")).select_by_visible_text("min")
        driver.find_element(By.CSS_SELECTOR, "button[data-filter=degraded]").click()
        pq = per_query["min"]
        expected = [q for q, rs, rf in zip(pq["query_id"], pq["rank_stage1"], pq["rank_final"]) if _status(rs, rf) == "degraded"]
        assert expected, "the fixture must have degraded queries for this check to mean anything"
        shown = [r.get_attribute("data-query-id") for r in driver.find_elements(By.CSS_SELECTOR, "tr.query-row")]
        assert shown == expected
        assert driver.find_element(By.ID, "shown-count").text == str(len(expected))
        driver.find_element(By.CSS_SELECTOR, "button[data-filter=improved]").click()
        improved = [q for q, rs, rf in zip(pq["query_id"], pq["rank_stage1"], pq["rank_final"]) if _status(rs, rf) == "improved"]
        assert [r.get_attribute("data-query-id") for r in driver.find_elements(By.CSS_SELECTOR, "tr.query-row")] == improved

        # a detail view: every drawn line is a plan entry the solver gives, with its mass
        driver.find_element(By.CSS_SELECTOR, "button[data-filter=all]").click()
        first = per_query["fgw"]["query_id"][0]
        driver.find_element(By.CSS_SELECTOR, f"tr.query-row[data-query-id='{first}'] button.detail-button").click()
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".detail-run[data-run='0'][data-loaded='1']"))
        plans = pd.read_parquet(runs["fgw"] / "plans.parquet")
        plans = plans[plans["query_id"] == first]
        blocks = driver.find_elements(By.CSS_SELECTOR, ".detail-run[data-run='0'] .plan")
        assert len(blocks) == len(plans) >= 10
        for block in blocks:
            row = plans[plans["gallery_id"] == block.get_attribute("data-gallery-id")].iloc[0]
            nn, m = row.n, row.m
            solved = fgw_solve(np.asarray(row.M).reshape(1, nn, m), np.asarray(row.C1).reshape(1, nn, nn), np.asarray(row.C2).reshape(1, m, m),
                               np.asarray(row.p)[None], np.asarray(row.q)[None], alpha=0.5).plan[0]
            drawn = np.zeros((nn, m))
            for line in block.find_elements(By.CSS_SELECTOR, "line.plan-edge"):
                drawn[int(line.get_attribute("data-i")), int(line.get_attribute("data-j"))] = float(line.get_attribute("data-mass"))
            np.testing.assert_allclose(drawn, np.where(solved > 1e-9, solved, 0.0), atol=1e-12)
            cells = [float(td.get_attribute("data-mass")) for td in block.find_elements(By.CSS_SELECTOR, "table.plan-table td")]
            np.testing.assert_allclose(np.reshape(cells, (nn, m)), solved, atol=1e-12)
        # the second run has no plans: its section says how to save them
        assert "--save-plans" not in driver.find_element(By.CSS_SELECTOR, ".detail-run[data-run='1']").text
        assert "no transport plan" in driver.find_element(By.CSS_SELECTOR, ".detail-run[data-run='1']").text
        assert page_errors(driver) == []


def test_pages_and_region_boxes(site):
    """Pages of --page-size rows cover every query once; a region plan's detail view draws
    the candidate's regions on its picture, one numbered box per plan column."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if why:
        pytest.fail(f"CI must have a browser (.ci/run installs chromium and chromium-driver): {why}")
    out, runs = site
    pq = pd.read_parquet(runs["boxes"] / "per_query.parquet")
    with chromium() as driver:
        driver.get(Path(out.parent / "regions" / "index.html").resolve().as_uri())
        wait_ready(driver)
        seen = []
        while True:
            rows = driver.find_elements(By.CSS_SELECTOR, "tr.query-row")
            assert 0 < len(rows) <= 7
            seen += [r.get_attribute("data-query-id") for r in rows]
            nxt = driver.find_element(By.ID, "next")
            if not nxt.is_enabled():
                break
            nxt.click()
        assert seen == list(pq["query_id"])
        driver.find_element(By.ID, "search").send_keys(pq["query_id"][0])
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "shown-count").text == "1")
        driver.find_element(By.CSS_SELECTOR, "button.detail-button").click()
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".detail-run[data-loaded='1']"))
        plans = pd.read_parquet(runs["boxes"] / "plans.parquet")
        plans = plans[plans["query_id"] == pq["query_id"][0]]
        blocks = driver.find_elements(By.CSS_SELECTOR, ".plan")
        assert len(blocks) == len(plans)
        for block in blocks:
            row = plans[plans["gallery_id"] == block.get_attribute("data-gallery-id")].iloc[0]
            regions = block.find_elements(By.CSS_SELECTOR, ".regions .region-box")
            assert [r.text for r in regions] == [str(j + 1) for j in range(row.m)]
            picture = block.find_element(By.CSS_SELECTOR, ".regions").rect
            for region, box in zip(regions, np.reshape(row.candidate_boxes, (-1, 4))):
                r = region.rect  # drawn where the box is, as a share of the picture
                assert abs((r["x"] - picture["x"]) / picture["width"] - box[0]) < 0.02
                assert abs((r["y"] - picture["y"]) / picture["height"] - box[1]) < 0.02
                assert abs(r["width"] / picture["width"] - (box[2] - box[0])) < 0.02
        assert page_errors(driver) == []
