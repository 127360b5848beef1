"""SugarCrepe → the dataset folder contract (paper §3, App. F; Table 4).

Source (the official release, pinned: github.com/RAIVNLab/sugar-crepe, ``data/``):
``{add_att, add_obj, replace_att, replace_obj, replace_rel, swap_att, swap_obj}.json``,
each a JSON object keyed by string integers (not contiguous: one key was deleted
upstream), values ``{"filename": "000000xxxxxx.jpg", "caption": …, "negative_caption": …}``.
Images are COCO val2017, found by file name and reused by many records.

Output: ONE split ``test`` with a ``category`` column (so one eval covers all categories
and the per-category breakdown comes from the column), one row per record:
``id`` (``category-key``), ``file_name`` (into the user's COCO folder, not copied),
``caption`` and ``negative_caption`` (white space normalised: stray spaces, newlines and
doubled spaces folded), ``caption_raw`` / ``negative_caption_raw`` (as released),
``category``, ``key``, ``objects``, ``caption_objects`` and ``negative_caption_objects``
(for ``vgrc eval --task itm``'s reranked scores).

Objects: with ``--coco-annotations instances_val2017.json`` the image's ``objects`` are
its COCO instances (category name as noun, box as bbox); otherwise they are parsed from
the positive caption (``--object-parser``), an oracle that the outputs name. A query's
``caption_objects`` are always parsed from its caption. The paper counts 7,512 records;
the current release has 7,511. Counts per category and every source file's sha256 go
into the manifest.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from vgrc.evaluators.errors import InvalidInputError
from vgrc.generators.importers._common import ImportResult, load_json, normalize_text, relative_file_name, write_import
from vgrc.evaluators.objects.parsers import get_object_parser

__all__ = ["CATEGORIES", "SOURCE", "import_sugarcrepe"]

CATEGORIES = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
SOURCE = {"repository": "https://github.com/RAIVNLab/sugar-crepe", "folder": "data", "paper_records": 7512, "release_records": 7511}
SPLIT = "test"


def _find_data(src: Path) -> Path:
    for folder in (src / "data", src):
        if any((folder / f"{c}.json").is_file() for c in CATEGORIES):
            return folder
    raise InvalidInputError(f"--src {src}: no SugarCrepe files ({', '.join(c + '.json' for c in CATEGORIES)}) in it or in its data/ folder")


def _coco_objects(path: Path) -> dict[str, list[dict]]:
    coco = load_json(path, "COCO instances_val2017.json")
    try:
        names = {c["id"]: c["name"] for c in coco["categories"]}
        files = {im["id"]: im["file_name"] for im in coco["images"]}
        objects: dict[str, list[dict]] = {}
        for ann in coco["annotations"]:
            objects.setdefault(files[ann["image_id"]], []).append(
                {"noun": names[ann["category_id"]], "attributes": [], "bbox": [round(float(v), 2) for v in ann["bbox"]], "source": "annotation"}
            )
    except (KeyError, TypeError) as exc:
        raise InvalidInputError(f"{path}: not a COCO instances file (missing {exc})") from None
    return objects


def import_sugarcrepe(
    src: str | os.PathLike,
    coco_images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    coco_annotations: str | os.PathLike | None = None,
    object_parser: str = "rules",
    parser_model: str | None = None,
    overwrite: bool = False,
    command: str = "vgrc import sugarcrepe",
) -> ImportResult:
    """Import SugarCrepe (see the module documentation); rows whose COCO image is missing
    are dropped and counted."""
    src, images, out = Path(src), Path(coco_images), Path(out)
    if not images.is_dir():
        raise InvalidInputError(f"--coco-images {images} is not a folder; expected COCO val2017 images (000000xxxxxx.jpg)")
    parse = get_object_parser(object_parser, parser_model)
    data = _find_data(src)
    coco = _coco_objects(Path(coco_annotations)) if coco_annotations else None
    present = {p.name for p in images.iterdir()}
    split_dir = out / SPLIT
    rows, counts, missing, sources = [], Counter(), Counter(), []
    absent = [c for c in CATEGORIES if not (data / f"{c}.json").is_file()]
    for category in CATEGORIES:
        path = data / f"{category}.json"
        if not path.is_file():
            continue
        sources.append(path)
        records = load_json(path, f"a SugarCrepe {category} file")
        if not isinstance(records, dict):
            raise InvalidInputError(f"{path}: expected a JSON object keyed by record number, got {type(records).__name__}")
        for key in sorted(records, key=lambda k: (len(k), k)):
            rec = records[key]
            if not isinstance(rec, dict) or not all(isinstance(rec.get(f), str) for f in ("filename", "caption", "negative_caption")):
                raise InvalidInputError(f"{path}: record {key!r} needs string fields filename, caption, negative_caption")
            if rec["filename"] not in present:
                missing[category] += 1
                continue
            caption = normalize_text(rec["caption"])
            named = parse(caption)
            rows.append({
                "id": f"{category}-{key}",
                "file_name": relative_file_name(images / rec["filename"], split_dir),
                "caption": caption,
                "negative_caption": normalize_text(rec["negative_caption"]),
                "caption_raw": rec["caption"],
                "negative_caption_raw": rec["negative_caption"],
                "category": category,
                "key": key,
                "objects": coco.get(rec["filename"], []) if coco is not None else named,
                "caption_objects": named,
                "negative_caption_objects": parse(normalize_text(rec["negative_caption"])),
            })
            counts[category] += 1
    if not rows:
        raise InvalidInputError(f"no SugarCrepe record has its image in --coco-images {images} ({sum(missing.values())} missing)")
    total = {"records": len(rows), "per_category": dict(counts), "missing_images": dict(missing), "absent_categories": absent,
             "images": len({r["file_name"] for r in rows}), "llm_answers_unparsable": getattr(parse, "unparsable", None)}
    record = {"src": str(data.resolve()), "coco_images": str(images.resolve()), "coco_annotations": str(Path(coco_annotations).resolve()) if coco_annotations else None,
              "object_parser": object_parser, "parser_model": parser_model if object_parser == "llm" else None}
    objects_source = "COCO instance annotations (images); captions parsed by " + object_parser if coco else f"parsed from the positive captions by the {object_parser} parser"
    table = "\n".join(f"| {c} | {counts[c]:,} | {missing[c]:,} |" for c in CATEGORIES)
    result = write_import(
        out, "sugarcrepe", record, {SPLIT: rows}, card="sugarcrepe", command=command, sources=sources, counts=total,
        card_values={"records": f"{len(rows):,}", "images": f"{total['images']:,}", "category_table": table, "objects_source": objects_source},
        objects_source=objects_source, recommended={"unmatched_cost": 1.0, "surplus_cost": 0.0}, overwrite=overwrite,
        # without COCO's instances, an image's objects ARE its positive caption's: reranked ITM would be circular
        extra={"source": SOURCE, "image_objects_from_captions": not coco},
    )
    result.missing_images = sum(missing.values())
    return result
