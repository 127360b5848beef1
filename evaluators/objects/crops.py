"""``--candidate-objects boxes`` and ``grid``: regions that are crops of the image.

``boxes`` cuts the annotated boxes (``bbox`` ``[x, y, w, h]`` in pixels, as every vgrc
builder writes them) and ignores their labels: one region per annotated object, uniform
weights, as the annotation sets. ``grid`` cuts every cell of an ``s × s`` grid for each
scale ``s`` of ``--grid-scales`` (default 2 and 3: 13 regions), uniform weights: the
baseline that knows nothing about objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from vgrc.evaluators.objects.candidates import CandidateObjects, region_pixels_option
from vgrc.evaluators.registry import option

__all__ = ["Boxes", "Grid", "parse_scales", "grid_boxes", "image_sizes"]


@dataclass
class BoxesOptions:
    region_pixels: str = region_pixels_option()


@dataclass
class GridOptions:
    region_pixels: str = region_pixels_option()
    grid_scales: str = option("2,3", "--grid-scales", "grid: comma-separated grid sizes; s cuts the image into s × s cells (2,3: 13 regions).")


def image_sizes(paths) -> list[tuple[int, int]]:
    """``(width, height)`` of every image, from its header."""
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(im.size)
    return out


class Boxes(CandidateObjects):
    name = "boxes"
    help = "the annotated boxes (not their labels) cropped and embedded by the image tower"
    Options = BoxesOptions
    needs_boxes = True
    one_per_object = True

    def sets(self, run, options):
        from vgrc.evaluators.objects.regions import clamp_box, encode_boxes

        sizes = image_sizes(run.ev.image_paths)
        boxes = []
        for objs, (w, h) in zip(run.ev.objects, sizes):
            found = [clamp_box(o["bbox"], w, h) for o in objs if o.get("bbox") is not None]
            boxes.append([b for b in found if b is not None])
        return encode_boxes(run.setup, run.ev.image_paths, boxes, options.region_pixels, run.ev_img, run.progress, "encoding boxes")


def parse_scales(text: str) -> list[int]:
    from vgrc.evaluators.errors import InvalidInputError

    try:
        scales = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        scales = []
    if not scales or any(s < 1 or s > 16 for s in scales) or len(set(scales)) != len(scales):
        raise InvalidInputError(f"--grid-scales {text!r}: expected distinct comma-separated sizes from 1 to 16, e.g. 2,3")
    return scales


def grid_boxes(width: int, height: int, scales: list[int]) -> list[tuple[int, int, int, int]]:
    """Every cell ``(left, top, right, bottom)`` of each ``s × s`` grid, row by row."""
    out = []
    for s in scales:
        xs = [round(width * i / s) for i in range(s + 1)]
        ys = [round(height * i / s) for i in range(s + 1)]
        out.extend((xs[c], ys[r], xs[c + 1], ys[r + 1]) for r in range(s) for c in range(s) if xs[c + 1] - xs[c] >= 2 and ys[r + 1] - ys[r] >= 2)
    return out


class Grid(CandidateObjects):
    name = "grid"
    help = "multi-scale grid cells cropped and embedded by the image tower (the baseline)"
    Options = GridOptions

    def check(self, options, manifest) -> None:
        parse_scales(options.grid_scales)

    def sets(self, run, options):
        from vgrc.evaluators.objects.regions import encode_boxes

        scales = parse_scales(options.grid_scales)
        boxes = [grid_boxes(w, h, scales) for w, h in image_sizes(run.ev.image_paths)]
        return encode_boxes(run.setup, run.ev.image_paths, boxes, options.region_pixels, run.ev_img, run.progress, "encoding grid cells")
