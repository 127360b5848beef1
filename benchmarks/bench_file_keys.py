"""Benchmark: a cached `vgrc eval` over a gallery of large images — time and memory, against
the previous release's way of listing images (read and keep every image's bytes).

The gallery: a Synthetic Shapes build (``--images`` compositions) whose composition images
are replaced by ``--side`` × ``--side`` noise PNGs (~1 MB each, about the size of a Visual
Genome photograph), so the gallery's bytes are much larger than anything else the run holds.
tiny-random encodes it once (this fills the embedding cache and the file-key memo); then,
both on the same cache:

- **vgrc**: this checkout's cached run (keys from ``CACHE/file-keys.sqlite``; images read
  only when missing from the cache);
- **baseline**: the same command run by the commit before this change (``--baseline-rev``,
  checked out with ``git worktree`` and imported first on ``PYTHONPATH``), which reads every
  image into memory to hash it and keeps the bytes until the end.

Each is a separate process, best of ``--repeats``, with peak RSS sampled every 20 ms. Both
read the images from the page cache (the first run just wrote them), so the baseline's time
is its best case: from a cold disk it reads the gallery's whole size every run.

Usage::

    python benchmarks/bench_file_keys.py [--images 1500] [--side 600] [--repeats 2] [--baseline-rev 987ce8e]

Last line: ``RESULT file_keys_cached_seconds=<s> baseline_cached_seconds=<s> speedup=<x>
peak_rss_mb=<m> baseline_peak_rss_mb=<m> gallery_mb=<m>``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from bench_shapes import PeakTreeRSS  # benchmarks/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parent.parent


def _noise_png(job: tuple[str, int, int]) -> int:
    from PIL import Image

    path, side, seed = job
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path, format="PNG", compress_level=1)
    return os.path.getsize(path)


def build_gallery(out: Path, images: int, side: int) -> int:
    """Shapes with its composition images replaced by noise; the gallery's size in bytes."""
    from vgrc.generators.shapes.build import ShapesConfig, build_shapes

    build_shapes(out, ShapesConfig(size=64, limit=images, seed=0))
    rows = [json.loads(line) for line in (out / "compositions" / "metadata.jsonl").read_text().splitlines()]
    jobs = [(str(out / "compositions" / r["file_name"]), side, i) for i, r in enumerate(rows)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        return sum(pool.map(_noise_png, jobs, chunksize=16))


def timed(cmd: list[str], env: dict, repeats: int) -> tuple[float, float]:
    """(best wall seconds, largest peak RSS MB) of ``repeats`` runs of ``cmd``."""
    import psutil

    best, peak = float("inf"), 0.0
    for _ in range(repeats):
        with PeakTreeRSS() as mem:
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=env)
            best = min(best, time.perf_counter() - t0)
        peak = max(peak, (mem.peak - psutil.Process().memory_info().rss) / 2**20)
    return best, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--side", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline-rev", default="987ce8e", help="the commit before the file-key memo [default: %(default)s]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vgrc-bench-file-keys-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        gallery = build_gallery(tmp / "data", args.images, args.side)
        print(f"gallery: {args.images} noise PNGs of {args.side}² px, {gallery / 2**20:.0f} MB ({time.perf_counter() - t0:.0f} s to write)", flush=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(tmp / "baseline"), args.baseline_rev], check=True)
        try:
            (tmp / "pp").mkdir()
            (tmp / "pp" / "vgrc").symlink_to(tmp / "baseline")
            base = [sys.executable, "-m", "vgrc.cli.main", "eval", "--data", str(tmp / "data"), "--model", "tiny-random",
                    "--cache-dir", str(tmp / "cache"), "-q", "--overwrite"]
            here = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            old = {**here, "PYTHONPATH": str(tmp / "pp")}
            t0 = time.perf_counter()
            subprocess.run([*base, "--out", str(tmp / "warm")], check=True, env=here)  # encodes; writes the memo
            print(f"first run (encodes): {time.perf_counter() - t0:.1f} s", flush=True)
            time.sleep(2.5)  # the memo keeps only files older than 2 s when hashed: re-list them once more
            subprocess.run([*base, "--out", str(tmp / "warm")], check=True, env=here)
            new_s, new_mb = timed([*base, "--out", str(tmp / "new")], here, args.repeats)
            old_s, old_mb = timed([*base, "--out", str(tmp / "old")], old, args.repeats)
            run = json.loads((tmp / "new" / "run.json").read_text())["encode"]["images"]
            if run["encoded"] or run.get("hashed"):
                raise SystemExit(f"the timed run read images: {run}")
            if "hashed" in json.loads((tmp / "old" / "run.json").read_text())["encode"]["images"]:
                raise SystemExit("the baseline run is this checkout's code, not --baseline-rev's")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp / "baseline")], check=False)
    print(f"cached eval   vgrc {new_s:.2f} s, peak {new_mb:.0f} MB | baseline ({args.baseline_rev}) {old_s:.2f} s, peak {old_mb:.0f} MB | {old_s / new_s:.1f}x")
    print(f"RESULT file_keys_cached_seconds={new_s:.2f} baseline_cached_seconds={old_s:.2f} speedup={old_s / new_s:.1f} "
          f"peak_rss_mb={new_mb:.0f} baseline_peak_rss_mb={old_mb:.0f} gallery_mb={gallery / 2**20:.0f}")


if __name__ == "__main__":
    sys.exit(main())
