"""Urban1K → the dataset folder contract (paper §3, App. F; long-caption retrieval).

Source (Long-CLIP's Urban1K, pinned: huggingface.co/datasets/BeichenZhang/Urban1k):
``image/<stem>.jpg`` paired with ``caption/<stem>.txt`` by stem, 1,000 pairs. Long-CLIP's
own loader reads only the FIRST LINE of each caption file; vgrc reads the whole file by
default (white space normalised) and ``--first-line`` matches Long-CLIP.

Per-object sets: the long caption split into its parts, sentences then clauses, as the
part–whole decomposition of the CAFT seed paper (``caption_objects``). The candidate side
is decomposed the same way from the candidate's OWN caption (``objects``): an oracle, and
the outputs say so. An image without a caption file, or a caption file without an image,
is counted and skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from vgrc.evaluators.errors import InvalidInputError
from vgrc.generators.importers._common import IMAGE_EXTENSIONS, ImportResult, normalize_text, relative_file_name, write_import
from vgrc.evaluators.objects.parsers import split_parts

__all__ = ["import_urban1k", "SOURCE"]

SOURCE = {"dataset": "https://huggingface.co/datasets/BeichenZhang/Urban1k", "pairs": 1000}
SPLIT = "pairs"


def caption_parts(caption: str) -> list[dict]:
    """Sentences, then clauses, each one part (noun = the part's text, no attributes)."""
    return [{"noun": p, "attributes": [], "bbox": None, "source": "parsed:parts"} for p in split_parts(caption)]


def import_urban1k(
    src: str | os.PathLike, out: str | os.PathLike, *, first_line: bool = False, overwrite: bool = False, command: str = "vgrc import urban1k"
) -> ImportResult:
    """Import Urban1K (see the module documentation)."""
    src, out = Path(src), Path(out)
    image_dir, caption_dir = src / "image", src / "caption"
    for folder in (image_dir, caption_dir):
        if not folder.is_dir():
            raise InvalidInputError(f"--src {src}: no {folder.name}/ folder; expected Urban1K's image/ and caption/ folders")
    images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    captions = {p.stem: p for p in sorted(caption_dir.iterdir()) if p.suffix == ".txt"}
    split_dir = out / SPLIT
    rows = []
    for stem in sorted(set(images) & set(captions), key=lambda s: (len(s), s)):
        try:
            raw = captions[stem].read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{captions[stem]}: cannot be read ({exc})") from None
        text = raw.splitlines()[0] if first_line and raw.strip() else raw
        caption = normalize_text(text)
        if not caption:
            continue
        parts = caption_parts(caption)
        rows.append({"id": stem, "file_name": relative_file_name(images[stem], split_dir), "caption": caption,
                     "caption_raw": raw, "objects": parts, "caption_objects": parts})
    if not rows:
        raise InvalidInputError(f"--src {src}: no image/<stem> has a caption/<stem>.txt")
    counts = {"pairs": len(rows), "images_without_caption": len(set(images) - set(captions)),
              "captions_without_image": len(set(captions) - set(images)),
              "parts_per_caption_mean": round(sum(len(r["objects"]) for r in rows) / len(rows), 2)}
    record = {"src": str(src.resolve()), "first_line": first_line}
    objects_source = "parts (sentences, then clauses) of each row's own caption, queries and candidates alike: an oracle"
    result = write_import(
        out, "urban1k", record, {SPLIT: rows}, card="urban1k", command=command, sources=[], counts=counts,
        card_values={"pairs": f"{len(rows):,}", "reading": "the first line (as Long-CLIP)" if first_line else "the whole file",
                     "unpaired": counts["images_without_caption"] + counts["captions_without_image"]},
        objects_source=objects_source, recommended={"unmatched_cost": 1.0, "surplus_cost": 0.0}, overwrite=overwrite,
        # its "objects" are caption sentences, not nouns: no per-noun categories in reports
        extra={"source": SOURCE, "caption_files_sha256": _digest(captions[r["id"]] for r in rows), "query_categories": "none"},
    )
    result.missing_images = counts["captions_without_image"]
    return result


def _digest(paths) -> str:
    """One sha256 over the caption files in row order (1,000 files: one line in the manifest)."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()
