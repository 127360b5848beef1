"""Content keys of image files without holding, or re-reading, the images.

The embedding cache is addressed by the sha256 of each image's bytes (content, not path:
a renamed or copied image is still a cache hit, an edited one is not). Computing those keys
meant reading every image of the gallery on every run, and the first release also kept all
the bytes in memory until the run ended: 87 MB for Synthetic Shapes, but tens of GB for
Visual Genome's 108k photographs, and ~150 GB for a million-image gallery.

Now the bytes are hashed as a stream and dropped; images are read again only to be encoded,
one chunk at a time. And a memo (``CACHE/file-keys.sqlite``) remembers each file's key with
its ``(size, mtime_ns, ctime_ns, inode)``, as git's index does. A file whose stat matches is
not read at all. Any write to the file changes its ctime, which no tool can set back, so an
edited image always misses. As git does for "racy" entries, a file changed in the 2 seconds
before it was hashed is not remembered: a second edit within the clock's resolution could
leave its stat unchanged. An image read for encoding whose stat changed since it was
listed is hashed again and must still match its key, or the run stops rather than cache
the embedding under the wrong content.

Files are hashed in threads when they are large enough to gain from it (``THREADED_MIN_BYTES``;
:mod:`~vgrc.evaluators.encoders.io_threads`), and the keys come back in the order of the paths.

An image read for encoding is not hashed a second time when the listing can vouch for it
(:meth:`FileKeys.read`): the same stat signature before and after the read as the one
recorded when it was hashed or found in the memo, outside the racy window. That is the
memo's own rule, applied within one run; any write in between changes the ctime. Otherwise
its bytes are hashed again and must match the listed key.

One writer: under ``--shards`` rank 0 records, the other ranks only read. A read-only cache
folder works, only without the memo.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["FileKeys", "MEMO_NAME", "RACY_SECONDS"]

#: the memo's file name under the cache folder
MEMO_NAME = "file-keys.sqlite"
#: a file modified this recently before it was hashed is not remembered
RACY_SECONDS = 2.0
#: the listing hashes in threads when the median file is at least this large: smaller files
#: cost more in GIL hand-overs than their hashing saves (2 cores: 22 kB files 0.65×,
#: 154 kB files 1.43× with 2 threads; BENCHMARKS.md, "Feeding a first run")
THREADED_MIN_BYTES = 64_000
_QUERY_CHUNK = 900  # below SQLite's default limit of host parameters per statement


def _hash_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _hash_when(path: str) -> tuple[str | OSError, int]:
    """``(key or the OSError that reading raised, the time the read began)``."""
    hashed_at = time.time_ns()
    try:
        return _hash_file(path), hashed_at
    except OSError as exc:
        return exc, hashed_at


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


class FileKeys:
    """Content keys (sha256 of the bytes, :func:`~vgrc.evaluators.encoders.cache.content_key`)
    of files, remembered by stat signature under ``cache_root``.

    ``hashed`` and ``remembered`` count, for the last :meth:`keys` call, the files read and
    the files answered from the memo.
    """

    def __init__(self, cache_root: str | os.PathLike, *, write: bool = True, threads: int | None = None):
        from vgrc.evaluators.encoders.io_threads import default_io_threads

        self.path = Path(cache_root) / MEMO_NAME
        self.write = write
        self.threads = default_io_threads() if threads is None else threads
        self.hashed = self.remembered = 0
        self.reader_threads = 0
        self._trusted: dict[str, tuple[int, int, int, int]] = {}

    def _connect(self) -> sqlite3.Connection | None:
        try:
            if not self.path.exists() and not self.write:
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=60)
            db.execute("CREATE TABLE IF NOT EXISTS file_keys (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
                       "ctime_ns INTEGER, inode INTEGER, key TEXT)")
            return db
        except (OSError, sqlite3.Error):  # read-only or damaged memo: every file is hashed
            return None

    def keys(self, paths: Sequence[str | os.PathLike]) -> list[str | OSError]:
        """The content key of each path, or the ``OSError`` that reading it raised."""
        names = [os.path.abspath(p) for p in paths]
        stats: list[os.stat_result | OSError] = []
        for name in names:
            try:
                stats.append(os.stat(name))
            except OSError as exc:
                stats.append(exc)
        db = self._connect()
        known: dict[str, tuple] = {}
        if db is not None:
            try:
                for s in range(0, len(names), _QUERY_CHUNK):
                    part = names[s : s + _QUERY_CHUNK]
                    rows = db.execute(f"SELECT path, size, mtime_ns, ctime_ns, inode, key FROM file_keys WHERE path IN ({','.join('?' * len(part))})", part)
                    known.update((r[0], r[1:]) for r in rows)
            except sqlite3.Error:
                known = {}
        from vgrc.evaluators.encoders.io_threads import map_in_threads

        out: list[str | OSError] = []
        to_hash = []
        self.hashed = self.remembered = 0
        for i, (name, st) in enumerate(zip(names, stats)):
            hit = None if isinstance(st, OSError) else known.get(name)
            if hit is not None and tuple(hit[:4]) == _signature(st):
                out.append(hit[4])
                self.remembered += 1
                self._trusted[name] = _signature(st)
            else:
                out.append(st)  # an OSError stays; a stat is replaced by the key below
                if not isinstance(st, OSError):
                    to_hash.append(i)
        sizes = sorted(st.st_size for st in stats if not isinstance(st, OSError))
        self.reader_threads = self.threads if sizes and sizes[len(sizes) // 2] >= THREADED_MIN_BYTES else 0
        new = []
        for i, (key, hashed_at) in zip(to_hash, map_in_threads(_hash_when, [names[i] for i in to_hash], self.reader_threads)):
            st = stats[i]
            out[i] = key
            if isinstance(key, OSError):
                continue
            self.hashed += 1
            if max(st.st_mtime_ns, st.st_ctime_ns) < hashed_at - int(RACY_SECONDS * 1e9):
                new.append((names[i], *_signature(st), key))
                self._trusted[names[i]] = _signature(st)
        if db is not None:
            try:
                if new and self.write:
                    with db:
                        db.executemany("INSERT OR REPLACE INTO file_keys VALUES (?, ?, ?, ?, ?, ?)", new)
            except sqlite3.Error:  # a locked or read-only memo costs only the next run's hashing
                pass
            finally:
                db.close()
        return out

    def read(self, path: str | os.PathLike) -> tuple[bytes, bool]:
        """``(bytes, unchanged)``: the file's bytes, and whether they are, for certain, the
        bytes :meth:`keys` listed. That holds when the file's stat signature, taken before
        and after the read, is the one recorded for it by the listing (or its memo entry) and
        the file was not racy then; the caller hashes the bytes again otherwise."""
        name = os.path.abspath(path)
        before = os.stat(name)
        data = Path(name).read_bytes()
        after = os.stat(name)
        sig = _signature(before)
        return data, sig == _signature(after) and self._trusted.get(name) == sig
