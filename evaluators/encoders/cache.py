"""On-disk embedding cache, keyed by model and by content.

Layout: ``<root>/<namespace>/shard-<sha>.npz``, where the namespace identifies the encoder
(architecture, weights, precision, preprocessing) and the kind (``text`` / ``image``).
Each shard holds ``keys`` (sha256 of the content: image bytes, or the exact text) and
``emb`` (float32 unit vectors). Shards are written atomically, one per encoded chunk, so
an interrupted run keeps every finished chunk and the next run resumes from there.

A shard that cannot be read or fails its checks (truncated, zero bytes, not a zip, keys
and vectors of different lengths, non-finite vectors: a disk error or a hand edit) is
moved to ``<namespace>/damaged/`` with one warning line, and its items are encoded again,
so the run finishes with the numbers an intact cache gives.

:func:`encode_cached` is the one entry point: it deduplicates, looks up, encodes only
what is missing (in chunks, flushing each), and returns embeddings in input order.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgrc.evaluators.atomic import atomic_write_bytes
from vgrc.evaluators.encoders.chunk_claims import ChunkClaims, chunk_name
from vgrc.evaluators.errors import warn

__all__ = ["EmbeddingCache", "EncodeStats", "default_cache_dir", "content_key", "encode_cached"]


def default_cache_dir() -> Path:
    """``$VGRC_CACHE``, else ``$XDG_CACHE_HOME/vgrc``, else ``~/.cache/vgrc``."""
    if os.environ.get("VGRC_CACHE"):
        return Path(os.environ["VGRC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vgrc"


def content_key(data: bytes | str) -> str:
    """sha256 hex of bytes, or of a string's UTF-8 encoding."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


class EmbeddingCache:
    """Content-addressed store of unit-vector embeddings for one encoder and kind."""

    def __init__(self, root: str | os.PathLike, namespace: str):
        self.folder = Path(root) / namespace
        self._index: dict[str, np.ndarray] | None = None
        self._read: set[str] = set()

    def _load(self) -> dict[str, np.ndarray]:
        if self._index is None:
            self._index = {}
            self._read = set()
            self.refresh()
        return self._index

    def refresh(self) -> None:
        """Read the shards written since the last read (by this process or another)."""
        if self._index is None:
            self._load()
            return
        damaged = []
        if self.folder.is_dir():
            for shard in sorted(self.folder.glob("shard-*.npz")):
                if shard.name in self._read:
                    continue
                content = read_shard(shard)
                if content is None:
                    damaged.append(shard)
                    continue
                self._read.add(shard.name)
                for k, e in zip(*content):
                    self._index[k] = e
        if damaged:
            where = set_aside(damaged)
            warn(f"{len(damaged)} damaged embedding cache shard(s) moved to {where} (first: {damaged[0].name}); "
                 "their items are encoded again")

    def __len__(self) -> int:
        return len(self._load())

    def get(self, key: str) -> np.ndarray | None:
        return self._load().get(key)

    def add(self, keys: Sequence[str], emb: np.ndarray) -> None:
        """Store a chunk of embeddings as one new shard (atomic)."""
        if not len(keys):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, keys=np.array(list(keys)), emb=np.asarray(emb, dtype=np.float32))
        name = f"shard-{chunk_name(keys)}.npz"
        atomic_write_bytes(self.folder / name, buf.getvalue())
        index = self._load()
        self._read.add(name)
        for k, e in zip(keys, np.asarray(emb, dtype=np.float32)):
            index[k] = e


def read_shard(path: Path) -> tuple[list[str], np.ndarray] | None:
    """A shard's keys and vectors, or None when it is damaged in any way."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, emb = z["keys"], z["emb"]
    except Exception:  # noqa: BLE001 - any unreadable shard (BadZipFile, EOFError, OSError, ValueError, KeyError) is damaged
        return None
    if keys.ndim != 1 or keys.dtype.kind != "U" or emb.ndim != 2 or len(keys) != len(emb) or emb.dtype != np.float32:
        return None
    if not np.isfinite(emb).all():
        return None
    return keys.tolist(), emb


def set_aside(shards: Sequence[Path]) -> Path:
    """Move damaged shards into ``damaged/`` beside them (kept for inspection, never read
    again); return that folder. A shard another process moved first is skipped."""
    where = shards[0].parent / "damaged"
    where.mkdir(exist_ok=True)
    for shard in shards:
        try:
            os.replace(shard, where / f"{shard.name}.{os.getpid()}")
        except FileNotFoundError:
            pass
    return where


@dataclass
class EncodeStats:
    """How many items were asked for, how many distinct, how many actually encoded, and
    (images) how many files were read to compute their content keys, the others being
    answered by the file-key memo (:mod:`~vgrc.evaluators.encoders.file_keys`)."""

    requested: int = 0
    unique: int = 0
    encoded: int = 0
    hashed: int = 0

    def __iadd__(self, other: "EncodeStats") -> "EncodeStats":
        self.requested += other.requested
        self.unique += other.unique
        self.encoded += other.encoded
        self.hashed += other.hashed
        return self


class _ChunkRun:
    """:func:`encode_cached`'s encoding of this process's chunks: each claimed first (when
    ``claims`` is given: other processes share the cache), read one chunk ahead of the
    encoder, stored as a shard; chunks another process holds are waited for at the end and
    only what it did not write is encoded here. ``failed``: keys whose row came back NaN;
    ``encoded``: items this process encoded. :meth:`release_all` lets go of every claim
    still held, however the loop ended."""

    def __init__(self, cache: EmbeddingCache, encode, claims: ChunkClaims | None, total: int, on_progress):
        self.cache, self.encode, self.claims, self.total, self.on_progress = cache, encode, claims, total, on_progress
        self.failed: dict[str, np.ndarray] = {}
        self.encoded = self.done = 0
        self.deferred: list[list[str]] = []
        self.held: list = []

    def _next(self, queue):
        """The next chunk to encode and its claim (None without claims); None at the end."""
        for part in queue:
            if self.claims is None:
                return part, None
            claim = self.claims.try_claim(part)
            if claim is None:
                self.deferred.append(part)  # another process is encoding it now
                continue
            self.held.append(claim)
            self.cache.refresh()  # another process may have finished this chunk before we claimed it
            rest = [k for k in part if self.cache.get(k) is None]
            if rest:
                return rest, claim
            self._release(claim)
        return None

    def _release(self, claim) -> None:
        if claim is not None:
            claim.release()
            self.held.remove(claim)

    def release_all(self) -> None:
        for claim in list(self.held):
            self._release(claim)

    def _store(self, part: list[str], emb: np.ndarray) -> None:
        ok = np.isfinite(emb).all(axis=1)
        self.cache.add([k for k, good in zip(part, ok) if good], emb[ok])
        self.failed.update({k: e for k, e, good in zip(part, emb, ok) if not good})
        self.encoded += len(part)

    def _progress(self, n: int) -> None:
        self.done += n
        if self.on_progress:
            self.on_progress(self.done, self.total)

    def encode_all(self, parts: list[list[str]], loader) -> None:
        queue = iter(parts)
        current = self._next(queue)
        pending = loader.submit(current[0]) if current else None
        j = 0
        while current is not None:
            part, claim = current
            items = loader.results(pending)
            following = self._next(queue) if j > 0 else None
            pending = loader.submit(following[0]) if following else None
            emb = np.asarray(self.encode(items), dtype=np.float32)
            del items
            if j == 0:  # no read runs while the first encode call may fork workers
                following = self._next(queue)
                pending = loader.submit(following[0]) if following else None
            self._store(part, emb)
            self._release(claim)
            self._progress(len(part))
            current, j = following, j + 1
        for part in self.deferred:  # chunks another process held: wait for it, take what it wrote
            claim = self.claims.wait(part)
            self.held.append(claim)
            self.cache.refresh()
            rest = [k for k in part if self.cache.get(k) is None]
            if rest:  # it died or failed on some items: encode them here
                self._store(rest, np.asarray(self.encode(loader.results(loader.submit(rest))), dtype=np.float32))
            self._release(claim)
            self._progress(len(part))
        if self.on_progress and self.claims is not None and self.total and self.done < self.total:
            self.on_progress(self.total, self.total)  # chunks another process finished count as done


def encode_cached(
    keys: Sequence[str],
    load: Callable[[int], object],
    encode: Callable[[list], np.ndarray],
    cache: EmbeddingCache,
    dim: int | None = None,
    *,
    chunk: int = 1024,
    on_progress: Callable[[int, int], None] | None = None,
    sharded: bool = False,
    load_threads: int = 0,
) -> tuple[np.ndarray, EncodeStats]:
    """Embeddings for ``keys`` (in order), encoding each distinct missing key once.

    Parameters
    ----------
    keys : sequence of str
        Content keys, one per item (duplicates allowed).
    load : callable(i) -> item
        Produces the encoder input for position ``i`` (called only for missing keys).
    encode : callable(list of items) -> array (n, dim)
        The encoder. A row of NaN marks an item that could not be encoded (a skipped
        damaged image): it is not cached and comes back as NaN.
    cache : EmbeddingCache
    dim : int, optional
        Embedding size, needed only when ``keys`` is empty.
    chunk : int
        Items per encode call; each chunk is flushed to the cache when done.
    on_progress : callable(done, total), optional
        Progress over the distinct missing keys, reported after each finished chunk (so a
        model that fails to load shows no bar before its error).
    sharded : bool
        Under a torch.distributed launcher (:mod:`vgrc.evaluators.sharding`): encode only
        this rank's chunks, then wait for the others and read theirs from the cache.
    load_threads : int
        Threads that ``load`` the items (0: inline). With threads, the next chunk is loaded
        while the current one is encoded (from the second chunk on: the first encode call may
        fork workers, and no read is under way then): at most two chunks' items are held at
        once. Errors surface in item order, after the chunks before them are cached.
    """
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    missing = [k for k in first if cache.get(k) is None]
    stats = EncodeStats(requested=len(keys), unique=len(first), encoded=len(missing))
    from vgrc.evaluators import sharding
    from vgrc.evaluators.encoders.io_threads import OrderedLoader

    rank, size = sharding.world() if sharded else (0, 1)
    if size > 1:  # every rank lists what is missing before any writes: the same list, hence the same chunks
        sharding.barrier()

    # another rank encodes the chunks not listed here (the same chunks, hence batches, as one process)
    parts = [missing[s : s + chunk] for c, s in enumerate(range(0, len(missing), chunk)) if c % size == rank]
    # one process: other processes sharing this cache claim chunks too, and each chunk is encoded once
    run = _ChunkRun(cache, encode, ChunkClaims(cache.folder) if size == 1 and parts else None, len(missing), on_progress)
    try:
        with OrderedLoader(lambda k: load(first[k]), load_threads if parts else 0) as loader:
            run.encode_all(parts, loader)
    finally:
        run.release_all()
    failed = run.failed
    if size == 1:  # what this process encoded (another process sharing the cache may have done the rest)
        stats.encoded = run.encoded
    else:  # every rank reads what the others wrote
        sharding.barrier()
        if on_progress and missing:  # every chunk is done now, this rank's and the others'
            on_progress(len(missing), len(missing))
        cache._index = None
        for k in missing:
            if cache.get(k) is None and k not in failed:  # failed on another rank: not cached there either
                failed[k] = np.full(dim or len(next(iter(cache._load().values()))), np.nan, np.float32)
    if keys:
        any_key = next(iter(first))
        dim = len(cache.get(any_key) if cache.get(any_key) is not None else failed[any_key])
    out = np.zeros((len(keys), dim or 0), dtype=np.float32)
    for i, k in enumerate(keys):
        hit = cache.get(k)
        out[i] = hit if hit is not None else failed[k]
    return out, stats
