"""Rendering Synthetic Shapes: every primitive rasterised once per slot by cairosvg, then
each composition drawn from those tiles in worker processes that die with their parent
(Ctrl-C is the parent's to handle; half-written images are temporaries, removed next run)."""

from __future__ import annotations

import contextlib
import io
import math
import os
import signal
import threading
from collections.abc import Callable, Sequence

from vgrc.evaluators.dataset import atomic_write_bytes
from vgrc.generators._util.png import encode_rgb_png
from vgrc.generators.shapes.svg import Primitive, Slot, canvas_svg, composition_slots

ProgressFn = Callable[[int, int], None]

__all__ = ["render_svg", "render_slot_tiles", "run_jobs"]


@contextlib.contextmanager
def _sigint_deferred():
    """Hold a SIGINT that arrives during the block and deliver it as KeyboardInterrupt
    right after, in Python, so a C library never sees it half-way. No-op off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def render_svg(svg: str):
    """Rasterise an SVG document with cairosvg; return an RGB ``uint8`` array (H, W, 3)."""
    import cairosvg
    import numpy as np
    from PIL import Image

    with _sigint_deferred():  # Ctrl-C inside cairo's C callbacks surfaces as a cairo OSError
        png = cairosvg.svg2png(bytestring=svg.encode("utf-8"))
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB")).copy()


def _slot_window(slot: Slot, size: int) -> tuple[int, int, int, int]:
    """Pixel rows/cols a primitive in ``slot`` can touch, with one pixel of margin."""
    y0 = max(0, math.floor(slot.cy - slot.r) - 1)
    x0 = max(0, math.floor(slot.cx - slot.r) - 1)
    y1 = min(size, math.ceil(slot.cy + slot.r) + 2)
    x1 = min(size, math.ceil(slot.cx + slot.r) + 2)
    return y0, y1, x0, x1


def render_slot_tiles(primitives: Sequence[Primitive], size: int, only: Sequence[int] | None = None) -> dict:
    """Render each primitive once per composition slot; ``{(prim_index, slot): tile}``.

    A tile is the pixel window of the slot cut from a white canvas holding only that
    primitive, rasterised by cairosvg. ``only`` restricts it to some primitive indices.
    """
    slots = composition_slots(size)
    tiles = {}
    for pi in range(len(primitives)) if only is None else only:
        prim = primitives[pi]
        for si, slot in enumerate(slots):
            y0, y1, x0, x1 = _slot_window(slot, size)
            tiles[(pi, si)] = render_svg(canvas_svg(size, [(prim, slot)]))[y0:y1, x0:x1].copy()
    return tiles


_WORKER: dict = {}


def _init_pool_worker(tiles: dict, size: int, parent: int) -> None:
    """Pool workers leave SIGINT to the parent, which terminates them: a Ctrl-C to the
    process group never prints a traceback per worker, and a SIGINT to the parent alone
    never leaves workers waiting for work. They also die with the parent (SIGTERM or
    ``kill -9`` to it), instead of failing to send it results (a BrokenPipeError
    traceback each)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    _init_worker(tiles, size)


def _die_with_parent(parent: int) -> None:
    """Linux: ask the kernel to SIGKILL this process when its parent ends; elsewhere a no-op."""
    import sys

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent ended before the request took effect
        os._exit(0)


def _init_worker(tiles: dict, size: int) -> None:
    _WORKER["tiles"] = tiles
    _WORKER["size"] = size
    _WORKER["windows"] = [_slot_window(s, size) for s in composition_slots(size)]


def _compose(placed: Sequence[tuple[int, int]]):
    import numpy as np

    size = _WORKER["size"]
    canvas = np.full((size, size, 3), 255, dtype=np.uint8)
    for pi, si in placed:
        y0, y1, x0, x1 = _WORKER["windows"][si]
        np.minimum(canvas[y0:y1, x0:x1], _WORKER["tiles"][(pi, si)], out=canvas[y0:y1, x0:x1])
    return canvas


def _render_chunk(jobs: Sequence[tuple[str, tuple[tuple[int, int], ...]]]) -> int:
    for path, placed in jobs:
        atomic_write_bytes(path, encode_rgb_png(_compose(placed)))
    return len(jobs)


def run_jobs(jobs: list, tiles: dict, size: int, workers: int, on_progress: ProgressFn | None, total: int, done: int) -> None:
    if on_progress:
        on_progress(done, total)
    if not jobs:
        return
    chunk = max(8, min(256, len(jobs) // (workers * 8) or 8))
    chunks = [jobs[i : i + chunk] for i in range(0, len(jobs), chunk)]
    if workers <= 1:
        _init_worker(tiles, size)
        for c in chunks:
            done += _render_chunk(c)
            if on_progress:
                on_progress(done, total)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    pool = ctx.Pool(workers, initializer=_init_pool_worker, initargs=(tiles, size, os.getpid()))
    try:
        for n in pool.imap_unordered(_render_chunk, chunks):
            done += n
            if on_progress:
                on_progress(done, total)
        pool.close()
    except BaseException:
        # interrupted (or a worker failed): stop every worker now; half-written temporary
        # files are removed on the next run, finished images are kept
        pool.terminate()
        raise
    finally:
        pool.join()
