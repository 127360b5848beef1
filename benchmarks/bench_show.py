"""Benchmark: ``vgrc show`` on a full Synthetic Shapes run (13,244 queries) — the site's
build time and the page's load time in headless Chromium (issue 27).

1. Unless ``--runs`` names run folders, two runs are made first (not timed): ``vgrc eval
   --rerank fgw --save-plans N`` and ``--rerank hungarian`` on ``--data`` with ``--model``
   (``--pretrained``), k = 50.
2. **Build**: ``vgrc show RUNS --out NEW_FOLDER``, the whole command timed (start-up,
   reading the runs and the dataset, every thumbnail made afresh, the page written).
3. **Load**: the page opened from disk in headless Chromium (Selenium); the time from
   navigation start until the first page of rows is drawn (``performance.now()`` when the
   page marks itself ready). Then the time one click on "degraded" takes to filter all
   queries and draw the first page, and the time a detail view takes to load and draw its
   plans.

Usage::

    .venv/bin/python benchmarks/bench_show.py --data data/shapes --model shapes-tiny --pretrained runs/shapes-tiny/model.pt
    .venv/bin/python benchmarks/bench_show.py --runs results/a results/b --screenshots docs/

Last line: ``RESULT show_build_s=… page_load_ms=… filter_ms=… detail_ms=… queries=…``
(goals: build ≤ 30 s, load ≤ 2 s).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
VGRC = str(Path(sys.executable).with_name("vgrc"))


def make_runs(args, work: Path) -> list[Path]:
    runs = []
    for rerank, extra in (("fgw", ["--save-plans", str(args.save_plans)]), ("hungarian", [])):
        out = work / f"run-{rerank}"
        cmd = [VGRC, "eval", "--data", str(args.data), "--model", args.model, "--rerank", rerank, "--k", "50", "--out", str(out), "-q", *extra]
        if args.pretrained:
            cmd += ["--pretrained", str(args.pretrained)]
        if args.cache_dir:
            cmd += ["--cache-dir", str(args.cache_dir)]
        subprocess.run(cmd, check=True)
        runs.append(out)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, help="existing run folders (else two are made from --data)")
    parser.add_argument("--data", type=Path, default=Path("data/shapes"))
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--pretrained", type=Path)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--save-plans", type=int, default=1000)
    parser.add_argument("--screenshots", type=Path, help="save show-main.png and show-detail.png here")
    parser.add_argument("--detail-query", help="the query whose detail view is photographed (default: the first improved one with plans)")
    args = parser.parse_args()
    from browser import chromium, missing, page_errors, wait_ready

    why = missing()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs = args.runs or make_runs(args, work)
        site = work / "site"
        t0 = time.perf_counter()
        subprocess.run([VGRC, "show", *map(str, runs), "--out", str(site), "-q"], check=True)
        build_s = time.perf_counter() - t0
        n_thumbs = sum(1 for _ in (site / "thumbs").iterdir())
        size_mb = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 2**20
        data_mb = (site / "data" / "queries.js").stat().st_size / 2**20
        with chromium(width=1900 if args.screenshots else 1500) as driver:
            driver.get((site / "index.html").resolve().as_uri())
            load_ms = wait_ready(driver)
            n_queries = int(driver.find_element("id", "total-count").text)
            filter_ms = driver.execute_script(
                "const t = performance.now(); document.querySelector('button[data-filter=degraded]').click();"
                "return performance.now() - t;")
            shown = driver.find_element("id", "shown-count").text
            driver.execute_script("document.querySelector('button[data-filter=all]').click();")
            if args.screenshots:
                args.screenshots.mkdir(parents=True, exist_ok=True)
                driver.execute_script("document.getElementById('controls').scrollIntoView();")
                driver.save_screenshot(str(args.screenshots / "show-main.png"))
            t1 = time.perf_counter()
            driver.execute_script("document.querySelector('button.detail-button').click();")
            from selenium.webdriver.support.ui import WebDriverWait

            WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                "return [...document.querySelectorAll('.detail-run')].every(s => s.dataset.loaded === '1' || s.querySelector('p.muted'))"))
            detail_ms = (time.perf_counter() - t1) * 1000
            if args.screenshots:  # an improved query with saved plans, for the README
                driver.execute_script("document.getElementById('detail-close').click();"
                                      "document.querySelector('button[data-filter=improved]').click();")
                if args.detail_query:
                    driver.execute_script("document.querySelector('button[data-filter=all]').click();")
                    box = driver.find_element("id", "search")
                    box.send_keys(args.detail_query)
                    WebDriverWait(driver, 10).until(lambda d: d.find_element("id", "shown-count").text == "1")
                picked = driver.execute_script(
                    "const b = [...document.querySelectorAll('button.detail-button')].find(b => Number(b.dataset.queryIndex) < arguments[0]);"
                    "if (b) { b.closest('tr').scrollIntoView(); b.click(); } return !!b;", args.save_plans if not args.detail_query else 10**9)
                if picked:
                    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                        "return [...document.querySelectorAll('.detail-run')].every(s => s.dataset.loaded === '1' || s.querySelector('p.muted'))"))
                driver.save_screenshot(str(args.screenshots / "show-detail.png"))
            errors = page_errors(driver)
        print(f"runs: {', '.join(str(r) for r in runs)}")
        print(f"build: {build_s:.2f} s for {n_queries:,} queries, {n_thumbs:,} thumbnails; site {size_mb:.1f} MB (queries.js {data_mb:.1f} MB)")
        print(f"load: first page drawn {load_ms:.0f} ms after navigation; 'degraded' filter over all queries {filter_ms:.1f} ms "
              f"({shown} rows); detail view {detail_ms:.0f} ms; script errors: {len(errors)}")
        print(f"RESULT show_build_s={build_s:.2f} page_load_ms={load_ms:.0f} filter_ms={filter_ms:.1f} detail_ms={detail_ms:.0f} queries={n_queries}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
