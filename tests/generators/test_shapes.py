"""Synthetic Shapes: enumeration, geometry, pixels, exactness, determinism, resume."""

import io
import math
import re
from collections import Counter

import numpy as np
import pytest
from helpers import SMALL_SHAPES, tree_digest
from PIL import Image

from vgrc.evaluators.dataset import read_manifest, read_split
from vgrc.evaluators.errors import InvalidInputError
from vgrc.generators.shapes.build import ShapesConfig, build_shapes, composition_row, composition_svg, count_compositions, iter_compositions, select_compositions
from vgrc.generators.shapes.svg import (
    COLORS,
    SHAPES,
    Primitive,
    composition_slots,
    primitive_svg_element,
    primitive_vertices,
    reference_slot,
    select_vocabulary,
)

# --------------------------------------------------------------------------- enumeration


def test_full_enumeration_counts_without_rendering():
    prims = select_vocabulary()
    assert len(prims) == 42 == len(SHAPES) * len(COLORS)
    assert count_compositions(42) == math.comb(44, 3) == 13_244
    combos = list(iter_compositions(42))
    assert len(combos) == 13_244
    assert len({tuple(sorted(c)) for c in combos}) == 13_244  # all distinct multisets
    rows = [composition_row([prims[i] for i in c], 224, 0) for c in combos]
    assert len({r["id"] for r in rows}) == 13_244
    assert len({r["caption"] for r in rows}) == 13_244
    # with replacement: 42 triples of one primitive, 42*41 with exactly one repeat
    repeats = Counter(len(set(c)) for c in combos)
    assert repeats == {1: 42, 2: 42 * 41, 3: math.comb(42, 3)}


@pytest.mark.parametrize("shapes, colors, n", [(["circle,star"], ["red"], 2), (["hexagon"], ["red", "blue", "black"], 3), (None, ["green"], 6)])
def test_subset_counts(shapes, colors, n):
    prims = select_vocabulary(shapes, colors)
    assert len(prims) == n
    assert len(select_compositions(n, None, 0)) == math.comb(n + 2, 3)


def test_subset_order_is_canonical():
    assert select_vocabulary(["star", "circle"], ["red"]) == select_vocabulary(["circle,star,star"], ["red"])
    assert [p.shape for p in select_vocabulary(["star", "circle"], ["red"])] == ["circle", "star"]


@pytest.mark.parametrize("kw, pattern", [({"shapes": ["blob"]}, "unknown shape 'blob'; valid shapes: circle, square, triangle, pentagon, hexagon, star"), ({"colors": ["teal", "red"]}, "unknown color 'teal'; valid colors: red, orange"), ({"shapes": [","]}, "--shapes is empty")])
def test_unknown_vocabulary(kw, pattern):
    with pytest.raises(InvalidInputError, match=re.escape(pattern)):
        select_vocabulary(**kw)


def test_limit_subset_is_seeded_and_ordered():
    a = select_compositions(42, 100, seed=3)
    assert a == select_compositions(42, 100, seed=3)
    assert a != select_compositions(42, 100, seed=4)
    assert len(a) == 100 and len(set(a)) == 100
    order = {c: i for i, c in enumerate(iter_compositions(42))}
    assert [order[c] for c in a] == sorted(order[c] for c in a)
    assert len(select_compositions(2, 100, 0)) == 4  # limit above the total keeps all


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("shape, n, tag", [("circle", 0, "<circle"), ("square", 4, "<rect"), ("triangle", 3, "<polygon"), ("pentagon", 5, "<polygon"), ("hexagon", 6, "<polygon"), ("star", 10, "<polygon")])
def test_vertex_counts_and_svg_elements(shape, n, tag):
    slot = composition_slots(224)[0]
    pts = primitive_vertices(shape, slot)
    assert len(pts) == n
    element = primitive_svg_element(Primitive(shape, "red"), slot)
    assert element.startswith(tag) and 'fill="#ff0000"' in element
    if tag == "<polygon":
        assert len(re.search(r'points="([^"]+)"', element).group(1).split()) == n
    radii = [math.hypot(x - slot.cx, y - slot.cy) for x, y in pts]
    if shape == "star":  # alternating outer / inner radius
        assert np.allclose(radii[0::2], slot.r) and np.allclose(radii[1::2], slot.r / 2)
    elif pts:  # regular polygons and the square: inscribed in the slot circle
        assert np.allclose(radii, slot.r)
        sides = [math.dist(pts[i], pts[(i + 1) % n]) for i in range(n)]
        assert np.allclose(sides, sides[0])


def test_slots_are_disjoint_and_inside_canvas():
    for size in (32, 64, 224, 512):
        slots = composition_slots(size)
        for s in slots:
            assert s.r <= s.cx <= size - s.r and s.r <= s.cy <= size - s.r
        gaps = [math.dist((a.cx, a.cy), (b.cx, b.cy)) - a.r - b.r for i, a in enumerate(slots) for b in slots[i + 1 :]]
        assert min(gaps) >= 0.1 * size - 1e-9 >= 3.1


def test_caption_sorted_and_objects_in_caption_order():
    prims = [Primitive("star", "red"), Primitive("circle", "blue"), Primitive("star", "green")]
    row = composition_row(prims, 224, 0)
    assert row["caption"] == "blue circle, green star, red star"
    assert row["id"] == "blue_circle-green_star-red_star"
    assert [f"{o['attributes'][0]} {o['noun']}" for o in row["objects"]] == row["caption"].split(", ")
    assert sorted(row["slots"]) == [0, 1, 2]
    slots = composition_slots(224)
    for obj, s in zip(row["objects"], row["slots"]):
        x, y, w, h = obj["bbox"]
        assert x <= slots[s].cx <= x + w and y <= slots[s].cy <= y + h


def test_layout_is_seeded_per_composition():
    prims = select_vocabulary()
    rows = [composition_row([prims[i] for i in c], 224, 0) for c in select_compositions(42, 300, 0)]
    layouts = Counter(tuple(r["slots"]) for r in rows)
    assert len(layouts) == 6  # all permutations occur
    again = [composition_row([prims[i] for i in c], 224, 0)["slots"] for c in select_compositions(42, 300, 0)]
    assert again == [r["slots"] for r in rows]


# --------------------------------------------------------------------------- built images


def test_pixel_at_each_primitive_center_is_its_color(shapes_dir):
    size = SMALL_SHAPES["size"]
    for split, slot_of in (("compositions", composition_slots(size)), ("primitives", [reference_slot(size)])):
        rows = read_split(shapes_dir, split)
        for row in rows:
            img = np.asarray(Image.open(shapes_dir / split / row["file_name"]))
            assert img.shape == (size, size, 3) and img.dtype == np.uint8
            assert tuple(img[0, 0]) == (255, 255, 255)  # white canvas
            for obj, s in zip(row["objects"], row["slots"]):
                slot = slot_of[s]
                assert tuple(img[int(slot.cy), int(slot.cx)]) == COLORS[obj["attributes"][0]], row["id"]


def test_composed_images_equal_direct_cairosvg_render(shapes_dir):
    """Tile composition is exact: the same pixels as cairosvg rendering the composition's SVG."""
    import cairosvg

    prims = select_vocabulary()
    by_caption = {r["caption"]: r for r in read_split(shapes_dir, "compositions")}
    combos = select_compositions(42, SMALL_SHAPES["limit"], SMALL_SHAPES["seed"])
    for c in combos[:25]:
        placed = [prims[i] for i in c]
        row = composition_row(placed, SMALL_SHAPES["size"], SMALL_SHAPES["seed"])
        assert by_caption[row["caption"]] == row
        png = cairosvg.svg2png(bytestring=composition_svg(placed, SMALL_SHAPES["size"], SMALL_SHAPES["seed"]).encode())
        direct = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        with Image.open(shapes_dir / "compositions" / row["file_name"]) as ours:
            assert ours.format == "PNG" and ours.mode == "RGB"
            assert np.array_equal(np.asarray(ours), direct), row["id"]


def test_manifest_card_and_counts(shapes_dir):
    manifest = read_manifest(shapes_dir)
    assert manifest["dataset"] == "shapes"
    assert {k: v["rows"] for k, v in manifest["splits"].items()} == {"compositions": 60, "primitives": 42}
    assert len(list((shapes_dir / "compositions" / "images").iterdir())) == 60
    assert len(list((shapes_dir / "primitives" / "images").iterdir())) == 42
    card = (shapes_dir / "README.md").read_text()
    assert card.startswith("---\n") and "split: compositions" in card
    assert "| purple | (128, 0, 128) | `#800080` |" in card
    assert "60 (of 13244)" in card and "vgrc gen-shapes (fixture)" in card
    assert "$" not in card.split("```")[0]  # every placeholder filled


def test_load_dataset_imagefolder(shapes_dir, tmp_path):
    from datasets import load_dataset

    cache = str(tmp_path / "hf-cache")  # not the user's cache: it may hold an older tmp build
    merged = load_dataset("imagefolder", data_dir=str(shapes_dir), cache_dir=cache)["train"]
    assert merged.num_rows == 102
    assert set(merged.column_names) == {"image", "id", "caption", "objects", "layout", "slots"}
    assert Counter(merged["layout"]) == {"composition": 60, "reference": 42}
    by_split = load_dataset(str(shapes_dir), cache_dir=cache)  # splits from the card's YAML configs
    assert {k: v.num_rows for k, v in by_split.items()} == {"compositions": 60, "primitives": 42}
    assert by_split["primitives"][0]["image"].size == (64, 64)


def test_same_seed_same_bytes_any_worker_count(tmp_path, shapes_dir):
    out = tmp_path / "again"
    result = build_shapes(out, ShapesConfig(**SMALL_SHAPES), workers=1, command="vgrc gen-shapes (fixture)")
    assert result.state == "new" and result.rendered == 102
    assert tree_digest(out) == tree_digest(shapes_dir)


def test_different_seed_different_layout(tmp_path):
    a = build_shapes(tmp_path / "a", ShapesConfig(size=32, limit=5, seed=1, shapes=("circle", "star")), workers=1)
    b = build_shapes(tmp_path / "b", ShapesConfig(size=32, limit=5, seed=2, shapes=("circle", "star")), workers=1)
    assert a.manifest["splits"]["compositions"]["sha256"] != b.manifest["splits"]["compositions"]["sha256"]
    assert a.manifest["splits"]["primitives"]["sha256"] == b.manifest["splits"]["primitives"]["sha256"]


def test_resume_after_interruption_is_byte_identical(tmp_path, shapes_dir):
    out = tmp_path / "interrupted"
    calls = []

    def stop_midway(done, total):
        calls.append(done)
        if done >= 42 + 20:  # the 42 references are written first
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_shapes(out, ShapesConfig(**SMALL_SHAPES), workers=1, command="vgrc gen-shapes (fixture)", on_progress=stop_midway)
    written = len(list((out / "compositions" / "images").iterdir()))
    assert 0 < written < 60
    assert not (out / "manifest.json").exists()
    missing = sorted(set(p.name for p in (shapes_dir / "compositions" / "images").iterdir()) - set(p.name for p in (out / "compositions" / "images").iterdir()))
    (out / "compositions" / "images" / f"{missing[0]}.vgrc-tmp-99").write_bytes(b"torn")  # a killed writer's leftover
    result = build_shapes(out, ShapesConfig(**SMALL_SHAPES), workers=2, command="vgrc gen-shapes (fixture)")
    assert result.state == "resume"
    assert result.skipped == written + 42 and result.rendered == 60 - written
    assert tree_digest(out) == tree_digest(shapes_dir)
    again = build_shapes(out, ShapesConfig(**SMALL_SHAPES), command="vgrc gen-shapes (fixture)")
    assert again.state == "complete" and again.rendered == 0


@pytest.mark.parametrize("kw, pattern", [({"size": 31}, "--size must be an integer ≥ 32"), ({"limit": 0}, "--limit must be a positive"), ({"colors": ("mauve",)}, "unknown color 'mauve'")])
def test_bad_config(tmp_path, kw, pattern):
    with pytest.raises(InvalidInputError, match=re.escape(pattern)):
        build_shapes(tmp_path / "x", ShapesConfig(**kw))
    assert not (tmp_path / "x").exists()  # nothing written for bad input
