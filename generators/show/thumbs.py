"""Thumbnails for ``vgrc show``: each image shrunk once (longest side ``size``, JPEG),
named by a key of its path, size and modification time, so an interrupted or repeated
build reuses what it made. Made in a pool of processes, with progress."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

__all__ = ["thumbnail_name", "make_thumbnails"]


def thumbnail_name(path: Path, size: int) -> str:
    """``<key>.jpg``: the key changes when the image file or the size does."""
    try:
        st = os.stat(path)
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = "missing"
    return hashlib.sha1(f"{os.path.realpath(path)}|{stamp}|{size}".encode()).hexdigest()[:20] + ".jpg"


def _make(job: tuple[str, str, int]) -> str | None:
    """Write one thumbnail atomically; the error text for an image that cannot be read."""
    from PIL import Image

    src, dst, size = job
    try:
        with Image.open(src) as im:
            im.draft("RGB", (size, size))
            im = im.convert("RGB")
            im.thumbnail((size, size), Image.BILINEAR, reducing_gap=2.0)
            tmp = f"{dst}.vgrc-tmp-{os.getpid()}"
            im.save(tmp, "JPEG", quality=82)
        os.replace(tmp, dst)
        return None
    except (OSError, ValueError, SyntaxError) as exc:
        return f"{src}: {exc}"


def make_thumbnails(paths: list[Path], folder: Path, size: int, workers: int | None = None, on_progress=None) -> tuple[list[str], list[str]]:
    """Thumbnail file names (relative to ``folder``'s parent: ``thumbs/<key>.jpg``) of
    ``paths`` in order, and the images that could not be read (their thumbnail is left
    out: the page shows a blank tile)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [thumbnail_name(p, size) for p in paths]
    todo = [(str(p), str(folder / n), size) for p, n in zip(paths, names) if not (folder / n).is_file()]
    failed: list[str] = []
    done, total = len(paths) - len(todo), len(paths)
    if on_progress:
        on_progress(done, total)
    if todo:
        workers = workers or os.cpu_count() or 1
        chunk = max(1, min(256, len(todo) // (workers * 8) or 1))
        if workers == 1 or len(todo) < 64:
            results = map(_make, todo)
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=workers)
            results = pool.map(_make, todo, chunksize=chunk)
        try:
            for error in results:
                done += 1
                if error:
                    failed.append(error)
                if on_progress and (done % 200 == 0 or done == total):
                    on_progress(done, total)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return [f"{folder.name}/{n}" for n in names], failed
