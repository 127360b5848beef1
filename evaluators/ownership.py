"""What vgrc may delete: only files it wrote, in folders it can prove it wrote.

Every folder vgrc writes carries a record with a format marker, its kind and the exact
relative path of every file it writes (``manifest.json`` / ``.vgrc-build.json`` for
datasets, format ``vgrc-dataset/1``; ``run.json`` for evaluation and diagnose runs,
format ``vgrc-run/1``). The record is written before the files it names, so at every
moment it vouches for all of them. A folder is vgrc's when that record is present and
valid AND every file in it is one the record names, or a temporary file of an
interrupted atomic write of one of them (``<name>.vgrc-tmp-<pid>``). ``--overwrite`` then
removes exactly those files (and the folders left empty), and refuses anything else with
one line naming the folder and the first foreign entry.

Older vgrc versions recorded file *patterns* (``compositions/images/*.png``). A pattern
proves nothing about the one file a user dropped beside vgrc's, so such a record is not
trusted for deletion: vgrc refuses and asks the user to remove the folder themselves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable
from pathlib import Path

from vgrc.evaluators.atomic import atomic_write_text, temporary_target
from vgrc.evaluators.errors import DatasetFolderError, OutputError

__all__ = [
    "is_fresh_folder",
    "clear_record_temporaries",
    "check_writable_folder",
    "check_parts_folder",
    "check_output_file",
    "RUN_FORMAT",
    "RUN_FILES",
    "exact_files",
    "foreign_entries",
    "remove_owned",
    "check_run_folder",
    "claim_run_folder",
    "read_run_record",
    "is_unfinished_run",
    "write_run_marker",
]

RUN_FORMAT = "vgrc-run/1"
#: every file ``vgrc eval`` writes into a run folder
RUN_FILES = ("metrics.json", "metrics.csv", "metrics.md", "per_query.parquet", "run.json", "recall_curve.png", "plans.parquet")
_GLOB_CHARS = frozenset("*?[")


def exact_files(recorded: Iterable[str] | None) -> frozenset[str] | None:
    """The recorded files as a set of relative POSIX paths; None when the record holds
    none or holds patterns (an older vgrc's record, which cannot prove single files)."""
    files = list(recorded or ())
    if not files or any(_GLOB_CHARS & set(f) for f in files):
        return None
    return frozenset(files)


def _walk(folder: Path):
    for root, dirs, files in os.walk(folder, followlinks=False):
        base = Path(root)
        for name in dirs:
            p = base / name
            if p.is_symlink():
                yield p
        for name in files:
            yield base / name


def _owned(rel: str, owned: Collection[str]) -> bool:
    if rel in owned:
        return True
    target = temporary_target(rel)
    return target is not None and target in owned


def foreign_entries(folder: str | os.PathLike, owned: Collection[str], limit: int = 1) -> list[str]:
    """Relative paths in ``folder`` that are neither in ``owned`` (exact relative POSIX
    paths) nor a temporary of one of them, at most ``limit`` of them. Symlinks count as
    foreign: vgrc never writes them."""
    folder = Path(folder)
    owned = frozenset(owned)
    found = []
    for path in _walk(folder):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink() or not _owned(rel, owned):
            found.append(rel)
            if len(found) >= limit:
                break
    return found


def remove_owned(folder: str | os.PathLike, owned: Collection[str]) -> None:
    """Delete the files of ``folder`` that ``owned`` names (and their temporaries), then
    the sub-folders left empty. The caller has checked that nothing foreign is there."""
    folder = Path(folder)
    owned = frozenset(owned)
    try:
        for path in list(_walk(folder)):
            if not path.is_symlink() and _owned(path.relative_to(folder).as_posix(), owned):
                path.unlink()
        for root, dirs, _ in sorted(os.walk(folder, topdown=False), key=lambda t: -len(t[0])):
            for d in dirs:
                p = Path(root) / d
                if p.is_dir() and not p.is_symlink() and not any(p.iterdir()):
                    p.rmdir()
    except OSError as exc:
        raise OutputError(f"cannot clear {folder} for --overwrite: {exc.strerror or exc}") from exc


#: the records that claim a folder (written first); a folder holding nothing but a
#: half-written one of these is a claim that died before it landed: still fresh
RECORD_NAMES = ("run.json", ".vgrc-build.json")


def _record_temporaries(out: Path) -> list[Path] | None:
    """The entries of ``out`` when every one is a temporary of a record (see
    :data:`RECORD_NAMES`), else None."""
    entries = list(out.iterdir())
    if all(temporary_target(p.name) in RECORD_NAMES and p.is_file() and not p.is_symlink() for p in entries):
        return entries
    return None


def is_fresh_folder(out: str | os.PathLike) -> bool:
    """True when ``out`` is missing or empty (or holds only a record's half-written
    temporary, left by a process killed while it claimed the folder) and can be created
    there; False when it holds something (the caller decides). Raises when ``out`` is a
    file or cannot be created."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} exists and is not a folder")
    if out.is_dir() and _record_temporaries(out) is None:
        return False
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OutputError(f"cannot create --out {out}: {parent} is not a writable folder")
    return True


def clear_record_temporaries(out: str | os.PathLike) -> None:
    """Remove what :func:`is_fresh_folder` let pass in a fresh folder (before claiming it)."""
    out = Path(out)
    for p in (_record_temporaries(out) or []) if out.is_dir() else []:
        p.unlink(missing_ok=True)


def check_writable_folder(option: str, folder: str | os.PathLike) -> None:
    """Raise one line unless files can be created in ``folder`` (or, when it does not exist
    yet, in its nearest existing parent, where it would be made). Probed with an anonymous
    temporary file (``O_TMPFILE``: nothing appears in the folder), because permission bits
    do not tell: root ignores them, and an immutable folder refuses root too."""
    import tempfile

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {folder} exists and is not a folder")
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{option} {folder}: {probe} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        where = "" if probe == folder else f" (it would be created in {probe})"
        raise OutputError(f"{option} {folder} is not writable{where}: {exc.strerror or exc}; choose another folder") from None


def check_parts_folder(out: str | os.PathLike, is_part, what: str) -> None:
    """``out`` is new, empty, or holds only sub-folders ``is_part(name)`` accepts (a command
    that writes each of its parts into a folder of its own: ``diagnose all``, ``demo``);
    anything else is refused with one line, as every command refuses a folder of the
    user's files. Writes nothing."""
    out = Path(out)
    if is_fresh_folder(out):
        return
    foreign = sorted(p.name for p in out.iterdir() if not (p.is_dir() and not p.is_symlink() and is_part(p.name)))
    if foreign:
        raise DatasetFolderError(f"--out {out} is not empty and is not a vgrc {what} folder (it holds {foreign[0]!r}); choose an empty or new folder")


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


def read_run_record(out: str | os.PathLike) -> dict | None:
    """The ``run.json`` vgrc wrote in ``out`` (format marker present), else None."""
    try:
        record = json.loads((Path(out) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == RUN_FORMAT else None


def _run_files(record: dict) -> frozenset[str]:
    # run records always listed exact names (RUN_FILES or a diagnostic's FILES)
    return exact_files(record.get("files")) or frozenset(RUN_FILES)


def is_unfinished_run(record: dict | None) -> bool:
    """A run whose process ended before its final ``run.json`` (``complete: false``)."""
    return bool(record) and record.get("complete") is False


def check_run_folder(out: str | os.PathLike, overwrite: bool, kind: str | None = None) -> str:
    """Decide, writing nothing, whether a run of ``kind`` (``eval-retrieval``,
    ``diagnose-k-sweep``, ...) may write to ``out``.

    Returns ``"new"`` (missing or empty folder), ``"resume"`` (an unfinished run of the
    same kind, whose process died before it finished: the same command finishes it, with
    or without ``overwrite``) or ``"replace"`` (a vgrc run folder and ``overwrite``).
    Raises one line otherwise: a finished run without ``--overwrite``, or a folder that
    holds anything vgrc did not write.
    """
    out = Path(out)
    if is_fresh_folder(out):
        return "new"
    record = read_run_record(out)
    if record is None and (out / "run.json").is_file():
        raise DatasetFolderError(
            f"--out {out} holds a run.json that vgrc did not write (no vgrc-run format marker), so vgrc cannot prove "
            "which files are its own; choose another folder, or remove the folder yourself if it is an old vgrc run"
        )
    if record is None:
        first = sorted(p.name for p in out.iterdir())[0]
        raise DatasetFolderError(f"--out {out} is not empty and is not a vgrc run folder (it holds {first!r}); choose an empty or new folder")
    foreign = foreign_entries(out, _run_files(record))
    if foreign:
        raise DatasetFolderError(f"--out {out} holds a vgrc run and {foreign[0]!r}, which vgrc did not write; choose another folder")
    if not os.access(out, os.W_OK):
        raise OutputError(f"cannot write to --out {out}: permission denied")
    if is_unfinished_run(record) and (kind is None or record.get("kind") == kind):
        return "resume"
    if not overwrite:
        what = f"an unfinished vgrc run of another kind ({record.get('kind')})" if is_unfinished_run(record) else "a vgrc run"
        raise DatasetFolderError(f"--out {out} already holds {what}; pass --overwrite to replace it, or choose another folder")
    return "replace"


def write_run_marker(out: str | os.PathLike, record: dict) -> None:
    """Atomically write ``out/run.json`` (the run folder's record)."""
    atomic_write_text(Path(out) / "run.json", json.dumps({"format": RUN_FORMAT, **record}, indent=2, default=str) + "\n")


def claim_run_folder(out: str | os.PathLike, overwrite: bool, kind: str, files: Collection[str] = RUN_FILES, config: dict | None = None) -> str:
    """Create ``out`` or take it over (``check_run_folder`` rules) for a run of ``kind``
    writing ``files``, and mark it unfinished BEFORE anything else changes there.

    Write order, so that whatever moment the process dies, the folder stays vgrc's and
    the same command finishes the run: (1) ``run.json`` with ``complete: false`` vouching
    for the previous run's files and this run's; (2) the previous run's files removed;
    (3) ``run.json`` rewritten naming this run's files. The caller then writes its outputs
    atomically and, last, the final ``run.json`` with ``complete: true``.
    """
    out = Path(out)
    state = check_run_folder(out, overwrite, kind)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create --out {out}: {exc.strerror or exc}") from exc
    mine = sorted({*files, "run.json"})
    if state == "new":
        clear_record_temporaries(out)
    base = {"kind": kind, "complete": False, **({"config": config} if config is not None else {})}
    if state != "new":
        previous = _run_files(read_run_record(out) or {})
        write_run_marker(out, {**base, "files": sorted(previous | set(mine))})
        remove_owned(out, previous - {"run.json"})
        for stale in out.glob("run.json.vgrc-tmp-*"):  # a killed process's half-written record
            if temporary_target(stale.name) == "run.json" and stale.is_file():
                stale.unlink(missing_ok=True)
    write_run_marker(out, {**base, "files": mine})
    return state
