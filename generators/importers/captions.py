"""Your own images and captions → the dataset folder contract, so vgrc runs on any collection.

``--captions FILE`` is ``.jsonl`` (one object per line) or ``.csv`` (a header row), with
``file_name`` (relative to ``--images``, or absolute) and ``caption``, and optionally
``objects`` (a list of ``{"noun", "attributes"}``; in a CSV, that list as JSON text) and
``id``. Rows without ``objects`` get them parsed from the caption (``--object-parser``),
and each object records where it came from. A missing image is counted and skipped; a
malformed line gets one error line with the file and line number.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from vgrc.evaluators.errors import InvalidInputError, warn
from vgrc.evaluators.user_files import open_text, reading
from vgrc.generators.importers._common import ImportResult, normalize_text, relative_file_name, write_import
from vgrc.evaluators.objects.parsers import get_object_parser

__all__ = ["import_captions"]

SPLIT = "images"


def _records(path: Path):
    """(line number, record) pairs of a .jsonl or .csv captions file (UTF-8, with or without
    the byte-order mark spreadsheet programs write)."""
    kind = path.suffix.lower()
    if kind not in (".jsonl", ".csv"):
        raise InvalidInputError(f"--captions {path}: expected a .jsonl or .csv file")
    with reading(path, "--captions"):
        with open_text(path, "--captions", newline="" if kind == ".csv" else None) as fh:
            if kind == ".jsonl":
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            yield n, json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise InvalidInputError(f"{path}:{n}: not valid JSON ({exc.msg} at column {exc.colno})") from None
                return
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                return
            missing = [c for c in ("file_name", "caption") if c not in reader.fieldnames]
            if missing:
                raise InvalidInputError(
                    f"--captions {path}: the header has no {' and no '.join(repr(c) for c in missing)} column "
                    f"(its columns: {', '.join(map(repr, reader.fieldnames))}); the first row must name file_name and caption"
                )
            for n, rec in enumerate(reader, 2):
                yield n, rec


def _objects(value, where: str) -> list[dict] | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InvalidInputError(f"{where}: 'objects' is not a JSON list") from None
    if not isinstance(value, list) or not all(isinstance(o, dict) and isinstance(o.get("noun"), str) for o in value):
        raise InvalidInputError(f"{where}: 'objects' must be a list of {{\"noun\": ..., \"attributes\": [...]}}")
    return [{"noun": o["noun"], "attributes": [str(a) for a in o.get("attributes", [])], "bbox": o.get("bbox"), "source": "annotation"} for o in value]


def import_captions(
    images: str | os.PathLike, captions: str | os.PathLike, out: str | os.PathLike, *, object_parser: str = "rules",
    parser_model: str | None = None, overwrite: bool = False, command: str = "vgrc import captions",
) -> ImportResult:
    """Import your own captioned images (see the module documentation)."""
    images, captions, out = Path(images), Path(captions), Path(out)
    if not images.is_dir():
        raise InvalidInputError(f"--images {images} is not a folder")
    if not captions.is_file():
        raise InvalidInputError(f"--captions {captions} is not a file; expected a .jsonl or .csv with file_name and caption")
    parse = get_object_parser(object_parser, parser_model)
    split_dir = out / SPLIT
    rows, missing, ids, parsed, empty, seen, first_missing = [], 0, set(), 0, [], 0, None
    for n, rec in _records(captions):
        seen += 1
        where = f"{captions}:{n}"
        if not isinstance(rec, dict) or not rec.get("file_name") or "caption" not in rec:
            raise InvalidInputError(f"{where}: needs 'file_name' and 'caption'")
        if not isinstance(rec["caption"], str):
            raise InvalidInputError(f"{where}: 'caption' must be text, got {rec['caption']!r}; write it in quotes")
        if not rec["caption"].strip():
            empty.append(n)
            continue
        image = Path(rec["file_name"]) if Path(rec["file_name"]).is_absolute() else images / rec["file_name"]
        if not image.is_file():
            missing += 1
            first_missing = first_missing or str(rec["file_name"])
            continue
        rid = str(rec.get("id") or Path(rec["file_name"]).with_suffix("").as_posix())
        if rid in ids:
            raise InvalidInputError(f"{where}: duplicate id {rid!r}")
        ids.add(rid)
        caption = normalize_text(rec["caption"])
        objects = _objects(rec.get("objects"), where)
        if objects is None:
            objects = parse(caption)
            parsed += 1
        rows.append({"id": rid, "file_name": relative_file_name(image, split_dir), "caption": caption, "objects": objects, "caption_objects": objects})
    if not seen:
        what = "the file is empty" if captions.stat().st_size == 0 else "no rows (a header, or blank lines, only)"
        raise InvalidInputError(f"--captions {captions}: {what}; expected one row per image with file_name and caption")
    if len(empty) == seen:
        raise InvalidInputError(f"--captions {captions}: every caption is empty ({seen} rows); nothing to import")
    if not rows:
        raise InvalidInputError(f"--captions {captions}: no row has its image in --images {images} ({missing} missing; first: {first_missing})")
    if empty:
        warn(f"--captions {captions}: {len(empty)} row(s) with an empty caption skipped (lines {', '.join(map(str, empty[:5]))}{', …' if len(empty) > 5 else ''})")
    counts = {"rows": len(rows), "images_missing": missing, "captions_empty": len(empty), "objects_parsed_rows": parsed,
              "objects_annotated_rows": len(rows) - parsed}
    if object_parser == "llm":
        counts["llm_answers_unparsable"] = parse.unparsable
    record = {"images": str(images.resolve()), "captions": str(captions.resolve()), "object_parser": object_parser, "parser_model": parser_model if object_parser == "llm" else None}
    source = f"the captions file's objects where given, else parsed by the {object_parser} parser (see each object's 'source')"
    result = write_import(
        out, "captions", record, {SPLIT: rows}, card="captions", command=command, sources=[captions], counts=counts,
        card_values={"rows": f"{len(rows):,}", "missing": f"{missing:,}", "objects_source": source},
        objects_source=source, recommended={"unmatched_cost": 1.0, "surplus_cost": 0.0}, overwrite=overwrite,
    )
    result.missing_images = missing
    return result
