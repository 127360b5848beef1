"""Reading Visual Genome's files: one attributes record normalised (white space, case,
synonyms, duplicates; every repair counted) and where each image lives on disk."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from vgrc.generators._util.json_stream import iter_json_array
from vgrc.generators.vg.contrasts import normalize_term

__all__ = ["normalize_record", "image_locations"]


def _clean(text, repairs: Counter, kind: str) -> str:
    if not isinstance(text, str):
        repairs[f"{kind}_not_text_dropped"] += 1
        return ""
    out = normalize_term(text)
    if not out:
        repairs[f"{kind}_empty_dropped"] += 1
        return ""
    if out != text:
        if text.strip() != text or "  " in text or "\t" in text or "\n" in text:
            repairs[f"{kind}_whitespace_repaired"] += 1
        if text.strip().rstrip(".") != text.strip():
            repairs[f"{kind}_trailing_period_removed"] += 1
        if text.lower() != text:
            repairs[f"{kind}_case_repaired"] += 1
    return out


def normalize_record(rec, repairs: Counter) -> tuple[str, list[dict]] | None:
    """``(image_id, objects)`` of one attributes.json record, repairs counted; None to drop it."""
    if not isinstance(rec, dict):
        repairs["records_not_object_dropped"] += 1
        return None
    image_id = rec.get("image_id")
    if image_id is None and "id" in rec:
        image_id = rec["id"]
        repairs["records_v1_id_key"] += 1
    if image_id is None:
        repairs["records_without_image_id_dropped"] += 1
        return None
    raw_objects = rec.get("attributes")
    if raw_objects is None:
        raw_objects = rec.get("objects", [])
    if not isinstance(raw_objects, list):
        repairs["records_bad_objects_dropped"] += 1
        raw_objects = []
    objects = []
    for obj in raw_objects:
        if not isinstance(obj, dict):
            repairs["objects_not_object_dropped"] += 1
            continue
        if "names" in obj:
            names = obj["names"] if isinstance(obj["names"], list) else [obj["names"]]
        elif "name" in obj:
            names = [obj["name"]]
            repairs["objects_name_string"] += 1
        elif "object_names" in obj:
            names = obj["object_names"] if isinstance(obj["object_names"], list) else [obj["object_names"]]
            repairs["objects_v1_object_names_key"] += 1
        else:
            names = []
        noun = next((n for n in (_clean(x, repairs, "noun") for x in names) if n), "")
        if not noun:
            repairs["objects_without_name_dropped"] += 1
            continue
        if "attributes" not in obj or obj["attributes"] is None:
            repairs["objects_without_attributes"] += 1
            attrs_raw = []
        else:
            attrs_raw = obj["attributes"] if isinstance(obj["attributes"], list) else [obj["attributes"]]
        attrs = []
        for a in attrs_raw:
            term = _clean(a, repairs, "attribute")
            if term and term not in attrs:
                attrs.append(term)
            elif term:
                repairs["attribute_duplicates_merged"] += 1
        box = [obj.get(k) for k in ("x", "y", "w", "h")]
        bbox = [float(v) for v in box] if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box) else None
        objects.append({"noun": noun, "attributes": attrs, "bbox": bbox})
    return str(image_id), objects


def image_locations(vg_dir: Path) -> tuple[dict[str, tuple[str, int | None, int | None]], bool]:
    """image id -> (folder, width, height) from image_data.json when present."""
    path = vg_dir / "image_data.json"
    if not path.exists():
        return {}, False
    out = {}
    for rec in iter_json_array(path):
        if not isinstance(rec, dict):
            continue
        image_id = rec.get("image_id", rec.get("id"))
        if image_id is None:
            continue
        url = str(rec.get("url") or "")
        folder = "VG_100K_2" if "/VG_100K_2/" in url else "VG_100K"
        out[str(image_id)] = (folder, rec.get("width"), rec.get("height"))
    return out, True
