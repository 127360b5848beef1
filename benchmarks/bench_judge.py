"""Benchmark: vgrc's overhead around the VLM judge's model calls (issue 11).

2,000 (query, image) pairs, each with a QAS question and one attribute–noun question
(identical attribute–noun questions on the same image are asked once: 2,250 judgements),
on the tiny random Qwen2.5-VL (built offline, loaded through
``from_pretrained``), CPU, ``--judge-batch-size`` 32. Model time is the time inside the
judge's calls (processor + forward); vgrc's overhead is everything else in
``judge_pairs``: image hashing and loading, store look-ups, batching, and the durable
appends. Then the same pairs again: every answer must come from the store, with zero
model calls.

Usage::

    python benchmarks/bench_judge.py [--pairs 2000] [--batch-size 32]

Last line: ``RESULT judge_overhead_fraction=<f> cached_rerun_model_calls=0 ...``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from PIL import Image
    from tiny_models import build_tiny_qwen

    from vgrc.evaluators.judges.vlm import QwenAppGJudge
    from vgrc.evaluators.judges.relevance import judge_identity, judge_pairs

    tmp = Path(tempfile.mkdtemp(prefix="bench-judge-"))
    try:
        model = build_tiny_qwen(tmp / "tiny-qwen")
        n_q = max(1, args.pairs // 10)
        images = []
        for g in range(10):
            path = tmp / "img" / f"{g}.png"
            path.parent.mkdir(exist_ok=True)
            Image.new("RGB", (56, 56), (25 * g, 100, 200)).save(path)
            images.append(path)
        colours, nouns = ["red", "blue", "green", "black", "white"], ["car", "dog", "boat", "kite", "chair"]
        captions = [f"a {colours[q % 5]} {nouns[(q // 5) % 5]} number {q}" for q in range(n_q)]
        objects = [[{"noun": nouns[(q // 5) % 5], "attributes": [colours[q % 5]]}] for q in range(n_q)]
        pairs = [(q, g) for q in range(n_q) for g in range(10)][: args.pairs]
        judges = []

        def factory():
            judges.append(QwenAppGJudge(str(model), device="cpu", batch_size=args.batch_size))
            return judges[-1]

        judge_id = judge_identity(str(model), "logits")
        t0 = time.perf_counter()
        first = judge_pairs(pairs, captions, objects, images, judge_factory=factory, judge_id=judge_id, mode="logits",
                            store_root=tmp / "cache", batch_size=args.batch_size)
        wall = time.perf_counter() - t0
        calls_first = judges[0].calls
        # model loading is neither model time nor vgrc's per-pair overhead: measured apart
        t_load = time.perf_counter()
        QwenAppGJudge(str(model), device="cpu", batch_size=args.batch_size)
        load = time.perf_counter() - t_load
        overhead = max(0.0, first.total_seconds - first.model_seconds - load)
        fraction = overhead / first.model_seconds
        second = judge_pairs(pairs, captions, objects, images, judge_factory=factory, judge_id=judge_id, mode="logits",
                             store_root=tmp / "cache", batch_size=args.batch_size)
        cached_calls = sum(j.calls for j in judges) - calls_first
        print(f"pairs {len(pairs):,}, judgements {first.made:,} in {calls_first:,} model calls (batch {args.batch_size})")
        print(f"judge_pairs {first.total_seconds:.2f} s = model {first.model_seconds:.2f} s + model load ~{load:.2f} s + vgrc overhead {overhead:.2f} s "
              f"({100 * fraction:.2f}% of model time); wall {wall:.2f} s")
        print(f"cached re-run: {second.reused:,} reused, {second.made} made, {cached_calls} model calls, {second.total_seconds:.2f} s")
        print(f"RESULT judge_overhead_fraction={fraction:.4f} cached_rerun_model_calls={cached_calls} judged_pairs={len(pairs)} "
              f"judgements={first.made} cached_rerun_seconds={second.total_seconds:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
