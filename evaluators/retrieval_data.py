"""Queries and gallery for text-to-image retrieval, read from the dataset folder contract.

Every row of the evaluated split is both a query (its ``caption``, and the objects the
caption names) and a gallery image (its ``file_name`` and ``objects``). A query's objects
are the row's ``caption_objects`` when the builder wrote them (Visual Genome: the caption
names at most 12 attributed phrases of an image that may hold 100 objects), else its
``objects`` (Synthetic Shapes, NAC: the caption names every object). A query's relevant
images are its own row's image and any other image with the same normalised caption.

Fit/eval partition: ridge mappers and steering directions are fitted on rows DISJOINT
from the evaluated ones. Either a named split (``fit_split``) provides them, or a seeded
``fit_fraction`` of the evaluated split is held out. The held-out rows are then removed
from both the queries and the gallery. The partition does not depend on the first
stage, so runs with different stages evaluate the same queries and their tables compare.
For Synthetic Shapes the default holds out 20% of ``compositions`` (2,649 of 13,244).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgrc.evaluators.dataset import read_manifest, read_split
from vgrc.evaluators.errors import DatasetFolderError, InvalidInputError

__all__ = ["RetrievalSet", "load_retrieval", "object_phrase", "object_tuples", "require_objects", "vocabulary", "query_categories", "relevant_rows"]

REFERENCE_LAYOUTS = {"reference"}


def object_phrase(obj: dict) -> str:
    """``"large red rubber sphere"``: the attributes, then the noun (paper §4.3)."""
    return " ".join([*obj.get("attributes", []), obj["noun"]]).strip()


def object_tuples(objects: list[dict]) -> Counter:
    """Multiset of ``(noun, sorted attributes)`` tuples (App. H)."""
    return Counter((o["noun"], tuple(sorted(o.get("attributes", [])))) for o in objects)


@dataclass
class RetrievalSet:
    """Rows of one split in evaluation order.

    Attributes
    ----------
    ids, captions, objects, image_paths : lists, one entry per row
        ``objects``: the image's objects (the candidate side).
    query_objects : list, one entry per row
        The objects the row's caption names (the query side).
    relevant : list of int arrays, gallery indices relevant to each query
    """

    ids: list[str]
    captions: list[str]
    objects: list[list[dict]]
    image_paths: list[Path]
    query_objects: list[list[dict]] = field(default_factory=list)
    relevant: list[np.ndarray] = field(default_factory=list)
    #: each row's ``category`` field (SugarCrepe), or None
    categories: list[str | None] = field(default_factory=list)

    def __post_init__(self):
        if not self.query_objects:
            self.query_objects = self.objects
        if not self.categories:
            self.categories = [None] * len(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, idx) -> "RetrievalSet":
        idx = list(idx)
        out = RetrievalSet(
            [self.ids[i] for i in idx], [self.captions[i] for i in idx], [self.objects[i] for i in idx],
            [self.image_paths[i] for i in idx], [self.query_objects[i] for i in idx],
            categories=[self.categories[i] for i in idx],
        )
        out.relevant = _relevance(out.captions, out.image_paths)
        return out


def query_categories(rows: RetrievalSet, from_nouns: bool = True) -> list[list[str]]:
    """The categories a query counts in for per-category breakdowns: the row's
    ``category`` (SugarCrepe) when it has one, else the nouns its objects name (Synthetic
    Shapes: its shapes; a query counts once in each), else none. A dataset whose "objects"
    are not nouns (Urban1K's caption sentences) says so in its manifest
    (``query_categories: none``): ``from_nouns`` false, no noun categories."""
    out = []
    for cat, objs in zip(rows.categories, rows.query_objects):
        out.append([cat] if cat is not None else sorted({o["noun"] for o in objs}) if from_nouns else [])
    return out


def require_objects(rows: RetrievalSet, side: str, needed_by: str) -> None:
    """One clear error when a row lacks the per-object annotations ``needed_by`` reads.

    ``side`` is ``"query"`` (the objects the caption names) or ``"image"`` (the image's
    objects).
    """
    objects = rows.query_objects if side == "query" else rows.objects
    for rid, objs in zip(rows.ids, objects):
        if not objs:
            what = "query objects (caption_objects/objects)" if side == "query" else "image objects (objects)"
            raise InvalidInputError(
                f"row {rid!r} has no {what}, which {needed_by} needs; use a dataset whose rows carry `objects`, "
                "or choose --stage1 cosine/ridge/ridge+steer with --rerank none"
            )


def vocabulary(*sets: "RetrievalSet | None") -> set[str]:
    """Every noun and attribute word in the objects of the given sets."""
    words: set[str] = set()
    for rs in sets:
        if rs is None:
            continue
        for objs in (*rs.objects, *rs.query_objects):
            for o in objs:
                words.add(o["noun"])
                words.update(o.get("attributes", []))
    return words


def _relevance(captions: list[str], image_paths: list[Path] | None = None) -> list[np.ndarray]:
    """Gallery rows relevant to each query: the same normalised caption, or the same image
    file (SugarCrepe reuses one COCO image for many records)."""
    by_caption: dict[str, list[int]] = {}
    for i, c in enumerate(captions):
        by_caption.setdefault(" ".join(c.lower().split()), []).append(i)
    by_image: dict[str, list[int]] = {}
    for i, p in enumerate(image_paths or []):
        by_image.setdefault(os.path.normpath(str(p)), []).append(i)
    out = []
    for i, c in enumerate(captions):
        same = by_caption[" ".join(c.lower().split())]
        if image_paths is not None and len(by_image[os.path.normpath(str(image_paths[i]))]) > 1:
            same = sorted(set(same) | set(by_image[os.path.normpath(str(image_paths[i]))]))
        out.append(np.array(same))
    return out


def relevant_rows(captions: list[str], image_paths: list[Path]) -> list[np.ndarray]:
    """Each row's relevant rows in a gallery of these rows, as every retrieval run grades
    them: the same normalised caption, or the same image file."""
    return _relevance(captions, image_paths)


def _rows_to_set(path: Path, split: str, rows: list[dict]) -> RetrievalSet:
    base = path / split
    for n, r in enumerate(rows):
        for key in ("id", "file_name", "caption"):
            if key not in r:
                raise DatasetFolderError(f"{base / 'metadata.jsonl'}: row {n + 1} has no {key!r} field")
    return RetrievalSet(
        ids=[str(r["id"]) for r in rows],
        captions=[r["caption"] for r in rows],
        objects=[r.get("objects") or [] for r in rows],
        image_paths=[Path(r["file_name"]) if Path(r["file_name"]).is_absolute() else base / r["file_name"] for r in rows],
        query_objects=[(r["caption_objects"] if "caption_objects" in r else r.get("objects")) or [] for r in rows],
        categories=[str(r["category"]) if r.get("category") is not None else None for r in rows],
    )


def default_split(manifest: dict) -> str:
    """The first split whose rows are not single-object references (shapes: compositions)."""
    splits = list(manifest["splits"])
    preferred = [s for s in splits if s not in ("primitives", "reference", "fit")]
    return (preferred or splits)[0]


def load_retrieval(
    path: str | Path,
    split: str | None = None,
    *,
    fit_split: str | None = None,
    fit_fraction: float = 0.2,
    limit: int | None = None,
    seed: int = 0,
    drop_uncaptioned: bool = True,
) -> tuple[RetrievalSet, RetrievalSet | None, dict]:
    """Evaluation rows, fit rows (or None) and a description of the partition.

    ``limit`` keeps a seeded subset of the evaluation rows (smoke runs); the fit rows are
    drawn before it, so they never overlap. Rows with an empty caption cannot be queries
    and are dropped (counted) unless ``drop_uncaptioned`` is false (a steering gallery).
    """
    path = Path(path)
    manifest = read_manifest(path)
    split = split or default_split(manifest)
    if not 0.0 <= fit_fraction < 1.0:
        raise InvalidInputError(f"--fit-fraction must be in [0, 1), got {fit_fraction}")
    rows = read_split(path, split)
    if not rows:
        raise DatasetFolderError(f"split {split!r} of {path} is empty")
    if manifest.get("dataset") == "vg" and "caption_objects" not in rows[0]:
        raise DatasetFolderError(
            f"{path} was built by an older vgrc whose VG rows lack `caption_objects` (the objects each caption names); "
            "rebuild it with `vgrc build-vg ... --overwrite`"
        )
    full = _rows_to_set(path, split, rows)
    no_caption = [i for i, c in enumerate(full.captions) if not c.strip()] if drop_uncaptioned else []
    if no_caption:  # e.g. a VG image none of whose objects carries an attribute: nothing to query
        dropped = set(no_caption)
        full = full.subset([i for i in range(len(full)) if i not in dropped])
    order = list(range(len(full)))
    random.Random(f"fit:{seed}").shuffle(order)
    fit = None
    if fit_split:
        if fit_split == split:
            raise InvalidInputError("--fit-split must differ from the evaluated --split")
        fit = _rows_to_set(path, fit_split, read_split(path, fit_split))
        fit.relevant = _relevance(fit.captions, fit.image_paths)
        eval_idx = order
    elif fit_fraction > 0:
        n_fit = max(1, round(fit_fraction * len(full)))
        fit = full.subset(sorted(order[:n_fit]))
        eval_idx = order[n_fit:]
    else:
        eval_idx = order
    if limit is not None:
        if limit < 1:
            raise InvalidInputError(f"--limit must be ≥ 1, got {limit}")
        eval_idx = eval_idx[:limit]
    evaluated = full.subset(sorted(eval_idx))
    info = {
        "dataset": manifest.get("dataset"),
        "split": split,
        "fit": fit_split or (f"{fit_fraction:g} of {split} (seeded hold-out)" if fit is not None else None),
        "n_eval": len(evaluated),
        "n_fit": 0 if fit is None else len(fit),
        "manifest_sha256": {k: v["sha256"] for k, v in manifest["splits"].items()},
        "rows_without_caption_dropped": len(no_caption),
        "objects_source": manifest.get("objects_source", "the dataset's `objects` annotations"),
        "recommended": manifest.get("recommended", {}),
        "query_categories": manifest.get("query_categories", "nouns"),
    }
    return evaluated, fit, info
