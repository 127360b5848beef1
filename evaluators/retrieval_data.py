"""Queries and gallery for text-to-image retrieval, read from the dataset folder contract.

Every row of the evaluated split is both a query (its ``caption`` and ``objects``) and a
gallery image (its ``file_name`` and ``objects``). A query's relevant images are its own
row's image and any other image with the same normalised caption.

Fit/eval partition: ridge mappers and steering directions are fitted on rows DISJOINT
from the evaluated ones. Either a named split (``fit_split``) provides them, or a seeded
``fit_fraction`` of the evaluated split is held out. The held-out rows are then removed
from both the queries and the gallery. The partition does not depend on the first
stage, so runs with different stages evaluate the same queries and their tables compare.
For Synthetic Shapes the default holds out 20% of ``compositions`` (2,649 of 13,244).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgrc.evaluators.dataset import read_manifest, read_split
from vgrc.evaluators.errors import DatasetFolderError, InvalidInputError

__all__ = ["RetrievalSet", "load_retrieval", "object_phrase", "object_tuples"]

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
    relevant : list of int arrays, gallery indices relevant to each query
    """

    ids: list[str]
    captions: list[str]
    objects: list[list[dict]]
    image_paths: list[Path]
    relevant: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, idx) -> "RetrievalSet":
        idx = list(idx)
        out = RetrievalSet([self.ids[i] for i in idx], [self.captions[i] for i in idx], [self.objects[i] for i in idx], [self.image_paths[i] for i in idx])
        out.relevant = _relevance(out.captions)
        return out


def _relevance(captions: list[str]) -> list[np.ndarray]:
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(captions):
        groups.setdefault(" ".join(c.lower().split()), []).append(i)
    return [np.array(groups[" ".join(c.lower().split())]) for c in captions]


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
) -> tuple[RetrievalSet, RetrievalSet | None, dict]:
    """Evaluation rows, fit rows (or None) and a description of the partition.

    ``limit`` keeps a seeded subset of the evaluation rows (smoke runs); the fit rows are
    drawn before it, so they never overlap.
    """
    path = Path(path)
    manifest = read_manifest(path)
    split = split or default_split(manifest)
    if not 0.0 <= fit_fraction < 1.0:
        raise InvalidInputError(f"--fit-fraction must be in [0, 1), got {fit_fraction}")
    rows = read_split(path, split)
    if not rows:
        raise DatasetFolderError(f"split {split!r} of {path} is empty")
    full = _rows_to_set(path, split, rows)
    order = list(range(len(full)))
    random.Random(f"fit:{seed}").shuffle(order)
    fit = None
    if fit_split:
        if fit_split == split:
            raise InvalidInputError("--fit-split must differ from the evaluated --split")
        fit = _rows_to_set(path, fit_split, read_split(path, fit_split))
        fit.relevant = _relevance(fit.captions)
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
    }
    return evaluated, fit, info
