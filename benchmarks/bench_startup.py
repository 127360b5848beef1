"""Benchmark: how long ``vgrc --help`` and ``vgrc eval --help`` take, and what a cached
``vgrc eval`` imports (issue 23: the registry builds eval's options and help panels from
every component's declaration, plug-ins included, so help must stay fast).

Each command runs ``--repeats`` times in a fresh process; the best wall time counts. The
baseline, in the same run, is a bare ``python -c "import typer"`` process: the cost
floor of any Typer CLI in this interpreter, so the figure that matters is vgrc's time
above it. The cached eval (tiny-random on a small Synthetic Shapes build, run once to
fill the cache) must import neither torch nor open_clip.

Usage::

    .venv/bin/python benchmarks/bench_startup.py            # --repeats 7

Last line: ``RESULT help_s=… eval_help_s=… typer_floor_s=… cached_eval_imports_torch=…``
(goal: both helps under 1 s on 2 cores; no torch in a cached run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VGRC = str(Path(sys.executable).with_name("vgrc"))


def best_of(cmd: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def cached_eval_imports(tmp: Path) -> list[str]:
    """Heavy modules a second, fully cached eval imports (run in-process by a child)."""
    data, cache = tmp / "shapes", tmp / "cache"
    subprocess.run([VGRC, "gen-shapes", "--out", str(data), "--limit", "40", "--size", "64", "-q"], check=True, capture_output=True)
    base = ["eval", "--data", str(data), "--model", "tiny-random", "--rerank", "fgw", "--k", "10", "--cache-dir", str(cache), "-q"]
    subprocess.run([VGRC, *base, "--out", str(tmp / "first")], check=True, capture_output=True)
    code = ("import sys, json; from typer.testing import CliRunner; from vgrc.cli.main import app; "
            f"r = CliRunner().invoke(app, {json.dumps([*base, '--out', str(tmp / 'second')])}); "
            "assert r.exit_code == 0, r.output; "
            "print(json.dumps([m for m in ('torch', 'open_clip', 'transformers') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    floor = best_of([sys.executable, "-c", "import typer"], args.repeats)
    help_s = best_of([VGRC, "--help"], args.repeats)
    eval_help_s = best_of([VGRC, "eval", "--help"], args.repeats)
    with tempfile.TemporaryDirectory(prefix="vgrc-bench-startup-") as tmp:
        heavy = cached_eval_imports(Path(tmp))
    print(f"python -c 'import typer': {floor:.3f} s (floor)")
    print(f"vgrc --help:              {help_s:.3f} s ({help_s - floor:+.3f} s above the floor)")
    print(f"vgrc eval --help:         {eval_help_s:.3f} s ({eval_help_s - floor:+.3f} s above the floor)")
    print(f"cached vgrc eval imports: {', '.join(heavy) or 'none of torch, open_clip, transformers'}")
    print(f"RESULT help_s={help_s:.3f} eval_help_s={eval_help_s:.3f} typer_floor_s={floor:.3f} cached_eval_imports_torch={'torch' in heavy}")


if __name__ == "__main__":
    main()
