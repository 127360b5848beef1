"""Benchmark: `vgrc train` on the full Synthetic Shapes set, and the paper's effects measured
on the model it makes (issue 24).

1. ``vgrc gen-shapes`` (the full set, 64 px: 13,244 compositions + 42 primitives), unless
   ``--data`` names one.
2. ``vgrc train --data DATA --model shapes-tiny`` with the default recipe (open_clip_train,
   20% of the compositions held out, 6 epochs, batch 256, lr 2e-3, wd 0.1, fp32): wall time.
3. The paper's Table 1 rows with the trained model, each one ``vgrc eval`` run, on the
   held-out compositions (``OUT/heldout``) and on the full set: cosine, ridge, ridge+steer
   (first stages), Hungarian and FGW reranking of the cosine shortlist at k = 50. The
   untrained ``shapes-tiny`` (random weights) gives the cosine row's reference.
4. The binding-swap failure rate: for every held-out composition with two objects of
   different colour and shape, the caption against the same caption with those two
   objects' colours swapped; a failure when the swapped caption scores at least as high.
5. ``vgrc diagnose substitution`` on the held-out compositions: App. E's matrix.

Usage::

    .venv/bin/python benchmarks/bench_train.py --work /tmp/vgrc-train-bench

Last line: ``RESULT train_s=… heldout_R@1=… heldout_R@1_random=… binding_failure=…
fgw_R@1_heldout=… hungarian_R@1_heldout=…``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

VGRC = str(Path(sys.executable).with_name("vgrc"))
ROWS = [("cosine", "none"), ("ridge", "none"), ("ridge+steer", "none"), ("cosine", "hungarian"), ("cosine", "fgw")]


def vgrc(*args) -> float:
    t0 = time.perf_counter()
    subprocess.run([VGRC, *map(str, args)], check=True)
    return time.perf_counter() - t0


def table_row(work: Path, data: Path, name: str, model: list[str], stage1: str, rerank: str) -> dict:
    out = work / "runs" / f"{name}-{stage1.replace('+', '-')}-{rerank}"
    if not (out / "metrics.json").exists():
        vgrc("eval", "--data", data, *model, "--stage1", stage1, "--rerank", rerank, "--k", 50, "--cache-dir", work / "cache", "--out", out, "-q")
    m = json.loads((out / "metrics.json").read_text())
    return {"set": name, "stage1": stage1, "rerank": rerank, **{k: m.get(f"t2i_{k}") for k in ("R@1", "R@5", "R@10", "nDCG@10", "CAS-noun@10")},
            "n": int(m["n_queries"])}


def binding_failure(heldout: Path, weights: Path) -> tuple[float, int]:
    """Share of held-out compositions whose colour-swapped caption scores ≥ the true one."""
    import numpy as np

    from vgrc.evaluators.dataset import read_split
    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model

    rows = read_split(heldout, "compositions")
    pairs = []
    for r in rows:
        objs = r["objects"]
        for i in range(len(objs)):
            for j in range(i + 1, len(objs)):
                a, b = objs[i], objs[j]
                if a["attributes"] != b["attributes"] and a["noun"] != b["noun"]:
                    swapped = [dict(o) for o in objs]
                    swapped[i] = {**a, "attributes": b["attributes"]}
                    swapped[j] = {**b, "attributes": a["attributes"]}
                    text = ", ".join(f"{' '.join(o['attributes'])} {o['noun']}" for o in swapped)
                    pairs.append((r["file_name"], r["caption"], text))
                    break
            else:
                continue
            break
    encoder = ClipEncoder(resolve_model("shapes-tiny", str(weights))).load()
    images = encoder.encode_image_bytes([(p, Path(p).read_bytes()) for p, _, _ in pairs])
    true = encoder.encode_texts([t for _, t, _ in pairs])
    swap = encoder.encode_texts([s for _, _, s in pairs])
    fail = (images * swap).sum(1) >= (images * true).sum(1)
    return float(np.mean(fail)), len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the dataset, the model, the runs and the cache")
    parser.add_argument("--data", type=Path, help="an existing full Synthetic Shapes build [default: WORK/shapes, built here]")
    args = parser.parse_args()
    work = args.work
    data = args.data or work / "shapes"
    if not (data / "manifest.json").exists():
        print(f"gen-shapes: {vgrc('gen-shapes', '--out', data, '--size', 64, '-q'):.0f} s", flush=True)
    model_dir = work / "model"
    train_s = None
    if not (model_dir / "model.pt").exists():
        train_s = vgrc("train", "--data", data, "--out", model_dir, "--model", "shapes-tiny")
    train_s = train_s or json.loads((model_dir / "run.json").read_text())["seconds"]
    print(f"vgrc train: {train_s:.0f} s", flush=True)
    trained = ["--model", "shapes-tiny", "--pretrained", model_dir / "model.pt"]
    rows = [table_row(work, model_dir / "heldout", "heldout", trained, s, r) for s, r in ROWS]
    rows += [table_row(work, data, "full", trained, s, r) for s, r in ROWS]
    rows.append(table_row(work, model_dir / "heldout", "heldout-untrained", ["--model", "shapes-tiny"], "cosine", "none"))
    for r in rows:
        print(f"{r['set']:18s} {r['stage1']:12s} {r['rerank']:10s} n={r['n']:6d}  " + "  ".join(
            f"{k}={r[k]:.3f}" for k in ("R@1", "R@5", "R@10", "nDCG@10", "CAS-noun@10") if r[k] is not None), flush=True)
    failure, n_pairs = binding_failure(model_dir / "heldout", model_dir / "model.pt")
    print(f"binding swap: the colour-swapped caption scores ≥ the true one on {100 * failure:.1f}% of {n_pairs:,} held-out compositions")
    sub = work / "substitution"
    if not (sub / "substitution.md").exists():
        vgrc("diagnose", "substitution", "--data", model_dir / "heldout", *trained, "--top-k", 1, "--cache-dir", work / "cache", "--out", sub, "-q")
    print((sub / "substitution.md").read_text())
    get = {(r["set"], r["stage1"], r["rerank"]): r for r in rows}
    print(f"RESULT train_s={train_s:.0f} heldout_R@1={get[('heldout', 'cosine', 'none')]['R@1']:.3f} "
          f"heldout_R@1_random={get[('heldout-untrained', 'cosine', 'none')]['R@1']:.3f} binding_failure={failure:.3f} "
          f"hungarian_R@1_heldout={get[('heldout', 'cosine', 'hungarian')]['R@1']:.3f} fgw_R@1_heldout={get[('heldout', 'cosine', 'fgw')]['R@1']:.3f}")


if __name__ == "__main__":
    main()
