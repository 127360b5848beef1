"""Benchmark: which distributed engine shards vgrc's work? (issue 13 §3)

The issue asks for an existing engine, "Ray (Ray Data batch inference with GPU actors and
CPU decode tasks) or accelerate / torch.distributed … choose with a measured reason". This
runs the same job with both, in the same run:

- **job**: encode ``--images`` synthetic PNG pictures with the real open_clip ``tiny-random``
  model (``ClipEncoder.encode_image_bytes``) split over ``--workers`` processes, each
  taking a contiguous half, and gather the embeddings in the launching process. Every worker
  loads the model itself, as a shard does. The gathered embeddings must equal a
  one-process run's (checked).
- **torch.distributed**: torchrun's elastic launcher (``elastic_launch``, the launcher
  ``vgrc eval --shards N`` runs) starts the workers, each joins a gloo process group (as
  vgrc's ranks do) and returns its block.
- **Ray**: ``ray.init`` on this machine (no cluster), one actor per worker (the GPU-actor
  shape of Ray Data batch inference, without Ray Data's own planning on top), blocks
  returned with ``ray.get``; ``ray.shutdown`` at the end.

Reported per engine (best of ``--repeats`` alternating runs): the wall time from nothing to gathered embeddings (start-up, model
loads and teardown included) for a small and a larger job; the peak RSS of the launching
process and all its descendants, Ray's own servers included, sampled every 20 ms; and the
install size the engine adds beyond vgrc's dependencies. Ray is not a vgrc dependency:
``pip install ray`` to run this.

Usage::

    python benchmarks/bench_engines.py            # --images 64,512 --workers 2

Last line: ``RESULT torch_distributed_s=<f> ray_s=<f> ... ray_over_torch=<f>``, for the larger job.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _encode_block(items: list) -> np.ndarray:
    import torch

    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model

    torch.set_num_threads(1)  # one core per worker: the workers share the machine's cores
    return ClipEncoder(resolve_model("tiny-random"), batch_size=64, decode_workers=0).encode_image_bytes(items)


def _block(items: list, rank: int, world: int) -> list:
    per = -(-len(items) // world)
    return items[rank * per : (rank + 1) * per]


def _torch_rank(items: list) -> np.ndarray:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    out = _encode_block(_block(items, rank, world))
    dist.barrier()
    dist.destroy_process_group()
    return out


def run_torch_distributed(items: list, workers: int) -> np.ndarray:
    import tempfile
    import uuid

    from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    with tempfile.TemporaryDirectory(prefix="bench-engines-") as logs:  # as vgrc eval --shards: no /tmp/torchelastic_* left
        config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=workers, run_id=str(uuid.uuid4()), rdzv_backend="c10d",
                              rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1, logs_specs=DefaultLogsSpecs(log_dir=logs))
        results = elastic_launch(config, _torch_rank)(items)
    return np.concatenate([results[r] for r in range(workers)])


def run_ray(items: list, workers: int) -> np.ndarray:
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    try:
        @ray.remote(num_cpus=1)
        class Encoder:
            def encode(self, items, rank, world):
                return _encode_block(_block(items, rank, world))

        actors = [Encoder.remote() for _ in range(workers)]
        ref = ray.put(items)  # once in the object store; each actor reads it there
        return np.concatenate(ray.get([a.encode.remote(ref, r, workers) for r, a in enumerate(actors)]))
    finally:
        ray.shutdown()


class PeakRSS:
    """Peak summed RSS of this process and all its descendants, sampled every 20 ms."""

    def __enter__(self):
        import psutil

        self.peak, self._stop = 0, threading.Event()
        me = psutil.Process()

        def sample():
            while not self._stop.is_set():
                total = 0
                try:
                    procs = [me, *me.children(recursive=True)]
                except psutil.Error:
                    procs = [me]
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
                time.sleep(0.02)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def site_size_mb(dist_name: str) -> float:
    """Installed size of a distribution and the dependencies it alone brings (those no
    other installed distribution requires), in MB."""
    from importlib import metadata

    def files_mb(name):
        try:
            return sum((f.size or 0) for f in (metadata.distribution(name).files or [])) / 1e6
        except metadata.PackageNotFoundError:
            return 0.0

    import re

    def requires(name):
        try:
            reqs = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            return set()
        return {re.split(r"[ ;<>=!\[~(]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs if "extra ==" not in r}

    deps = requires(dist_name)
    others = set()
    for d in metadata.distributions():
        name = (d.metadata["Name"] or "").lower().replace("_", "-")
        if name != dist_name and name not in deps:
            others |= requires(name)
    own = {d for d in deps if d not in others}
    return files_mb(dist_name) + sum(files_mb(d) for d in own)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default="64,512", help="comma-separated job sizes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="runs per engine and size, alternating; the best is kept")
    args = parser.parse_args()
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SystemExit("Ray is not installed (it is not a vgrc dependency): pip install ray, then run this again")
    from bench_encode import pictures

    rows = []
    for n in (int(x) for x in args.images.split(",")):
        items = pictures(n)[0]
        reference = _encode_block(items)
        best: dict = {}
        for _ in range(args.repeats):  # alternating, so that neither engine gets the warmer machine
            for engine, run in (("torch.distributed", run_torch_distributed), ("ray", run_ray)):
                with PeakRSS() as rss:
                    t0 = time.perf_counter()
                    got = run(items, args.workers)
                    wall = time.perf_counter() - t0
                row = {"images": n, "engine": engine, "wall_s": wall, "peak_mb": rss.peak / 1e6, "equal": bool(np.array_equal(got, reference))}
                if engine not in best or wall < best[engine]["wall_s"]:
                    best[engine] = {**row, "peak_mb": max(row["peak_mb"], best.get(engine, row)["peak_mb"]), "equal": row["equal"] and best.get(engine, row)["equal"]}
        for engine, row in best.items():
            rows.append(row)
            print(f"{n:>5} images  {engine:<18} {row['wall_s']:6.2f} s  peak RSS {row['peak_mb']:7.0f} MB  equal to one process: {row['equal']}", flush=True)
    ray_mb = site_size_mb("ray")
    print(f"install size Ray adds (ray + the dependencies only it needs): {ray_mb:.0f} MB; torch.distributed: 0 (part of torch, a dependency already)")
    last = max(r["images"] for r in rows)
    t, r = ({row["engine"]: row for row in rows if row["images"] == last}[e] for e in ("torch.distributed", "ray"))
    print(f"RESULT torch_distributed_s={t['wall_s']:.2f} ray_s={r['wall_s']:.2f} torch_distributed_peak_mb={t['peak_mb']:.0f} ray_peak_mb={r['peak_mb']:.0f} "
          f"ray_install_mb={ray_mb:.0f} ray_over_torch={r['wall_s'] / t['wall_s']:.2f} equal={all(row['equal'] for row in rows)} images={last}")


if __name__ == "__main__":
    main()
