"""The dataset folder contract: what every builder writes and ``vgrc eval`` reads.

A built dataset is a folder that ``datasets.load_dataset("imagefolder", data_dir=...)``
loads::

    <out>/
      <split>/metadata.jsonl   one row per image; "file_name" relative to this file
      <split>/images/...       (or references to the user's own image root)
      README.md                dataset card (Markdown with Hugging Face YAML front matter)
      manifest.json            vgrc version, command, seed, config, counts, sha256 per split

Rows share the fields ``id``, ``file_name``, ``caption`` and ``objects`` (a list of
``{"noun": str, "attributes": [str], "bbox": [x, y, w, h] | null}``); builders add their
own fields beside them.

Life cycle of a build (all writes are atomic: temporary file + rename)

1. :func:`prepare_output` claims the folder. It writes a build marker
   (``.vgrc-build.json``) holding the dataset name and its configuration, so an
   interrupted build is recognised and resumed, and a different dataset is refused.
2. The builder writes its files, skipping those a previous run finished.
3. :func:`finish_dataset` writes ``manifest.json`` LAST and removes the marker. Only a
   manifest declares a dataset finished, so nothing half-written is ever declared done.

Readers use :func:`read_manifest` / :func:`read_split`, which verify the sha256 recorded
for each metadata file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from vgrc.evaluators.atomic import atomic_write_bytes, atomic_write_text, temporary_target
from vgrc.evaluators.errors import DatasetFolderError, OutputError
from vgrc.evaluators.ownership import clear_record_temporaries, exact_files, foreign_entries, is_fresh_folder, remove_owned

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "MARKER_NAME",
    "METADATA_NAME",
    "atomic_write_bytes",
    "atomic_write_text",
    "dumps_row",
    "write_jsonl",
    "read_jsonl",
    "sha256_file",
    "check_output",
    "prepare_output",
    "mark_unfinished",
    "finish_dataset",
    "read_manifest",
    "read_split",
    "load_hf",
]

FORMAT = "vgrc-dataset/1"
MANIFEST_NAME = "manifest.json"
MARKER_NAME = ".vgrc-build.json"
METADATA_NAME = "metadata.jsonl"


# --------------------------------------------------------------------------- writing


def dumps_row(row: Mapping[str, Any]) -> str:
    """One JSON Lines row: key order kept, UTF-8 kept, no spaces, so bytes are reproducible."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> str:
    """Atomically write ``rows`` as JSON Lines; return the sha256 of the bytes written."""
    data = "".join(dumps_row(r) + "\n" for r in rows).encode("utf-8")
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON Lines file; a malformed line raises :class:`DatasetFolderError` naming it."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetFolderError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
    return rows


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def remove_stale_temporaries(folder: str | os.PathLike, targets: Collection[str] | None = None) -> int:
    """Delete the temporary files an interrupted atomic write left in ``folder``; return
    how many. Only names of the form ``<target>.vgrc-tmp-<pid>`` are touched, and, when
    ``targets`` is given, only those whose target is one of these names."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = []
    for p in folder.iterdir():
        target = temporary_target(p.name)
        if target is not None and (targets is None or target in targets) and p.is_file() and not p.is_symlink():
            stale.append(p)
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


# --------------------------------------------------------------------------- build life cycle


def _read_json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _describe(record: dict) -> str:
    name = record.get("dataset", "an unknown dataset")
    config = record.get("config")
    return f"{name} {json.dumps(config, sort_keys=True)}" if config is not None else str(name)


def _vgrc_record(path: Path) -> dict | None:
    """A manifest or build marker that vgrc wrote (format marker and kind), else None."""
    record = _read_json(path)
    if record and record.get("format") == FORMAT and isinstance(record.get("dataset"), str):
        return record
    return None


def _recorded_files(found: dict, dataset: str, files: Iterable[str]) -> frozenset[str] | None:
    """The exact files a found manifest/marker vouches for (itself included), or None.

    A record from the oldest vgrc names no files; when it is of the kind being built, the
    exact files this builder writes are what that builder wrote. A record that holds
    patterns (an older vgrc's) proves nothing about one file among others: None."""
    recorded = found.get("files") or (list(files) if found.get("dataset") == dataset else None)
    exact = exact_files(recorded)
    return None if exact is None else exact | {MANIFEST_NAME, MARKER_NAME}


def check_output(
    out: str | os.PathLike,
    dataset: str,
    config: Mapping[str, Any],
    *,
    overwrite: bool = False,
    files: Iterable[str] = (),
    legacy_keys: Iterable[str] = (),
) -> str:
    """:func:`prepare_output`'s decision, writing nothing: ``"complete"``, ``"resume"``,
    ``"new"`` or ``"replace"`` (a different vgrc dataset, ``overwrite`` given).

    ``legacy_keys``: config keys an older vgrc recorded that no longer define the dataset
    (NAC's merge-time options); a recorded config is compared without them.
    """
    out = Path(out)
    wanted = {"dataset": dataset, "config": json.loads(json.dumps(config))}
    if is_fresh_folder(out):
        return "new"
    manifest = _vgrc_record(out / MANIFEST_NAME)
    marker = _vgrc_record(out / MARKER_NAME)
    found = manifest if manifest is not None else marker
    if found is None:
        first = sorted(p.name for p in out.iterdir())[0]
        raise DatasetFolderError(
            f"--out {out} is not empty and is not a vgrc dataset (it holds {first!r}); choose an empty or new folder"
        )
    legacy = set(legacy_keys)
    recorded_config = found.get("config")
    if legacy and isinstance(recorded_config, dict):
        recorded_config = {k: v for k, v in recorded_config.items() if k not in legacy}
    same = found.get("dataset") == wanted["dataset"] and recorded_config == wanted["config"]
    if same:
        return "complete" if manifest is not None else "resume"
    if not overwrite:
        state = "holds" if manifest is not None else "holds an unfinished build of"
        raise DatasetFolderError(
            f"--out {out} {state} a different dataset ({_describe(found)}); "
            "pass --overwrite to replace it, or choose another folder"
        )
    recorded = _recorded_files(found, dataset, files)
    if recorded is None:
        raise DatasetFolderError(
            f"--out {out} holds a dataset written by an older vgrc that did not record each file it wrote; "
            "vgrc cannot prove what it may delete: remove the folder yourself or choose another one"
        )
    foreign = foreign_entries(out, recorded)
    if foreign:
        raise DatasetFolderError(
            f"--out {out} holds a vgrc dataset and {foreign[0]!r}, which vgrc did not write; "
            "--overwrite removes only vgrc's files: move it away or choose another folder"
        )
    return "replace"


def prepare_output(
    out: str | os.PathLike,
    dataset: str,
    config: Mapping[str, Any],
    *,
    overwrite: bool = False,
    files: Iterable[str] = (),
    legacy_keys: Iterable[str] = (),
) -> str:
    """Claim ``out`` for building ``dataset`` with ``config``; say how the build should proceed.

    Parameters
    ----------
    out : path
        The dataset folder. Created if missing.
    dataset : str
        Dataset name, e.g. ``"shapes"``.
    config : mapping
        Everything that determines the output bytes (not worker counts or progress flags).
        A folder built or being built with another config holds a *different* dataset.
    overwrite : bool
        Replace a folder that holds a different vgrc dataset. A folder that holds other
        files, not written by vgrc, is never deleted.

    Returns
    -------
    str
        ``"complete"`` — the folder already holds exactly this dataset, finished;
        ``"resume"`` — an interrupted build of this dataset is continued;
        ``"new"`` — a fresh build starts (after removing, with ``overwrite``, the files of
    the different vgrc dataset the folder held: exactly the files its manifest or marker
    recorded, and only when nothing else is there).

    files : relative paths
        The exact relative POSIX path of every file this build writes (recorded before
        any is written, so a later ``--overwrite`` can prove what it may delete; no
        patterns: a pattern would also claim a user's file dropped beside vgrc's).

    Raises
    ------
    DatasetFolderError
        The folder holds a different dataset (and ``overwrite`` is false) or files that
        vgrc did not write.
    OutputError
        The folder cannot be created or written.
    """
    out = Path(out)
    files = _exact_list(files)
    state = check_output(out, dataset, config, overwrite=overwrite, files=files, legacy_keys=legacy_keys)
    wanted = {"format": FORMAT, "dataset": dataset, "config": json.loads(json.dumps(config)), "files": files}
    if state == "complete":
        return state
    if state == "replace":
        # the new marker vouches for the old files and the new ones BEFORE anything is
        # removed, so a process killed at any moment leaves a folder vgrc still owns
        found = _vgrc_record(out / MANIFEST_NAME) or _vgrc_record(out / MARKER_NAME) or {}
        previous = _recorded_files(found, dataset, files) or frozenset()
        _write_marker(out, {**wanted, "files": sorted(previous | set(files))})
        (out / MANIFEST_NAME).unlink(missing_ok=True)
        remove_owned(out, previous - {MARKER_NAME})
        state = "new"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create --out {out}: {exc.strerror or exc}") from exc
    if state == "new":
        clear_record_temporaries(out)
    _write_marker(out, wanted)
    return state


def _exact_list(files: Iterable[str]) -> list[str]:
    files = list(files)
    if exact_files(files) is None and files:  # a programming error, not a user error
        raise ValueError(f"a build records the exact files it writes, not patterns: {[f for f in files if set('*?[') & set(f)][:3]}")
    return files


def mark_unfinished(out: str | os.PathLike, dataset: str, config: Mapping[str, Any], *, files: Iterable[str] = ()) -> None:
    """Turn a finished dataset back into a build in progress, keeping every file: the
    build marker is written first, then the manifest removed, so the folder is vgrc's at
    every moment and never declared finished while a builder rewrites it."""
    out = Path(out)
    _write_marker(out, {"format": FORMAT, "dataset": dataset, "config": json.loads(json.dumps(config)), "files": _exact_list(files)})
    (out / MANIFEST_NAME).unlink(missing_ok=True)


def _write_marker(out: Path, record: dict) -> None:
    if not os.access(out, os.W_OK):
        raise OutputError(f"cannot write to --out {out}: permission denied")
    atomic_write_text(out / MARKER_NAME, json.dumps(record, indent=2, sort_keys=True) + "\n")


def finish_dataset(
    out: str | os.PathLike,
    dataset: str,
    config: Mapping[str, Any],
    *,
    version: str,
    command: str,
    seed: int | None,
    splits: Iterable[str],
    extra: Mapping[str, Any] | None = None,
    files: Iterable[str] = (),
) -> dict:
    """Declare the dataset finished: write ``manifest.json`` last, then drop the build marker.

    The manifest records, per split, the row count and the sha256 of its metadata file,
    so readers can detect a damaged or edited dataset. It holds no timestamps: the same
    command and seed give the same bytes.

    Returns
    -------
    dict
        The manifest as written.
    """
    out = Path(out)
    split_info = {}
    for split in splits:
        meta = out / split / METADATA_NAME
        with open(meta, "rb") as fh:
            n_rows = sum(1 for line in fh if line.strip())
        split_info[split] = {
            "metadata": f"{split}/{METADATA_NAME}",
            "rows": n_rows,
            "sha256": sha256_file(meta),
        }
    manifest = {
        "format": FORMAT,
        "dataset": dataset,
        "vgrc_version": version,
        "command": command,
        "seed": seed,
        "config": json.loads(json.dumps(config)),
        "splits": split_info,
        "files": _exact_list(files),
    }
    if extra:
        manifest.update(extra)
    atomic_write_text(out / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    (out / MARKER_NAME).unlink(missing_ok=True)
    return manifest


# --------------------------------------------------------------------------- reading


def read_manifest(path: str | os.PathLike) -> dict:
    """Read and check a dataset's manifest.

    Raises
    ------
    DatasetFolderError
        ``path`` is not a finished vgrc dataset (no manifest, an unfinished build, an
        unknown format).
    """
    path = Path(path)
    if not path.is_dir():
        raise DatasetFolderError(f"{path} is not a folder")
    manifest = _read_json(path / MANIFEST_NAME)
    if manifest is None:
        hint = (
            "its build was interrupted; run the same build command again to finish it"
            if (path / MARKER_NAME).exists()
            else "build one with `vgrc gen-shapes`, `vgrc build-vg` or `vgrc build-nac`, or turn a folder of your own "
            "images into one with `vgrc import captions --images DIR --captions FILE --out DIR`"
        )
        raise DatasetFolderError(f"{path} is not a finished vgrc dataset (no {MANIFEST_NAME}): {hint}")
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("splits"), dict):
        raise DatasetFolderError(f"{path / MANIFEST_NAME} is damaged or of an unknown format")
    return manifest


def read_split(path: str | os.PathLike, split: str, *, verify: bool = True) -> list[dict]:
    """Rows of one split, with the metadata file's sha256 checked against the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    info = manifest["splits"].get(split)
    if info is None:
        raise DatasetFolderError(
            f"{path} has no split {split!r}; its splits: {', '.join(sorted(manifest['splits']))}"
        )
    meta = path / info["metadata"]
    if not meta.is_file():
        raise DatasetFolderError(f"{meta} is missing")
    if verify and sha256_file(meta) != info["sha256"]:
        raise DatasetFolderError(f"{meta} does not match the sha256 in {MANIFEST_NAME}: it was changed")
    return read_jsonl(meta)



def load_hf(path: str | os.PathLike, split: str | None = None):
    """A vgrc dataset folder as a Hugging Face ``DatasetDict`` (or one ``Dataset`` with
    ``split``), with an ``image`` column whatever the builder: ``file_name`` is resolved
    against its split folder, so imported datasets, whose images stay in your own folder,
    load with their images too (``load_dataset(folder)`` gives them as plain strings).
    Metadata files are checked against the manifest's sha256."""
    from datasets import Dataset, DatasetDict, Image

    path = Path(path)
    manifest = read_manifest(path)
    names = [split] if split is not None else list(manifest["splits"])
    out = {}
    for name in names:
        rows = read_split(path, name)
        folder = (path / manifest["splits"][name]["metadata"]).parent
        columns = {key: [r.get(key) for r in rows] for key in dict.fromkeys(k for r in rows for k in r) if key != "file_name"}
        columns["image"] = [str((folder / r["file_name"]).resolve()) for r in rows]
        out[name] = Dataset.from_dict(columns).cast_column("image", Image())
    return out[split] if split is not None else DatasetDict(out)
