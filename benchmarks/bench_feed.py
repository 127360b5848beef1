"""Benchmark: does a first run feed the encoder as fast as the encoder alone goes? (issue 13 §1)

``bench_encode.py`` times ``ClipEncoder`` on image bytes already in memory. A first
``vgrc eval`` on a gallery does more before each image reaches the encoder:

1. it lists the gallery's content keys, reading and sha256-hashing every file
   (``FileKeys.keys``);
2. while encoding, it reads each missing image again, chunk by chunk, and checks it
   against its key (``EncodingSetup.encode_images``).

On ``--images`` synthetic pictures written to disk (PNG, then JPEG; written more than 2 s
before the timing, as a real gallery's files are, so none is "racy"; the page cache is
warm, as the files were just written, so cold storage would make reading weigh more), each
variant runs in its own process:

- **vgrc**: this checkout;
- **baseline**: ``--baseline-rev`` (default: the commit before reader threads and the
  stat-vouched reads), checked out with ``git worktree`` and first on ``PYTHONPATH``.
  ``--baseline-rev none`` skips it (a machine without the repository's history).

Each measures, best of ``--repeats``, with the model loaded and its workers started first:
the listing alone (files/s, empty memo); ``encode_images`` of every file into an empty
cache, listing included (images/s); and the same encoder on the same bytes already in
memory, in the same chunks (images/s). feed efficiency = the second ÷ the third.

Usage::

    python benchmarks/bench_feed.py                                    # CPU: tiny-random fp32
    python benchmarks/bench_feed.py --device cuda --model ViT-B-32 --precision bf16 --images 8000 --baseline-rev none

Last line: ``RESULT feed_efficiency_png=<f> baseline_feed_efficiency_png=<f>
first_run_speedup_png=<x> listing_speedup_png=<x> … (the same for jpeg)``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(folder: Path, args, scratch: Path) -> dict:
    """One variant, in this process: listing files/s, encode_images img/s, encoder img/s."""
    from bench_encode import _sync  # benchmarks/ is on sys.path when run as a script

    from vgrc.evaluators.encoders.setup import EncodingSetup
    from vgrc.evaluators.encoders.file_keys import FileKeys
    from vgrc.evaluators.pipeline import EvalConfig

    paths = sorted(folder.iterdir())
    items = [(str(p), p.read_bytes()) for p in paths]
    out = {"listing": 0.0, "files": 0.0, "memory": 0.0}
    encoder = None
    for r in range(args.repeats):
        t0 = time.perf_counter()
        FileKeys(scratch / f"memo-{r}").keys(paths)
        out["listing"] = max(out["listing"], len(paths) / (time.perf_counter() - t0))
        setup = EncodingSetup(EvalConfig(model=args.model, precision=args.precision, device=args.device, batch_size=args.batch_size,
                                         decode_workers=args.workers, cache_dir=str(scratch / f"cache-{r}")))
        if encoder is None:
            encoder = setup.encoder.load()
            encoder.encode_image_bytes(items[: 2 * args.batch_size])  # warm-up: workers forked, kernels ready
        setup._encoder = encoder  # the same loaded model and workers for every repeat
        _sync(args.device)
        t0 = time.perf_counter()
        emb, failed, _ = setup.encode_images(paths, lambda *a: None)
        _sync(args.device)
        out["files"] = max(out["files"], len(paths) / (time.perf_counter() - t0))
        if failed.any():
            raise SystemExit(f"{int(failed.sum())} images failed")
        chunk = args.batch_size * 16
        t0 = time.perf_counter()
        for s in range(0, len(items), chunk):
            encoder.encode_image_bytes(items[s : s + chunk])
        _sync(args.device)
        out["memory"] = max(out["memory"], len(paths) / (time.perf_counter() - t0))
    encoder.close()
    return out


def run_variant(pp: Path, folder: Path, args, scratch: Path) -> dict:
    """``measure`` in a child process that imports vgrc from ``pp``."""
    scratch.mkdir()
    cmd = [sys.executable, __file__, "--measure", str(folder), "--scratch", str(scratch), "--model", args.model, "--precision", args.precision,
           "--device", args.device, "--batch-size", str(args.batch_size), "--repeats", str(args.repeats),
           *(["--workers", str(args.workers)] if args.workers is not None else [])]
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]  # e.g. wheels unpacked on a GPU lease
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pp), str(REPO / "benchmarks"), *inherited])}
    done = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True)  # its errors go to this stderr
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("MEASURE ")][-1]
    return json.loads(line.removeprefix("MEASURE "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decode processes [default: the device's default]")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-rev", default="35a11c2", help="'none' to skip [default: %(default)s]")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        import vgrc.evaluators

        print("MEASURE " + json.dumps({**measure(args.measure, args, args.scratch), "vgrc": str(Path(vgrc.evaluators.__file__).resolve().parents[1])}))
        return

    from bench_encode import pictures

    png, jpg = pictures(args.images)
    result = []
    with tempfile.TemporaryDirectory(prefix="bench-feed-") as tmp_name:
        tmp = Path(tmp_name)
        variants = {"vgrc": REPO}
        if args.baseline_rev != "none":
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(tmp / "baseline"), args.baseline_rev], check=True)
            variants["baseline"] = tmp / "baseline"
        try:
            for name, root in variants.items():
                (tmp / "pp" / name).mkdir(parents=True)
                (tmp / "pp" / name / "vgrc").symlink_to(root)
            for fmt, pics in (("png", png), ("jpeg", jpg)):
                folder = tmp / fmt
                folder.mkdir()
                for file_name, data in pics:
                    (folder / file_name).write_bytes(data)
                time.sleep(2.5)  # older than vgrc's 2 s racy window, like any real gallery's files
                size = sum(len(d) for _, d in pics) / len(pics) / 1000
                got = {name: run_variant(tmp / "pp" / name, folder, args, tmp / f"scratch-{fmt}-{name}") for name in variants}
                for name, m in got.items():
                    if Path(m["vgrc"]) != variants[name].resolve():
                        raise SystemExit(f"the {name} run imported {m['vgrc']}, not {variants[name]}")
                    print(f"{fmt} ({len(pics)} files, {size:.0f} kB each), {name}: listing {m['listing']:,.0f} files/s; "
                          f"first run {m['files']:,.0f} img/s; encoder on bytes {m['memory']:,.0f} img/s; "
                          f"feed efficiency {m['files'] / m['memory']:.3f}", flush=True)
                m = got["vgrc"]
                result.append(f"feed_efficiency_{fmt}={m['files'] / m['memory']:.3f}")
                if "baseline" in got:
                    b = got["baseline"]
                    result += [f"baseline_feed_efficiency_{fmt}={b['files'] / b['memory']:.3f}", f"first_run_speedup_{fmt}={m['files'] / b['files']:.2f}",
                               f"listing_speedup_{fmt}={m['listing'] / b['listing']:.2f}"]
        finally:
            if "baseline" in variants:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp / "baseline")], check=False)
    print(f"RESULT {' '.join(result)} model={args.model} precision={args.precision} device={args.device} baseline={args.baseline_rev}")


if __name__ == "__main__":
    sys.exit(main())
