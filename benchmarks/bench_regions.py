"""Benchmark: the cost of cutting candidates' object sets from the pixels (issue 25).

For each ``--candidate-objects`` method (boxes, patches, grid), one ``vgrc eval --rerank
hungarian --k 50`` and one ``--rerank fgw`` run on the same Synthetic Shapes set, each
region method with a fresh cache, read from ``run.json``:

- **regions per image per second**: images / the ``encode_regions`` time (cutting,
  preprocessing, the image tower, grouping; nothing cached). Baseline in the same run:
  the whole images' encoding (``encode_images`` of the first, uncached run), in images
  per second — cutting k regions should cost about k images.
- **rerank time per query at k = 50**: the ``rerank`` time / queries. Baseline: the same
  reranker on the annotations' phrase sets (the paper's oracle path, one shared table).

Usage::

    .venv/bin/python benchmarks/bench_regions.py --work /tmp/vgrc-bench-regions            # 2,000 compositions, shapes-tiny
    .venv/bin/python benchmarks/bench_regions.py --work W --model shapes-tiny --pretrained W/model/model.pt --device cuda

Last line: ``RESULT regions_img_per_s=… rerank_ms_per_query=… images_img_per_s=… oracle_rerank_ms_per_query=…``
(boxes, Hungarian; the other methods in the table above it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

VGRC = str(Path(sys.executable).with_name("vgrc"))
METHODS = ("annotations", "boxes", "patches", "grid")


def eval_run(work: Path, data: Path, model: list[str], rerank: str, method: str, cache: Path) -> dict:
    out = work / "runs" / f"{rerank}-{method}"
    subprocess.run([VGRC, "eval", "--data", str(data), *model, "--rerank", rerank, "--candidate-objects", method, "--k", "50",
                    "--cache-dir", str(cache), "--out", str(out), "--overwrite", "-q"], check=True)
    run = json.loads((out / "run.json").read_text())
    m = json.loads((out / "metrics.json").read_text())
    return {"timings": run["timings_seconds"], "n": int(m["n_queries"]), "regions": run["diagnostics"].get("candidate_regions", {})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="a Synthetic Shapes build [default: WORK/shapes, 2,000 compositions built here]")
    parser.add_argument("--model", default="shapes-tiny")
    parser.add_argument("--pretrained")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    work = args.work
    data = args.data or work / "shapes"
    if args.data is None and not (data / "manifest.json").exists():
        subprocess.run([VGRC, "gen-shapes", "--out", str(data), "--size", "64", "--limit", "2000", "-q"], check=True)
    model = ["--model", args.model, "--device", args.device, *(["--pretrained", args.pretrained] if args.pretrained else [])]
    caches = work / "caches"
    shutil.rmtree(caches, ignore_errors=True)
    rows, result = [], {}
    for method in METHODS:
        cache = caches / method  # nothing cached: every region is cut and encoded in the timed run
        for rerank in ("hungarian", "fgw"):
            r = eval_run(work, data, model, rerank, method, cache)
            t = r["timings"]
            per_s = r["n"] / t["encode_regions"] if rerank == "hungarian" and "encode_regions" in t else None
            ms = 1000 * t["rerank"] / r["n"]
            rows.append((method, rerank, r["regions"].get("per_image_mean"), per_s, ms))
            if method == "annotations" and rerank == "hungarian":
                result["images_img_per_s"] = r["n"] / t["encode_images"]
                result["oracle_rerank_ms_per_query"] = ms
            if method == "boxes" and rerank == "hungarian":
                result["regions_img_per_s"], result["rerank_ms_per_query"] = per_s, ms
    print("| candidates' sets | rerank | regions / image | images / s (regions) | rerank ms / query (k = 50) |")
    print("|---|---|---|---|---|")
    for method, rerank, per_image, per_s, ms in rows:
        print(f"| {method} | {rerank} | {'' if per_image is None else f'{per_image:.1f}'} | {'' if per_s is None else f'{per_s:.0f}'} | {ms:.3f} |")
    print(f"whole images, uncached: {result['images_img_per_s']:.0f} images / s")
    print("RESULT " + " ".join(f"{k}={result[k]:.3f}" for k in ("regions_img_per_s", "rerank_ms_per_query", "images_img_per_s", "oracle_rerank_ms_per_query")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
