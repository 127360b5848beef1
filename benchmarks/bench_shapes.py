"""Benchmark: full Synthetic Shapes generation vs the naive per-image pipeline.

Baseline (named in issue 2): one process, per image ``cairosvg.svg2png`` of the full
composition SVG → ``PIL.Image.open`` → ``convert("RGB")`` → ``save`` as PNG. It is timed on
a sample of compositions spread over the whole enumeration and extrapolated to the full
set; its images are checked to have exactly the same pixels as vgrc's, so both sides do
the same work (vgrc's PNG bytes differ: it uses its own faster encoder, see
``vgrc.generators._util.png``).

vgrc: ``build_shapes`` of the full 13,244 compositions + 42 references into a fresh folder
with ``--workers`` processes. Peak memory is the largest summed RSS of the process tree
(parent + workers), sampled every 20 ms.

Usage::

    python benchmarks/bench_shapes.py [--sample 600] [--workers 2] [--size 224]

Last line: ``RESULT shapes_speedup_vs_naive=<x> full_set_seconds=<s> peak_rss_mb=<m>``.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path


def naive_image(svg: str, path: Path) -> None:
    import cairosvg
    from PIL import Image

    png = cairosvg.svg2png(bytestring=svg.encode("utf-8"))
    Image.open(io.BytesIO(png)).convert("RGB").save(path, format="PNG")


class PeakTreeRSS:
    """Samples the summed RSS of this process and its children in a background thread."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except Exception:  # a worker that just exited
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=600, help="compositions timed for the naive baseline")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--keep", type=Path, default=None, help="build into this folder and keep it")
    args = parser.parse_args()

    from vgrc.generators.shapes.build import ShapesConfig, build_shapes, composition_row, composition_svg, count_compositions, iter_compositions
    from vgrc.generators.shapes.svg import select_vocabulary

    prims = select_vocabulary()
    total = count_compositions(len(prims))
    combos = list(iter_compositions(len(prims)))
    sample = combos[:: max(1, total // args.sample)][: args.sample]
    tmp = Path(tempfile.mkdtemp(prefix="bench-shapes-"))
    try:
        # ---- naive baseline on the sample
        naive_dir = tmp / "naive"
        naive_dir.mkdir()
        svgs = [(composition_svg([prims[i] for i in c], args.size, 0), composition_row([prims[i] for i in c], args.size, 0)) for c in sample]
        naive_image(svgs[0][0], naive_dir / "warmup.png")
        t0 = time.perf_counter()
        for svg, row in svgs:
            naive_image(svg, naive_dir / Path(row["file_name"]).name)
        naive_per_image = (time.perf_counter() - t0) / len(svgs)
        naive_full = naive_per_image * (total + len(prims))

        # ---- vgrc, full set
        out = args.keep or tmp / "vgrc"
        if out.exists():
            shutil.rmtree(out)
        with PeakTreeRSS() as mem:
            t0 = time.perf_counter()
            result = build_shapes(out, ShapesConfig(size=args.size, seed=0), workers=args.workers, command="bench_shapes.py")
            full_seconds = time.perf_counter() - t0
        n_images = sum(result.counts.values())
        if result.counts["compositions"] != total or result.rendered != n_images:
            raise SystemExit(f"unexpected build result: {result.counts}, rendered {result.rendered}")

        # ---- same work: the naive images have exactly vgrc's pixels
        import numpy as np
        from PIL import Image

        def pixels(path: Path):
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))

        same = sum(
            np.array_equal(pixels(naive_dir / Path(row["file_name"]).name), pixels(out / "compositions" / row["file_name"]))
            for _, row in svgs
        )
        naive_bytes = sum((naive_dir / Path(row["file_name"]).name).stat().st_size for _, row in svgs)
        vgrc_bytes = sum((out / "compositions" / row["file_name"]).stat().st_size for _, row in svgs)
        speedup = naive_full / full_seconds
        print(f"images                 {n_images:,} ({total:,} compositions + {len(prims)} references), {args.size} px")
        print(f"naive baseline         {naive_per_image * 1e3:.2f} ms/image on {len(svgs)} images -> {naive_full:.1f} s extrapolated")
        print(f"vgrc ({args.workers} workers)       {full_seconds:.2f} s  ({full_seconds / n_images * 1e3:.2f} ms/image)")
        print(f"identical pixels       {same}/{len(svgs)} sampled images")
        print(f"PNG size vs naive      {vgrc_bytes / naive_bytes:.3f}x")
        print(f"peak RSS (tree)        {mem.peak / 2**20:.0f} MB")
        if same != len(svgs):
            raise SystemExit("vgrc's images differ from the naive pipeline's")
        print(f"RESULT shapes_speedup_vs_naive={speedup:.2f} full_set_seconds={full_seconds:.2f} peak_rss_mb={mem.peak / 2**20:.0f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
