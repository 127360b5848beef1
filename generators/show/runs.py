"""What ``vgrc show`` reads of a run folder, checked before anything is written: its
``run.json`` (a finished ``vgrc eval --task retrieval`` run), ``metrics.json``,
``per_query.parquet`` and, when ``eval --save-plans`` wrote one, ``plans.parquet``; and
the dataset rows the run evaluated (image paths, object sets, relevance), read from the
dataset folder its ``run.json`` names."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from vgrc.evaluators.errors import DatasetFolderError, InvalidInputError
from vgrc.evaluators.ownership import read_run_record

#: run kinds with a ranked list per query: text queries, image queries
SHOWN_KINDS = ("eval-retrieval", "eval-i2i")

__all__ = ["SHOWN_KINDS", "ShownRun", "DatasetRows", "load_shown_runs", "check_site_inputs", "gallery_rows"]


@dataclass
class ShownRun:
    """One run folder as the site needs it."""

    path: Path
    record: dict
    metrics: dict
    per_query: object  # pandas DataFrame
    plans: object = None  # pandas DataFrame or None
    name: str = ""
    notes: list = field(default_factory=list)

    @property
    def config(self) -> dict:
        return self.record.get("config", {})

    @property
    def rerank(self) -> str:
        return str(self.config.get("choices", {}).get("rerank", self.metrics.get("config", {}).get("rerank", "?")))

    @property
    def label(self) -> str:
        c = self.metrics.get("config", {})
        return f"{c.get('model', '?')} · {c.get('stage1', '?')} + {c.get('rerank', '?')} (k={c.get('k', '?')})"


def _read_run(path: Path) -> tuple[dict, dict]:
    """``run.json`` and ``metrics.json`` of a finished retrieval run, or one line why not."""
    if not path.is_dir():
        raise DatasetFolderError(f"{path} is not a folder; give run folders written by vgrc eval")
    record = read_run_record(path)
    if record is None:
        raise DatasetFolderError(f"{path} is not a vgrc run folder (no run.json written by vgrc eval)")
    if record.get("complete") is not True:
        raise DatasetFolderError(f"{path} holds an unfinished run; run its vgrc eval command again to finish it")
    if record.get("kind") not in SHOWN_KINDS:
        raise DatasetFolderError(f"{path} is a {record.get('kind')} run; vgrc show shows ranking runs (vgrc eval --task retrieval or i2i)")
    try:
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetFolderError(f"{path}/metrics.json cannot be read: {exc}") from exc
    if not (path / "per_query.parquet").is_file():
        raise DatasetFolderError(f"{path} has no per_query.parquet")
    return record, metrics


def check_site_inputs(runs: list[Path], out: Path) -> list[tuple[Path, dict, dict]]:
    """Every check that needs no heavy import: each path a finished retrieval run, no
    run given twice, ``out`` outside every run folder. Returns (path, run.json, metrics.json)."""
    if not runs:
        raise InvalidInputError("give at least one run folder: vgrc show RUN [RUN2 …] --out DIR")
    seen: dict[str, Path] = {}
    loaded = []
    out_real = Path(os.path.realpath(out))
    for run in runs:
        real = Path(os.path.realpath(run))
        if str(real) in seen:
            raise InvalidInputError(f"{run} is given twice (also as {seen[str(real)]}); give each run once")
        seen[str(real)] = run
        record, metrics = _read_run(Path(run))
        if out_real == real or real in out_real.parents:
            raise InvalidInputError(f"--out {out} is inside the run folder {run}; vgrc show writes nothing into a run, choose a folder outside it")
        loaded.append((Path(run), record, metrics))
    return loaded


def load_shown_runs(checked: list[tuple[Path, dict, dict]]) -> list[ShownRun]:
    """The runs' per-query tables (and saved plans), checked to be on the same queries."""
    import pandas as pd

    shown = []
    for path, record, metrics in checked:
        try:
            per_query = pd.read_parquet(path / "per_query.parquet")
            plans = pd.read_parquet(path / "plans.parquet") if (path / "plans.parquet").is_file() else None
        except Exception as exc:  # pyarrow raises many types for a damaged file
            raise DatasetFolderError(f"{path}: a parquet file cannot be read ({type(exc).__name__}: {exc})") from exc
        needed = ("query_id", "rank_stage1", "rank_final", "top10_stage1", "top10_final") + (("caption",) if record.get("kind") == "eval-retrieval" else ())
        for column in needed:
            if column not in per_query.columns:
                raise DatasetFolderError(f"{path}/per_query.parquet has no {column!r} column: was it written by vgrc eval?")
        shown.append(ShownRun(path, record, metrics, per_query, plans, name=path.name, notes=list(metrics.get("notes", []))))
    first = shown[0]
    other_kind = next((r for r in shown if r.record.get("kind") != first.record.get("kind")), None)
    if other_kind is not None:
        raise InvalidInputError(f"{other_kind.path} ({other_kind.record.get('kind')}) and {first.path} ({first.record.get('kind')}) rank different "
                                "kinds of queries; show together only runs on the same queries")
    ids = first.per_query["query_id"].tolist()
    for run in shown[1:]:
        other = run.per_query["query_id"].tolist()
        if other != ids:
            differ = len(set(ids) ^ set(other))
            raise InvalidInputError(f"{run.path} and {first.path} are runs on different queries ({len(other):,} vs {len(ids):,} queries, "
                                    f"{differ:,} ids in one only); show together only runs on the same queries")
    return shown


@dataclass
class DatasetRows:
    """The run's dataset split by row id: image path, caption, the objects its caption
    names (the query side) and the image's objects (the candidate side)."""

    paths: dict
    captions: dict
    query_objects: dict
    image_objects: dict


def gallery_rows(run: ShownRun) -> DatasetRows:
    """The rows of the run's dataset split (read from the folder its run.json names)."""
    from vgrc.evaluators.dataset import read_manifest, read_split
    from vgrc.evaluators.retrieval_data import default_split

    data = run.config.get("data", {})
    folder = data.get("data")
    if not folder or not Path(folder).is_dir():
        raise DatasetFolderError(f"{run.path}: its dataset folder {folder!r} is gone; vgrc show reads the images from it")
    manifest = read_manifest(folder)
    split = data.get("split") or default_split(manifest)
    base = Path(folder) / split
    rows = DatasetRows({}, {}, {}, {})
    for row in read_split(folder, split, verify=False):
        rid = str(row.get("id"))
        name = Path(row.get("file_name", ""))
        rows.paths[rid] = name if name.is_absolute() else base / name
        rows.image_objects[rid] = row.get("objects") or []
        rows.query_objects[rid] = (row.get("caption_objects") if "caption_objects" in row else row.get("objects")) or []
        rows.captions[rid] = row.get("caption", "")
    return rows
