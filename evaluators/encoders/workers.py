"""Decoding and tokenising in worker processes, so a GPU's forward pass is never starved.

Why processes: decoding a PNG or JPEG and resizing it in PIL holds the GIL for part of the
work, so decode threads stop scaling at ~4 (issue 13 measured 1,630 img/s with 4 threads
and 1,332 with 16 on a 16-core H200 host, against 21,567 img/s of ViT-B-32's bf16
forward). Open_clip's tokenizer is pure Python (12,455 texts/s in one thread).

- :class:`DecodeWorkers` — a persistent pool of forked processes. Each decodes one image's
  bytes and runs the model's preprocessing up to ToTensor + Normalize (PIL's steps, or
  torchvision's with ``--preprocess fast``: :mod:`~vgrc.evaluators.encoders.pixels`), then writes the uint8 HWC pixels into a slot of a shared-memory ring; only
  the slot index travels back. The batch is then turned into floats exactly as
  ``preprocess`` does (same ToTensor and Normalize arithmetic), on the model's device, so
  the embeddings are bit-identical to the threaded path (tested). ``depth`` batches are in
  flight; a batch's slots are reused only after the batch has been consumed.
- :class:`TokenizeWorkers` — the same pool idea for texts: each worker tokenises a batch;
  (B, context) int arrays travel back (160 kB per 256 texts).

Workers are forked like PyTorch's DataLoader workers (they inherit the loaded transforms and
tokenizer, and never touch the GPU), ignore Ctrl-C (the parent handles it), and are shut
down when the encoder is garbage-collected or the process exits.
"""

from __future__ import annotations

import os
import signal
import weakref
from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["DecodeWorkers", "TokenizeWorkers", "default_workers"]

_W: dict = {}  # the worker process's state (set by the initialisers)


def default_workers(device: str) -> int:
    """Worker processes used when ``--decode-workers`` is not given: none on CPU (the
    forward pass needs the cores; threads already reach ≥ 0.85 of it on 2 cores), else
    one per core but one, at most 16."""
    if not str(device).startswith("cuda"):
        return 0
    return max(0, min(16, (os.cpu_count() or 1) - 1))


def _quiet_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def _init_decoder(shm_name: str, shape: tuple, inbox_name: str, inbox_size: int, pixels) -> None:
    from multiprocessing import shared_memory

    _quiet_worker()
    shm = shared_memory.SharedMemory(name=shm_name)
    inbox = shared_memory.SharedMemory(name=inbox_name)
    _W["shm"], _W["inbox_shm"] = shm, inbox  # keep the mappings alive
    _W["ring"] = np.ndarray(shape, dtype=np.uint8, buffer=shm.buf)
    _W["inbox"] = np.ndarray((inbox_size,), dtype=np.uint8, buffer=inbox.buf)
    _W["pixels"] = pixels


def _decode_into(task: tuple) -> str | None:
    """Decode one image into its slot; the error message instead, when it cannot be read.

    The image's bytes are in the shared inbox (``(offset, length)``), or in the task
    itself when they did not fit there."""
    from vgrc.evaluators.encoders.pixels import UndecodableImage

    slot, name, payload = task
    data = _W["inbox"][payload[0] : payload[0] + payload[1]] if isinstance(payload, tuple) else payload
    try:
        pixels = _W["pixels"](data.tobytes() if isinstance(data, np.ndarray) else data)
    except UndecodableImage as exc:
        return f"cannot decode image {name}: {exc}"
    ring = _W["ring"]
    if pixels.shape != ring.shape[1:]:
        return f"image {name}: preprocessing gave {pixels.shape}, expected {ring.shape[1:]}"
    ring[slot] = pixels
    return None


def _init_tokenizer(tokenizer) -> None:
    _quiet_worker()
    _W["tokenizer"] = tokenizer


def _tokenize(texts: list[str]) -> np.ndarray:
    return _W["tokenizer"](texts).numpy()


class _Pool:
    """A forked ``multiprocessing.Pool`` closed with its owner."""

    def __init__(self, workers: int, initializer, initargs):
        import multiprocessing as mp

        self.workers = workers
        self.pool = mp.get_context("fork").Pool(workers, initializer=initializer, initargs=initargs)
        self._finalizer = weakref.finalize(self, _close_pool, self.pool)

    def close(self) -> None:
        self._finalizer()


def _close_pool(pool) -> None:
    pool.terminate()
    pool.join()


class DecodeWorkers(_Pool):
    """Persistent decode processes writing preprocessed uint8 pixels into shared memory.

    Parameters
    ----------
    workers : int
        Processes (≥ 1).
    pixels : callable(bytes) -> uint8 array
        Decoding and the preprocessing's steps before ToTensor (resize, crop), run in the
        workers (:mod:`~vgrc.evaluators.encoders.pixels`).
    image_shape : (H, W, 3)
        What ``pixels`` produces.
    batch_size : int
    depth : int
        Batches in flight (the ring holds ``depth × batch_size`` slots).
    """

    #: inbox bytes per batch slot and image (an image larger than its share travels in its task)
    INBOX_PER_IMAGE = 192 * 1024

    def __init__(self, workers: int, pixels, image_shape: tuple[int, int, int], batch_size: int, depth: int = 4):
        from multiprocessing import shared_memory

        self.batch_size, self.depth = batch_size, depth
        shape = (depth * batch_size, *image_shape)
        self.shm = shared_memory.SharedMemory(create=True, size=int(np.prod(shape)))
        self.ring = np.ndarray(shape, dtype=np.uint8, buffer=self.shm.buf)
        self.region = batch_size * self.INBOX_PER_IMAGE
        self.inbox_shm = shared_memory.SharedMemory(create=True, size=depth * self.region)
        self.inbox = np.ndarray((depth * self.region,), dtype=np.uint8, buffer=self.inbox_shm.buf)
        super().__init__(workers, _init_decoder, (self.shm.name, shape, self.inbox_shm.name, depth * self.region, pixels))
        self._release = [weakref.finalize(self, _release_shm, self.shm), weakref.finalize(self, _release_shm, self.inbox_shm)]

    def close(self) -> None:
        """Stop the workers, then free the shared memory."""
        super().close()
        self.ring = self.inbox = None
        for release in self._release:
            release()

    def batches(self, items: Sequence[tuple[str, bytes]]) -> Iterator[tuple[np.ndarray, list[tuple[str, str]]]]:
        """Yield ``(pixels (b, H, W, 3) uint8, errors [(name, message)])`` per batch, in
        order. ``pixels`` is a view into the ring: use it before asking for the next batch."""
        B = self.batch_size
        starts = list(range(0, len(items), B))
        pending: deque = deque()

        def submit(n: int) -> None:
            base = (n % self.depth) * B
            batch = items[starts[n] : starts[n] + B]
            offset, end = (n % self.depth) * self.region, (n % self.depth + 1) * self.region
            tasks = []
            for j, (name, data) in enumerate(batch):
                if offset + len(data) <= end:  # the bytes go through shared memory, not a pipe
                    self.inbox[offset : offset + len(data)] = np.frombuffer(data, np.uint8)
                    tasks.append((base + j, name, (offset, len(data))))
                    offset += len(data)
                else:
                    tasks.append((base + j, name, data))
            pending.append((n, base, len(batch), self.pool.map_async(_decode_into, tasks, chunksize=max(1, len(tasks) // (4 * self.workers)))))

        for n in range(min(self.depth, len(starts))):
            submit(n)
        try:
            while pending:
                n, base, size, result = pending.popleft()
                messages = result.get()
                errors = [(items[starts[n] + j][0], m) for j, m in enumerate(messages) if m is not None]
                yield self.ring[base : base + size], errors
                if n + self.depth < len(starts):  # this batch's slots are free again
                    submit(n + self.depth)
        finally:  # stopped early (an error, Ctrl-C): no task may still write into the ring afterwards
            for *_, result in pending:
                result.wait()


def _release_shm(shm) -> None:
    """Remove the block's name (its memory goes with the last mapping), then unmap it here."""
    try:
        shm.unlink()
    except (FileNotFoundError, OSError):
        pass
    try:
        shm.close()
    except (BufferError, OSError):  # a view is still alive: the mapping goes with it
        pass


class TokenizeWorkers(_Pool):
    """Persistent tokenizer processes: batches of texts in, (B, context) int arrays out, in order."""

    def __init__(self, workers: int, tokenizer, depth: int = 8):
        self.depth = depth
        super().__init__(workers, _init_tokenizer, (tokenizer,))

    def batches(self, texts: Sequence[str], batch_size: int) -> Iterator[np.ndarray]:
        chunks = [list(texts[s : s + batch_size]) for s in range(0, len(texts), batch_size)]
        pending: deque = deque()
        for n in range(min(self.depth, len(chunks))):
            pending.append((n, self.pool.apply_async(_tokenize, (chunks[n],))))
        try:
            while pending:
                n, result = pending.popleft()
                yield result.get()
                if n + self.depth < len(chunks):
                    pending.append((n + self.depth, self.pool.apply_async(_tokenize, (chunks[n + self.depth],))))
        finally:
            for _, result in pending:
                result.wait()
