"""What every importer shares: the result record, reading JSON with positions in its
errors, image lookup with missing files counted, and writing the dataset folder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgrc.evaluators import __version__
from vgrc.evaluators.dataset import finish_dataset, prepare_output, read_manifest, sha256_file, write_jsonl
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.user_files import IMAGE_EXTENSIONS, read_text

__all__ = ["ImportResult", "load_json", "normalize_text", "write_import", "IMAGE_EXTENSIONS"]

ProgressFn = Callable[[int, int], None]


@dataclass
class ImportResult:
    out: Path
    state: str
    counts: dict = field(default_factory=dict)
    missing_images: int = 0
    manifest: dict = field(default_factory=dict)


def normalize_text(text: str) -> str:
    """Captions as they are encoded: stray leading/trailing white space, newlines and
    doubled spaces folded (the original text is kept beside it in the row)."""
    return " ".join(str(text).split())


def load_json(path: Path, what: str):
    """``json.load`` with one clear line for a missing, truncated or malformed file."""
    if not Path(path).exists():
        raise InvalidInputError(f"{path} is missing; expected {what}")
    text = read_text(path)  # unreadable, binary or not UTF-8: one line
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text) - 1 or exc.msg.startswith("Unterminated")
        why = "file ends early (truncated)" if truncated else exc.msg
        raise InvalidInputError(f"{path}: line {exc.lineno}, column {exc.colno}: {why}") from None


def write_import(
    out: Path,
    dataset: str,
    record: Mapping[str, Any],
    splits: Mapping[str, list[dict]],
    *,
    card: str,
    card_values: Mapping[str, Any],
    command: str,
    sources: Iterable[Path],
    counts: Mapping[str, Any],
    objects_source: str,
    recommended: Mapping[str, float],
    overwrite: bool,
    seed: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ImportResult:
    """Claim ``out``, write each split's ``metadata.jsonl``, the card, then the manifest
    (last) with the sources' sha256, the counts, where the objects came from, and the
    recommended reranker settings. A finished identical import is left as it is."""
    files = [f"{s}/metadata.jsonl" for s in splits] + ["README.md"]
    state = prepare_output(out, dataset, record, overwrite=overwrite, files=files)
    if state == "complete":
        return ImportResult(out=out, state=state, counts=dict(counts), manifest=read_manifest(out))
    for split, rows in splits.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        write_jsonl(out / split / "metadata.jsonl", rows)
    from vgrc.data_cards import render_card
    from vgrc.evaluators.dataset import atomic_write_text

    atomic_write_text(out / "README.md", render_card(card, vgrc_version=__version__, command=command, **card_values))
    manifest = finish_dataset(
        out, dataset, record, version=__version__, command=command, seed=seed, splits=list(splits), files=files,
        extra={
            "sources": {str(p): sha256_file(p) for p in sources},
            "counts": dict(counts),
            "objects_source": objects_source,
            "recommended": dict(recommended),
            **(extra or {}),
        },
    )
    return ImportResult(out=out, state=state, counts=dict(counts), manifest=manifest)


def relative_file_name(image: Path, split_dir: Path) -> str:
    """``file_name`` of a row whose image stays in the user's folder (not copied)."""
    return os.path.relpath(image.resolve(), split_dir.resolve())
