"""Where a NAC dataset keeps its files: shared by generation (:mod:`.nac`) and the merge
(:mod:`.nac_merge`), so neither imports the other's internals."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATASET", "SPLIT", "FILES", "image_paths"]

DATASET = "nac"
SPLIT = "pairs"
#: every file build-nac writes (recorded in the manifest: what --overwrite may delete)
FILES = ("README.md", "prompts.jsonl", "judgments.jsonl", "pairs/metadata.jsonl", "pairs/images/*.png", "steering.jsonl", "stats.csv", "stats.md")


def image_paths(out: Path, pair) -> tuple[Path, Path]:
    """The two images of a pair (poles a and b)."""
    base = Path(out) / SPLIT / "images"
    return base / f"{pair.pair_id}_a.png", base / f"{pair.pair_id}_b.png"
