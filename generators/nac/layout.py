"""Where a NAC dataset keeps its files: shared by generation (:mod:`.generate`) and the merge
(:mod:`.merge`), so neither imports the other's internals."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATASET", "SPLIT", "FILES", "image_paths", "nac_files"]

DATASET = "nac"
SPLIT = "pairs"
#: the files build-nac writes beside its images (each image is recorded by name too:
#: :func:`nac_files`; the record is what --overwrite may delete)
FILES = ("README.md", "prompts.jsonl", "judgments.jsonl", "pairs/metadata.jsonl", "steering.jsonl", "stats.csv", "stats.md")


def image_paths(out: Path, pair) -> tuple[Path, Path]:
    """The two images of a pair (poles a and b)."""
    base = Path(out) / SPLIT / "images"
    return base / f"{pair.pair_id}_a.png", base / f"{pair.pair_id}_b.png"


def nac_files(pairs) -> list[str]:
    """Every file a build-nac build of ``pairs`` writes, by exact relative path."""
    return [*FILES, *(f"{SPLIT}/images/{p.pair_id}_{pole}.png" for p in pairs for pole in "ab")]
