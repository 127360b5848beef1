"""Benchmark: how much of the annotation oracle's reranking gain survives when the
candidates' object sets are cut from the pixels (issue 25), on the model ``vgrc train``
makes.

Needs the work folder of ``benchmarks/bench_train.py`` (``W/shapes``: the full Synthetic
Shapes set; ``W/model``: the trained ``shapes-tiny`` with its held-out compositions). For
the held-out compositions (2,649) and the full set (13,244), one ``vgrc eval`` run per row:
stage 1 (cosine) alone, then Hungarian and FGW at k = 50 with the candidates' sets from
``annotations`` (the oracle), ``boxes`` (crop and mask), ``patches`` and ``grid``, and
``boxes`` with the queries' sets parsed from their captions (``--query-objects rules``).

Then the same pixel methods with ``--fuse-stage1 w`` (the reranking score plus w × the
stage-1 cosine), w chosen from {0, 0.5, 1, 2, 4, 8, 16} by R@1 on the *training*
compositions (the full set less the held-out rows, written as the dataset
``W/fit-MODEL``), never on the rows it is reported on. The sweep scores each shortlist once
through the library (``rerank_scores``, the function ``vgrc eval`` calls) and adds w × the
stage-1 scores, which is what the option computes; the chosen w is then run with
``vgrc eval --fuse-stage1 w``.

Each row's "gain kept" is ``(R@1 − stage-1 R@1) / (oracle R@1 − stage-1 R@1)`` with the
oracle of the same reranker and set: what ``vgrc report`` prints for the same runs.

Usage::

    .venv/bin/python benchmarks/regions_quality.py --work /tmp/vgrc-train-bench
    vgrc train --data W/shapes --out W/model-crops --object-crops 1     # the model that has seen objects alone
    .venv/bin/python benchmarks/regions_quality.py --work W --model-dir W/model-crops

Last line: ``RESULT boxes_gain_kept=… boxes_fused_gain_kept=… patches_… grid_…`` (Hungarian, held out).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

VGRC = str(Path(sys.executable).with_name("vgrc"))
ROWS = [  # (rerank, candidate objects, extra options, label)
    ("none", "annotations", [], "stage 1 (cosine)"),
    ("hungarian", "annotations", [], "annotations (oracle)"),
    ("hungarian", "boxes", [], "boxes, crop"),
    ("hungarian", "boxes", ["--region-pixels", "mask"], "boxes, mask"),
    ("hungarian", "boxes", ["--query-objects", "rules"], "boxes, crop, parsed queries"),
    ("hungarian", "patches", [], "patches"),
    ("hungarian", "grid", [], "grid"),
    ("fgw", "annotations", [], "annotations (oracle)"),
    ("fgw", "boxes", [], "boxes, crop"),
    ("fgw", "boxes", ["--region-pixels", "mask"], "boxes, mask"),
    ("fgw", "patches", [], "patches"),
    ("fgw", "grid", [], "grid"),
]
FUSED = [("hungarian", "boxes"), ("hungarian", "patches"), ("hungarian", "grid"), ("fgw", "boxes"), ("fgw", "patches"), ("fgw", "grid")]
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def run_row(work: Path, model_dir: Path, data: Path, set_name: str, rerank: str, candidates: str, extra: list[str]) -> tuple[dict, float]:
    tag = "-".join([set_name, rerank, candidates, *[e.lstrip("-") for e in extra]])
    out = work / "regions" / ("" if model_dir.name == "model" else model_dir.name) / tag
    seconds = 0.0
    if not (out / "metrics.json").exists():
        t0 = time.perf_counter()
        subprocess.run([VGRC, "eval", "--data", str(data), "--model", "shapes-tiny", "--pretrained", str(model_dir / "model.pt"),
                        "--rerank", rerank, "--candidate-objects", candidates, *extra, "--k", "50", "--cache-dir", str(work / "cache"),
                        "--out", str(out), "-q"], check=True)
        seconds = time.perf_counter() - t0
    return json.loads((out / "metrics.json").read_text()), seconds


def fit_dataset(work: Path, model_dir: Path) -> Path:
    """The compositions ``vgrc train`` trained on (the full set less ``heldout_ids.txt``), as a dataset."""
    from vgrc.evaluators.dataset import METADATA_NAME, finish_dataset, prepare_output, read_manifest, read_split, write_jsonl

    out = work / f"fit-{model_dir.name}"
    if (out / "manifest.json").exists():
        return out
    manifest = read_manifest(work / "shapes")
    held = set((model_dir / "heldout_ids.txt").read_text().split())
    rows = [r for r in read_split(work / "shapes", "compositions") if str(r["id"]) not in held]
    for r in rows:
        r["file_name"] = str((work / "shapes" / "compositions" / r["file_name"]).resolve())
    record = {"source": str(work / "shapes"), "less": str(model_dir / "heldout_ids.txt")}
    prepare_output(out, "fit", record, overwrite=True, files=["compositions/" + METADATA_NAME])
    (out / "compositions").mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "compositions" / METADATA_NAME, rows)
    keep = {k: manifest[k] for k in ("objects_source", "recommended", "query_categories") if k in manifest}
    finish_dataset(out, "fit", record, version="bench", command="benchmarks/regions_quality.py", seed=0, splits=["compositions"], extra=keep,
                   files=["compositions/" + METADATA_NAME])
    return out


def sweep_fusion(work: Path, model_dir: Path, data: Path, rerank: str, candidates: str) -> dict[float, float]:
    """R@1 on ``data`` for every weight of :data:`WEIGHTS`, each shortlist scored once."""
    import contextlib

    import numpy as np

    from vgrc.evaluators.metrics import first_relevant_rank
    from vgrc.evaluators.pipeline import EvalConfig
    from vgrc.evaluators.rerankers.context import ObjectTable, RerankContext, order_by_scores, rerank_scores
    from vgrc.evaluators.tasks import stages

    cfg = EvalConfig(data=str(data), model="shapes-tiny", pretrained=str(model_dir / "model.pt"), rerank=rerank, candidate_objects=candidates,
                     k=50, cache_dir=str(work / "cache"))
    cfg.check(run_folder=False)
    run = stages.prepare(cfg, lambda *a: None, lambda name: contextlib.nullcontext())
    stages.encode(run)
    stages.first_stage(run)
    stages.search(run)
    shortlist, s1 = run.topk[:, :50], run.topk_scores[:, :50]
    ctx = RerankContext(ObjectTable.build(run.q_phrases, run.phrase_index, run.phrase_emb), ObjectTable.from_regions(run.regions), run.ev_img)
    base = rerank_scores(run.reranker, ctx, shortlist, s1, cfg.options_of("reranker"))
    return {w: float(np.mean(first_relevant_rank(order_by_scores(shortlist, base + w * s1), run.ev.relevant) == 0)) for w in WEIGHTS}


def table_row(set_name: str, rerank: str, label: str, m: dict, frac, seconds: float) -> str:
    cells = [f"{m.get(f't2i_{k}', float('nan')):.3f}" for k in ("R@1", "R@5", "R@10", "nDCG@10")]
    return f"| {set_name} | {rerank} | {label} | " + " | ".join(cells) + f" | {'' if frac is None else f'{frac:+.2f}'} | {seconds:.0f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="bench_train.py's work folder (W/shapes, W/model)")
    parser.add_argument("--sets", default="heldout,full", help="heldout, full or both")
    parser.add_argument("--model-dir", type=Path, help="a vgrc train output folder [default: WORK/model]")
    args = parser.parse_args()
    work = args.work
    model_dir = args.model_dir or work / "model"
    sets = {"heldout": model_dir / "heldout", "full": work / "shapes"}
    fit = fit_dataset(work, model_dir)
    chosen = {}
    print("w chosen on the training compositions (R@1 there for each w):")
    for rerank, candidates in FUSED:
        sweep = sweep_fusion(work, model_dir, fit, rerank, candidates)
        chosen[(rerank, candidates)] = max(WEIGHTS, key=lambda w: (sweep[w], -w))
        print(f"  {rerank} {candidates}: " + ", ".join(f"{w:g}: {r:.3f}" for w, r in sweep.items()) + f" -> {chosen[(rerank, candidates)]:g}", flush=True)
    rows = ROWS + [(r, c, ["--fuse-stage1", f"{chosen[(r, c)]:g}"], f"{'boxes, crop' if c == 'boxes' else c}, fused (w = {chosen[(r, c)]:g})")
                   for r, c in FUSED]
    kept = {}
    print("| set | rerank | candidates' sets | R@1 | R@5 | R@10 | nDCG@10 | gain kept | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for set_name in args.sets.split(","):
        oracle, stage1 = {}, None
        for rerank, candidates, extra, label in rows:
            m, seconds = run_row(work, model_dir, sets[set_name], set_name, rerank, candidates, extra)
            r1 = m["t2i_R@1"]
            if rerank == "none":
                stage1 = r1
            elif candidates == "annotations":
                oracle[rerank] = r1
            gain = oracle.get(rerank, stage1) - stage1 if rerank != "none" else 0.0
            frac = (r1 - stage1) / gain if rerank != "none" and candidates != "annotations" and gain > 0 else None
            if frac is not None and set_name == "heldout" and rerank == "hungarian" and extra in ([], ["--fuse-stage1", f"{chosen.get((rerank, candidates), 0):g}"]):
                kept[candidates + ("_fused" if extra else "")] = frac
            print(table_row(set_name, rerank, label, m, frac, seconds), flush=True)
    print("RESULT " + " ".join(f"{k}_gain_kept={v:.3f}" for k, v in sorted(kept.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
