"""Claims on cache chunks, so that processes sharing a cache encode each chunk once.

Two ``vgrc eval`` runs started on one fresh cache list the same missing items in the same
order, so they cut the same chunks. Before encoding a chunk, a process takes an exclusive
``flock`` on ``<namespace>/claims/<chunk>.lock``; a chunk another process holds is
deferred, and at the end the process waits for that lock, reads the shard the holder
wrote, and encodes only what is still missing (all of it if the holder died: the kernel
releases a dead process's locks, so a claim never outlives its process, ``kill -9``
included). The holder removes the lock file while it still holds the lock; a waiter that
then wins the lock on the removed file sees it is gone and claims afresh.

Claims are advisory and only save work: a process that cannot lock (no ``fcntl``, a file
system without ``flock``) encodes everything itself, as before, and the numbers are the
same either way.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None

__all__ = ["chunk_name", "ChunkClaims", "Claim"]


def chunk_name(keys: Sequence[str]) -> str:
    """The name of a chunk of content keys (its shard is ``shard-<name>.npz``)."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:20]


class Claim:
    """A held claim; :meth:`release` removes the lock file, then lets go of the lock."""

    def __init__(self, path: Path | None, fd: int | None):
        self.path, self.fd = path, fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


class ChunkClaims:
    """Exclusive claims on chunks of one cache namespace folder."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder) / "claims"

    def try_claim(self, keys: Sequence[str]) -> Claim | None:
        """The claim on this chunk, or None when another live process holds it."""
        return self._acquire(keys, block=False)

    def wait(self, keys: Sequence[str]) -> Claim:
        """Block until this chunk's claim is free (its holder finished or died), then hold it."""
        return self._acquire(keys, block=True)

    def _acquire(self, keys: Sequence[str], block: bool) -> Claim | None:
        if fcntl is None:
            return Claim(None, None)
        path = self.folder / f"{chunk_name(keys)}.lock"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return Claim(None, None)  # no claims here: encode it ourselves
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                return Claim(None, None)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return None
            except OSError:  # a file system without flock
                os.close(fd)
                return Claim(None, None)
            except BaseException:  # Ctrl-C while waiting
                os.close(fd)
                raise
            try:
                current = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                return Claim(path, fd)
            os.close(fd)  # the holder removed this file as it finished: claim the file there now
