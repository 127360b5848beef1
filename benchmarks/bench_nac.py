"""Benchmark: the toolkit's own overhead in `vgrc build-nac` (issue 6).

On a GPU, generation is bound by the models. This script runs the full build (prompts,
generation, verification, merge) with the tiny random FLUX and Qwen2.5-VL models of
the test suite, saved to a temporary folder and loaded through ``from_pretrained``. It
measures:

- model time: the time inside ``FluxPipeline.__call__`` and the judge's batched forward
  passes (``QwenYesNoJudge.score``), measured by timing wrappers around those two
  methods;
- loading time: ``load_flux`` and the judge's ``__init__`` (model loading, model-bound);
- overhead: wall − model − loading. That is vgrc's own I/O, bookkeeping, hashing, caching
  and verification plumbing.

The tiny models make model time as small as it can be, so the fraction here is an
upper bound on the overhead of a real FLUX.1-dev run.

Last line: ``RESULT nac_overhead_fraction=<f>``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from diffusers import FluxPipeline
    from tiny_models import build_tiny_flux, build_tiny_qwen

    import vgrc.generators.nac.generate as nac
    from vgrc.evaluators.judges import verify as judges
    from vgrc.generators.nac.generate import NACConfig, build_nac

    tmp = Path(tempfile.mkdtemp(prefix="bench-nac-"))
    flux, qwen = build_tiny_flux(tmp / "flux"), build_tiny_qwen(tmp / "qwen")
    spent = {"model": 0.0, "load": 0.0}

    def timed(fn, key):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[key] += time.perf_counter() - t0

        return wrapper

    FluxPipeline.__call__ = timed(FluxPipeline.__call__, "model")
    judges.QwenYesNoJudge.score = timed(judges.QwenYesNoJudge.score, "model")
    judges.QwenYesNoJudge.__init__ = timed(judges.QwenYesNoJudge.__init__, "load")
    nac.load_flux = timed(nac.load_flux, "load")
    config = NACConfig(model=str(flux), samples_per_contrast=10, steps=args.steps, height=args.size, width=args.size, limit=args.pairs,
                       judge="qwen2.5-vl", judge_model=str(qwen), min_confidence=0.5, min_samples=5, max_sequence_length=64)
    t0 = time.perf_counter()
    result = build_nac(tmp / "out", config, command="bench_nac.py")
    wall = time.perf_counter() - t0
    overhead = wall - spent["model"] - spent["load"]
    print(f"pairs {result.pairs} ({2 * result.pairs} images at {args.size}px, {args.steps} steps), judgments {sum(1 for _ in open(tmp / 'out' / 'judgments.jsonl'))}")
    print(f"wall {wall:.2f} s = model {spent['model']:.2f} s + loading {spent['load']:.2f} s + vgrc overhead {overhead:.2f} s")
    print(f"RESULT nac_overhead_fraction={overhead / wall:.4f}")


if __name__ == "__main__":
    main()
