"""What vgrc may delete: only files it wrote, in folders it can prove it wrote.

Every folder vgrc writes carries a record with a format marker, its kind and the file
patterns it writes: ``manifest.json`` / ``.vgrc-build.json`` for datasets (format
``vgrc-dataset/1``), ``run.json`` for evaluation runs (format ``vgrc-run/1``). A folder is
vgrc's when that record is present and valid AND every file in it matches the recorded
patterns. ``--overwrite`` then removes exactly those files (and folders left empty), and
refuses anything else with one line naming the folder and the first foreign entry.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path

from vgrc.evaluators.errors import DatasetFolderError, OutputError

__all__ = ["is_fresh_folder", "check_output_file", "RUN_FORMAT", "RUN_FILES", "TEMPORARY_PATTERN", "foreign_entries", "remove_owned", "check_run_folder", "claim_run_folder"]

RUN_FORMAT = "vgrc-run/1"
#: every file ``vgrc eval`` writes into a run folder
RUN_FILES = ("metrics.json", "metrics.csv", "metrics.md", "per_query.parquet", "run.json", "recall_curve.png")
#: temporary files of interrupted atomic writes, anywhere in a vgrc folder
TEMPORARY_PATTERN = "*.vgrc-tmp-*"


def _walk(folder: Path):
    for root, dirs, files in os.walk(folder, followlinks=False):
        base = Path(root)
        for name in dirs:
            p = base / name
            if p.is_symlink():
                yield p
        for name in files:
            yield base / name


def foreign_entries(folder: str | os.PathLike, patterns: Sequence[str], limit: int = 1) -> list[str]:
    """Relative paths in ``folder`` that match none of ``patterns`` (POSIX globs on the
    relative path; ``*`` does not cross ``/``), at most ``limit`` of them. Symlinks count
    as foreign: vgrc never writes them."""
    folder = Path(folder)
    found = []
    for path in _walk(folder):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink() or not _matches(rel, patterns):
            found.append(rel)
            if len(found) >= limit:
                break
    return found


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    parts = rel.split("/")
    if fnmatch.fnmatchcase(parts[-1], TEMPORARY_PATTERN):
        return True
    for pat in patterns:
        pparts = pat.split("/")
        if len(pparts) == len(parts) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, pparts)):
            return True
    return False


def remove_owned(folder: str | os.PathLike, patterns: Sequence[str]) -> None:
    """Delete the files of ``folder`` that match ``patterns``, then the sub-folders left
    empty. The caller has checked that nothing foreign is there."""
    folder = Path(folder)
    try:
        for path in list(_walk(folder)):
            if not path.is_symlink() and _matches(path.relative_to(folder).as_posix(), patterns):
                path.unlink()
        for root, dirs, _ in sorted(os.walk(folder, topdown=False), key=lambda t: -len(t[0])):
            for d in dirs:
                p = Path(root) / d
                if p.is_dir() and not p.is_symlink() and not any(p.iterdir()):
                    p.rmdir()
    except OSError as exc:
        raise OutputError(f"cannot clear {folder} for --overwrite: {exc.strerror or exc}") from exc


def is_fresh_folder(out: str | os.PathLike) -> bool:
    """True when ``out`` is missing or empty and can be created there; False when it holds
    something (the caller decides). Raises when ``out`` is a file or cannot be created."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        return False
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OutputError(f"cannot create --out {out}: {parent} is not a writable folder")
    return True


def check_output_file(path: str | os.PathLike, overwrite: bool, written_by_vgrc, writer: str) -> None:
    """The same rule for a single output file: a missing file is written; an existing one
    only if ``written_by_vgrc(first line)`` says vgrc wrote it, and only with ``overwrite``.
    The folder must exist (no parents are created). Writes nothing."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"--out {path}: folder {path.parent} does not exist; create it first")
    if not path.exists():
        if not os.access(path.parent, os.W_OK):
            raise OutputError(f"--out {path}: folder {path.parent} is not writable")
        return
    if not path.is_file():
        raise OutputError(f"--out {path} exists and is not a file; choose another --out")
    try:
        first = path.read_text(encoding="utf-8").splitlines()[:1]
    except (OSError, UnicodeDecodeError):
        first = []
    if not (first and written_by_vgrc(first[0])):
        raise OutputError(f"--out {path} exists and was not written by {writer}; choose another --out")
    if not overwrite:
        raise OutputError(f"--out {path} holds an earlier {writer} output; pass --overwrite to replace it")


def _read_run_record(out: Path) -> dict | None:
    import json

    try:
        record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == RUN_FORMAT else None


def check_run_folder(out: str | os.PathLike, overwrite: bool) -> str:
    """Decide, writing nothing, whether ``vgrc eval`` may write to ``out``.

    Returns ``"new"`` (missing or empty folder) or ``"replace"`` (a vgrc run folder and
    ``overwrite``). Raises one line otherwise: a run folder without ``--overwrite``, or a
    folder that holds anything vgrc did not write.
    """
    out = Path(out)
    if is_fresh_folder(out):
        return "new"
    record = _read_run_record(out)
    if record is None and (out / "run.json").is_file() and (out / "metrics.json").is_file():
        raise DatasetFolderError(
            f"--out {out} holds a run written by an older vgrc (its run.json has no format marker), so vgrc cannot prove "
            "which files are its own; remove the folder yourself or choose another one"
        )
    if record is None:
        first = sorted(p.name for p in out.iterdir())[0]
        raise DatasetFolderError(f"--out {out} is not empty and is not a vgrc run folder (it holds {first!r}); choose an empty or new folder")
    foreign = foreign_entries(out, record.get("files") or RUN_FILES)
    if foreign:
        raise DatasetFolderError(f"--out {out} holds a vgrc run and {foreign[0]!r}, which vgrc did not write; choose another folder")
    if not overwrite:
        raise DatasetFolderError(f"--out {out} already holds a vgrc run; pass --overwrite to replace it, or choose another folder")
    if not os.access(out, os.W_OK):
        raise OutputError(f"cannot write to --out {out}: permission denied")
    return "replace"


def claim_run_folder(out: str | os.PathLike, overwrite: bool) -> None:
    """Create ``out``, or clear the previous run's files from it (``check_run_folder`` rules)."""
    out = Path(out)
    if check_run_folder(out, overwrite) == "replace":
        record = _read_run_record(out) or {}
        remove_owned(out, record.get("files") or RUN_FILES)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create --out {out}: {exc.strerror or exc}") from exc
