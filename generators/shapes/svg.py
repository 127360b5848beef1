"""Vocabulary and SVG geometry of the Synthetic Shapes dataset (paper §3, App. E).

Six shapes × seven colors = 42 primitives. Circles are ``<circle>``, squares ``<rect>``,
and the triangle, pentagon, hexagon and star are ``<polygon>`` elements whose vertices are
computed here (the star is a 10-vertex polygon). Every shape is centred on its slot and
fits inside the slot's circle of radius ``r``, so primitives at different slots never
touch the same pixel.

The registries are plain dicts; :func:`list_shapes` / :func:`list_colors` give their
names in canonical order, which is also the enumeration order of the dataset.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from vgrc.evaluators.errors import InvalidInputError

__all__ = [
    "SHAPES",
    "COLORS",
    "Primitive",
    "Slot",
    "list_shapes",
    "list_colors",
    "select_vocabulary",
    "primitive_vertices",
    "primitive_svg_element",
    "primitive_bbox",
    "composition_slots",
    "reference_slot",
    "canvas_svg",
    "MIN_SIZE",
]

#: shape name -> number of polygon vertices (0 = circle, 4 = axis-aligned square as <rect>).
SHAPES: dict[str, int] = {
    "circle": 0,
    "square": 4,
    "triangle": 3,
    "pentagon": 5,
    "hexagon": 6,
    "star": 10,
}

#: color name -> RGB. Seven hues far apart from each other and from the white canvas,
#: taken from the CSS named colors so the name matches what a model has seen.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "orange": (255, 165, 0),
    "yellow": (255, 215, 0),
    "green": (0, 128, 0),
    "blue": (0, 0, 255),
    "purple": (128, 0, 128),
    "black": (0, 0, 0),
}

#: Inner/outer radius ratio of the star: fat enough that its centre pixel is solid.
STAR_INNER_RATIO = 0.5
#: Smallest canvas at which the three slots stay clearly apart (gaps ≥ 3.2 px).
MIN_SIZE = 32


@dataclass(frozen=True)
class Primitive:
    """One colored shape, e.g. ``Primitive("star", "green")``."""

    shape: str
    color: str

    @property
    def name(self) -> str:
        """Caption phrase, ``"green star"``."""
        return f"{self.color} {self.shape}"

    @property
    def slug(self) -> str:
        """File-name-safe key, ``"green_star"``."""
        return f"{self.color}_{self.shape}"

    @property
    def rgb(self) -> tuple[int, int, int]:
        return COLORS[self.color]


@dataclass(frozen=True)
class Slot:
    """A fixed position on the canvas: centre (cx, cy) and radius r, in pixels."""

    cx: float
    cy: float
    r: float


def list_shapes() -> list[str]:
    """Shape names in canonical order."""
    return list(SHAPES)


def list_colors() -> list[str]:
    """Color names in canonical order."""
    return list(COLORS)


def _select(kind: str, requested, registry: dict) -> list[str]:
    if not requested:
        return list(registry)
    names = []
    for item in requested:
        names.extend(part.strip().lower() for part in str(item).split(",") if part.strip())
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise InvalidInputError(
            f"unknown {kind} {', '.join(repr(u) for u in unknown)}; valid {kind}s: {', '.join(registry)}"
        )
    if not names:
        raise InvalidInputError(f"--{kind}s is empty; valid {kind}s: {', '.join(registry)}")
    # canonical order, duplicates dropped, so the same subset always enumerates the same way
    return [n for n in registry if n in set(names)]


def select_vocabulary(shapes=None, colors=None) -> list[Primitive]:
    """The primitives of a (sub)vocabulary in canonical order: shape-major, then color.

    Parameters
    ----------
    shapes, colors : iterable of str, optional
        Names, possibly comma-separated (``["circle,star"]``). ``None`` or empty = all.

    Raises
    ------
    InvalidInputError
        An unknown name; the message lists the valid ones.
    """
    shape_names = _select("shape", shapes, SHAPES)
    color_names = _select("color", colors, COLORS)
    return [Primitive(s, c) for s in shape_names for c in color_names]


# --------------------------------------------------------------------------- geometry


def composition_slots(size: int) -> tuple[Slot, Slot, Slot]:
    """The three fixed slots of a composition image: two on top, one below, centred.

    Circles of radius 0.2·size at (0.25, 0.27), (0.75, 0.27) and (0.5, 0.73) of the
    canvas: the closest pair of slot circles (the top two) is 0.1·size apart.
    """
    r = 0.2 * size
    return (
        Slot(0.25 * size, 0.27 * size, r),
        Slot(0.75 * size, 0.27 * size, r),
        Slot(0.50 * size, 0.73 * size, r),
    )


def reference_slot(size: int) -> Slot:
    """The single centred slot of a reference (single-primitive) image."""
    return Slot(0.5 * size, 0.5 * size, 0.3 * size)


def primitive_vertices(shape: str, slot: Slot) -> list[tuple[float, float]]:
    """Polygon vertices of ``shape`` centred in ``slot``, first vertex pointing up.

    Regular polygons have their vertices on the slot circle; the star alternates the
    outer radius ``r`` and the inner radius ``STAR_INNER_RATIO · r`` (10 vertices); the
    square is axis-aligned and inscribed in the circle (4 vertices). A circle has none.
    """
    n = SHAPES[shape]
    if n == 0:
        return []
    if shape == "square":
        h = slot.r / math.sqrt(2.0)
        return [
            (slot.cx - h, slot.cy - h),
            (slot.cx + h, slot.cy - h),
            (slot.cx + h, slot.cy + h),
            (slot.cx - h, slot.cy + h),
        ]
    radii = [slot.r, slot.r * STAR_INNER_RATIO] if shape == "star" else [slot.r]
    return [
        (
            slot.cx + radii[i % len(radii)] * math.cos(-math.pi / 2 + 2 * math.pi * i / n),
            slot.cy + radii[i % len(radii)] * math.sin(-math.pi / 2 + 2 * math.pi * i / n),
        )
        for i in range(n)
    ]


@functools.lru_cache(maxsize=1024)
def _bbox(shape: str, slot: Slot) -> tuple[float, float, float, float]:
    pts = primitive_vertices(shape, slot)
    if not pts:
        x0, y0, x1, y1 = slot.cx - slot.r, slot.cy - slot.r, slot.cx + slot.r, slot.cy + slot.r
    else:
        xs, ys = zip(*pts)
        x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
    return (round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2))


def primitive_bbox(shape: str, slot: Slot) -> list[float]:
    """Bounding box ``[x, y, w, h]`` in pixels of the shape's geometry, rounded to 0.01 px."""
    return list(_bbox(shape, slot))


def _fmt(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")


def primitive_svg_element(prim: Primitive, slot: Slot) -> str:
    """The SVG element drawing ``prim`` in ``slot``: ``<circle>``, ``<rect>`` or ``<polygon>``."""
    fill = "#{:02x}{:02x}{:02x}".format(*prim.rgb)
    if prim.shape == "circle":
        return f'<circle cx="{_fmt(slot.cx)}" cy="{_fmt(slot.cy)}" r="{_fmt(slot.r)}" fill="{fill}"/>'
    pts = primitive_vertices(prim.shape, slot)
    if prim.shape == "square":
        (x0, y0), (x1, y1) = pts[0], pts[2]
        return (
            f'<rect x="{_fmt(x0)}" y="{_fmt(y0)}" width="{_fmt(x1 - x0)}" '
            f'height="{_fmt(y1 - y0)}" fill="{fill}"/>'
        )
    coords = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in pts)
    return f'<polygon points="{coords}" fill="{fill}"/>'


def canvas_svg(size: int, placed: list[tuple[Primitive, Slot]]) -> str:
    """A complete SVG document: white canvas of ``size``² px with the placed primitives."""
    body = "".join(primitive_svg_element(p, s) for p, s in placed)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}"><rect x="0" y="0" width="{size}" height="{size}" '
        f'fill="#ffffff"/>{body}</svg>'
    )
