"""Atomic writes: readers see the old file or the new one, never a part of either.

The bytes go to ``<name>.vgrc-tmp-<pid>`` in the same folder, which then replaces the
target. That temporary name is the only one vgrc gives a file it has not finished, so
ownership checks (:mod:`.ownership`) accept a temporary exactly when its target is a file
vgrc records writing, and nothing else that merely contains ``.vgrc-tmp-``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vgrc.evaluators.errors import OutputError

__all__ = ["TMP_INFIX", "temporary_path", "temporary_target", "atomic_write_bytes", "atomic_write_text", "atomic_replace_with"]

#: infix of the temporary file an atomic write renames into place
TMP_INFIX = ".vgrc-tmp-"
_TEMPORARY = re.compile(r"^(?P<target>.+)\.vgrc-tmp-\d+$")


def temporary_path(path: str | os.PathLike) -> Path:
    """Where an atomic write of ``path`` by this process puts its bytes before the rename."""
    path = Path(path)
    return path.with_name(f"{path.name}{TMP_INFIX}{os.getpid()}")


def temporary_target(name: str) -> str | None:
    """The file a temporary of :func:`temporary_path`'s form was going to become, else None.
    Works on a bare name or a relative path alike."""
    match = _TEMPORARY.match(name)
    return match.group("target") if match else None


def atomic_replace_with(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)`` to produce the file, then rename it onto ``path``; on an
    error the temporary is removed and one :class:`OutputError` line names ``path``."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    atomic_replace_with(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))
