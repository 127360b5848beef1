"""CLEVR-HOPE (and CLEVR) scenes → the dataset folder contract (paper §3, App. A, J; Table 3).

Source: a CLEVR scene file ``{"info": …, "scenes": [{"image_index", "image_filename",
"split", "objects": [{"shape", "color", "material", "size", "3d_coords", "pixel_coords",
"rotation"}], "relationships": {"left", "right", "front", "behind"}, …}]}``. CLEVR-HOPE
adds keys such as ``camera_jitter`` and ``reuse_filename``; a trimmed variant drops
``rotation`` / ``pixel_coords``. Only shape, colour, material and size are read. The file
(hundreds of MB for a full CLEVR split) is streamed; memory holds only the subset.

The paper's subset: ``--subset`` (1,000) images with at least ``--min-objects`` (2)
objects, drawn uniformly with ``--seed`` (reservoir sampling over the file, so the draw
is the same for the same file and seed). Images missing on disk are counted and
skipped; the draw continues so the subset stays full when it can.

Rows: ``objects`` = one entry per scene object, noun = shape, attributes = [size, colour,
material] with CLEVR's "metal" written "metallic" as in the paper's example; captions
from ``--template`` (default ``"a photo of {objects}."``, the paper's, final period included, objects joined as "a large red
rubber sphere and a small blue metallic cube", with commas before the last "and" for
three or more); ``caption_objects`` = ``objects`` (whole-scene queries);
``relationships`` kept as released; ``image_index``, ``split``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from vgrc.evaluators.errors import InvalidInputError
from vgrc.generators.importers._common import ImportResult, relative_file_name, write_import
from vgrc.generators._util.json_stream import iter_json_array

__all__ = ["import_clevr_hope", "scene_caption", "DEFAULT_TEMPLATE"]

DEFAULT_TEMPLATE = "a photo of {objects}."  # §3: "a photo of a large red rubber sphere and a small blue metallic cube."
MATERIAL_WORDS = {"metal": "metallic", "rubber": "rubber"}
SPLIT = "scenes"


def _article(phrase: str) -> str:
    return "an" if phrase[:1] in "aeiou" else "a"


def scene_objects(scene: dict, where: str) -> list[dict]:
    objects = []
    for i, o in enumerate(scene.get("objects") or []):
        try:
            attrs = [o["size"], o["color"], MATERIAL_WORDS.get(o["material"], o["material"])]
            objects.append({"noun": o["shape"], "attributes": attrs, "bbox": None, "source": "annotation"})
        except (KeyError, TypeError):
            raise InvalidInputError(f"{where}: object {i} needs shape, color, material and size") from None
    return objects


def scene_caption(objects: list[dict], template: str = DEFAULT_TEMPLATE) -> str:
    """``"a photo of a large red rubber sphere and a small blue metallic cube."``."""
    phrases = [" ".join([*o["attributes"], o["noun"]]) for o in objects]
    named = [f"{_article(p)} {p}" for p in phrases]
    joined = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    return template.format(objects=joined)


def import_clevr_hope(
    scenes: str | os.PathLike,
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    subset: int | None = 1000,
    min_objects: int = 2,
    seed: int = 0,
    template: str = DEFAULT_TEMPLATE,
    overwrite: bool = False,
    command: str = "vgrc import clevr-hope",
    on_progress=None,
) -> ImportResult:
    """Import a seeded subset of CLEVR(-HOPE) scenes (see the module documentation)."""
    scenes, images, out = Path(scenes), Path(images), Path(out)
    if subset is not None and subset < 1:
        raise InvalidInputError(f"--subset must be ≥ 1, got {subset}")
    if min_objects < 1:
        raise InvalidInputError(f"--min-objects must be ≥ 1, got {min_objects}")
    try:
        template.format(objects="x")
    except (KeyError, IndexError, ValueError):
        raise InvalidInputError(f"--template {template!r} must use only {{objects}}") from None
    if "{objects}" not in template:
        raise InvalidInputError(f"--template {template!r} has no {{objects}}")
    if not scenes.is_file():
        raise InvalidInputError(f"--scenes {scenes} is not a file; expected a CLEVR scenes JSON (e.g. CLEVR_val_scenes.json)")
    if not images.is_dir():
        raise InvalidInputError(f"--images {images} is not a folder; expected the scenes' images")
    rng = random.Random(f"clevr-hope:{seed}")
    chosen: list[tuple[int, dict]] = []
    seen = eligible = missing = 0
    size = os.path.getsize(scenes)
    for n, scene in enumerate(iter_json_array(scenes, key="scenes", on_offset=(lambda c: on_progress(c, size)) if on_progress else None)):
        seen += 1
        if not isinstance(scene, dict) or "image_filename" not in scene:
            raise InvalidInputError(f"{scenes}: scene {n} has no image_filename")
        if len(scene.get("objects") or []) < min_objects:
            continue
        if not (images / scene["image_filename"]).is_file():
            missing += 1
            continue
        eligible += 1
        compact = {"image_filename": scene["image_filename"], "image_index": scene.get("image_index", n), "split": scene.get("split"),
                   "objects": scene_objects(scene, f"{scenes}: scene {n}"), "relationships": scene.get("relationships")}
        if subset is None or len(chosen) < subset:
            chosen.append((n, compact))
        else:  # reservoir sampling (Algorithm R): every eligible scene equally likely
            j = rng.randrange(eligible)
            if j < subset:
                chosen[j] = (n, compact)
    if not chosen:
        raise InvalidInputError(f"{scenes}: no scene has ≥ {min_objects} objects and its image in {images} ({seen} scenes, {missing} images missing)")
    chosen.sort(key=lambda t: t[0])
    split_dir = out / SPLIT
    rows = []
    for n, sc in chosen:
        rows.append({
            "id": Path(sc["image_filename"]).stem,
            "file_name": relative_file_name(images / sc["image_filename"], split_dir),
            "caption": scene_caption(sc["objects"], template),
            "objects": sc["objects"],
            "caption_objects": sc["objects"],
            "relationships": sc["relationships"],
            "image_index": sc["image_index"],
            "split": sc["split"],
        })
    counts = {"scenes_in_file": seen, "eligible": eligible, "images_missing": missing, "rows": len(rows),
              "objects_per_image": {str(k): sum(1 for r in rows if len(r["objects"]) == k) for k in sorted({len(r["objects"]) for r in rows})}}
    record = {"scenes": str(scenes.resolve()), "images": str(images.resolve()), "subset": subset, "min_objects": min_objects, "seed": seed, "template": template}
    result = write_import(
        out, "clevr-hope", record, {SPLIT: rows}, card="clevr_hope", command=command, sources=[scenes], counts=counts, seed=seed,
        card_values={"rows": f"{len(rows):,}", "scenes": f"{seen:,}", "eligible": f"{eligible:,}", "missing": f"{missing:,}",
                     "min_objects": min_objects, "template": template, "example": rows[0]["caption"]},
        objects_source="CLEVR scene annotations (shape, size, colour, material)",
        recommended={"unmatched_cost": 1.0, "surplus_cost": 1.0}, overwrite=overwrite,
    )
    result.missing_images = missing
    return result
