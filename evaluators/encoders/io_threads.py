"""Reading and hashing files in threads, in order, with nothing left running on an error.

Reading a file and hashing its bytes (sha256 of more than 2 kB) both release the GIL, so a
few threads read and hash several images at once where one thread would leave a GPU
waiting: on the 2-core development machine one thread lists (reads and hashes) about 8,000
of the benchmarks' 154 kB PNGs per second, while ViT-B-32 in bf16 encodes 21,000 per second
on an H200 (BENCHMARKS.md, "Feeding a first run").

:class:`OrderedLoader` runs a function over batches of items in a thread pool and returns
each batch's results in item order, raising the first item's exception in that order. A
batch can be submitted before the previous one is consumed (prefetching). On an error or
Ctrl-C, queued work is cancelled; only the reads already under way finish. With
``threads=0`` everything runs inline, in the caller's thread, when the results are asked
for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["OrderedLoader", "default_io_threads", "map_in_threads"]

#: most items one thread reads as one task
MAX_SLICE = 64

T = TypeVar("T")
R = TypeVar("R")


def default_io_threads() -> int:
    """Reader threads: one per core, at most 8 (enough to hide sha256 and page-cache reads;
    storage that needs more parallelism is rare for a local gallery)."""
    return max(1, min(8, os.cpu_count() or 1))


class OrderedLoader(Generic[T, R]):
    """``fn`` over batches of items, in ``threads`` threads (0: inline), results in order.

    Use as a context manager: leaving it cancels what was submitted and not started.
    """

    def __init__(self, fn: Callable[[T], R], threads: int):
        self.fn = fn
        self.threads = threads
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="vgrc-read") if threads > 0 else None

    def _run(self, items: Sequence[T]) -> list[R]:
        return [self.fn(item) for item in items]

    def submit(self, items: Sequence[T]) -> list[Future] | Sequence[T]:
        """Start reading ``items`` (with threads), or remember them (inline).

        Items go to the threads in slices of consecutive items (about four per thread,
        at most ``MAX_SLICE``): one task per item would cost more than hashing a 20 kB
        JPEG (measured: key listing 0.53× inline on 2 cores)."""
        if self.pool is None:
            return items
        step = max(1, min(MAX_SLICE, -(-len(items) // (4 * self.threads))))
        return [self.pool.submit(self._run, items[s : s + step]) for s in range(0, len(items), step)]

    def results(self, handle: list[Future] | Sequence[T]) -> list[R]:
        """The results of a submitted batch, in order; the first failing item's error is raised
        (slices are read in order, and a slice stops at its first error)."""
        if self.pool is None:
            return self._run(handle)
        return [r for f in handle for r in f.result()]

    def close(self, *, wait: bool = True) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> "OrderedLoader[T, R]":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # on success nothing is pending and the threads are joined (no thread outlives the
        # call, e.g. across a later fork of worker processes); on an error or Ctrl-C the
        # queued reads are dropped and the caller does not wait for those under way
        self.close(wait=exc_type is None)


def map_in_threads(fn: Callable[[T], R], items: Sequence[T], threads: int) -> list[R]:
    """``[fn(x) for x in items]`` in ``threads`` threads (inline for 0 or 1 item)."""
    with OrderedLoader(fn, threads if len(items) > 1 else 0) as loader:
        return loader.results(loader.submit(items))
