"""Sharding an evaluation across processes, GPUs and machines on torch.distributed
(issue 13 §3).

Why torch.distributed (``vgrc eval --shards N`` runs torchrun's elastic launcher in its own
process, as ``torchrun --standalone`` would; across machines users start ``torchrun``): it ships
with torch, which vgrc already needs; its launcher runs one process per GPU on one machine
(``--standalone``) or across machines (``--nnodes`` + a rendezvous endpoint) with no
cluster service, and its gloo backend carries vgrc's few, small messages (barriers and
Q × k score blocks) on CPU and GPU hosts alike. Ray Data would add a second runtime and
its own cluster for the same two operations (a partition of the work, one gather); it is
not installed here. The launcher's cost is measured in BENCHMARKS.md; the default stays one
process, no launcher.

What is sharded, and why the result is the same as one process:

- **Encoding**: the items missing from the embedding cache (listed by every rank before any
  rank writes: a barrier) are cut into the same chunks (and so the same batches) as a single
  process would encode; chunk c is encoded by rank
  c mod world and written to the shared cache (content-addressed, one atomic file per
  chunk, so writers never collide and an interrupted rank resumes from its finished
  chunks). After a barrier every rank reads the whole cache. Same batches, same floats.
- **Stage 2** (reranking): each rank scores a contiguous block of queries; the blocks are
  gathered in rank order. Every (query, candidate) problem is solved independently of the
  others, so the scores are those of one process.
- **Judging** (``--relevance vlm``): the questions one process would ask (listed before any
  rank answers: a barrier), in the same batches; rank r asks every world-th batch and appends to its own store file
  (``BASE.rank-r.jsonl``); after a barrier every rank reads all of them.
- Every task shards: ``--task steering`` shares the encoding (its stage is one cosine
  search), ``--task itm`` the encoding and the reranking (by block of captions).
- Rank 0 alone writes the run folder. Every rank ends with :func:`finish` (a barrier, then
  the process group torn down), because a process that exits with gloo's group alive can
  abort at interpreter shutdown.

Stage 1 is not sharded: every rank searches every query. That is cheap next to encoding and
reranking, and it keeps every rank's process in the same state. Mind that state: numba's
OpenMP threading layer shares torch's libgomp, and its first parallel kernel raises the
process's OpenMP threads (a rank launched with ``OMP_NUM_THREADS=1`` then runs torch on 2
threads on this 2-core machine). CPU matrix products can round differently with another
thread count, so a rank that skipped stage 1 judged with other floats than one process
(measured while trying to shard stage 1 by query chunk: a VLM grade off in the 8th digit).
"""

from __future__ import annotations

import os
import numpy as np

__all__ = ["world", "barrier", "gather_rows", "is_main", "rank_device", "block", "check_shards", "finish"]


def world() -> tuple[int, int]:
    """``(rank, world size)`` from the launcher's environment; ``(0, 1)`` without one."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    return world()[0] == 0


def rank_device(device: str) -> str:
    """``cuda`` becomes this process's GPU (``LOCAL_RANK``) when sharded."""
    if device == "cuda" and world()[1] > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return device


def check_shards(shards: int, device: str) -> None:
    """Refuse a shard count the machine cannot run, before anything is launched: fewer
    than 1, or (``--device cuda``) more processes than GPUs, or one fixed GPU for all."""
    from vgrc.evaluators.errors import InvalidInputError

    if shards < 1:
        raise InvalidInputError(f"--shards must be ≥ 1, got {shards}")
    if shards == 1 or not str(device).startswith("cuda"):
        return
    if device != "cuda":
        raise InvalidInputError(f"--shards {shards} --device {device}: each shard takes its own GPU (rank r uses cuda:r); pass --device cuda")
    import torch

    found = torch.cuda.device_count()
    if found < shards:
        raise InvalidInputError(f"--shards {shards} --device cuda needs {shards} GPUs, this machine has {found}; pass --shards {max(1, found)} or --device cpu")


def _group():
    import torch.distributed as dist

    if not dist.is_initialized():
        # gloo even on GPUs: what travels is a barrier and small numpy blocks (Q × k scores)
        dist.init_process_group(backend=os.environ.get("VGRC_DIST_BACKEND", "gloo"))
    return dist


def barrier() -> None:
    if world()[1] > 1:
        _group().barrier()


def block(n: int) -> slice:
    """This rank's contiguous block of ``n`` rows (rank order covers 0..n)."""
    rank, size = world()
    bounds = np.linspace(0, n, size + 1).round().astype(int)
    return slice(int(bounds[rank]), int(bounds[rank + 1]))


def gather_rows(local: np.ndarray) -> np.ndarray:
    """Every rank's block, concatenated in rank order (every rank gets the whole)."""
    if world()[1] == 1:
        return local
    dist = _group()
    parts: list = [None] * world()[1]
    dist.all_gather_object(parts, np.ascontiguousarray(local))
    return np.concatenate(parts, axis=0)


def finish() -> None:
    """End this rank's share of the run: wait for every rank, then tear down the process
    group. A process that exits with a gloo group alive can abort in the interpreter's
    shutdown (SIGABRT, "terminate called without an active exception": gloo's threads
    still hold tensors; pytorch/pytorch#190489), which the launcher reports as a failed
    shard. Nothing to do without a launcher or when no collective ran."""
    import sys

    if world()[1] == 1 or "torch.distributed" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
