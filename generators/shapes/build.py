"""Build the Synthetic Shapes dataset (paper §3): ``vgrc gen-shapes``.

Splits written (dataset folder contract, :mod:`vgrc.evaluators.dataset`):

``compositions``
    One image per unordered combination WITH replacement of 3 of the primitives:
    C(n + 2, 3) images, 13,244 for the full 42-primitive vocabulary. Caption = the sorted,
    comma-separated "color shape" phrases. Which primitive sits in which of the three
    fixed slots is drawn from ``random.Random(f"{seed}:{id}")``: deterministic, independent
    of ``--limit`` and of the worker count, and recorded in the row (``slots``, ``bbox``).
``primitives``
    The single-primitive reference images, one per primitive (always all of them).

Both splits share one row schema (so ``datasets`` can load them together): ``id``,
``file_name``, ``caption``, ``objects``, ``layout`` (``"composition"``: three slots, see
:func:`~vgrc.generators.shapes.svg.composition_slots`; ``"reference"``: one centred slot)
and ``slots`` (the slot index of each object, in ``objects`` order).

How images are made fast while staying exact
    Every primitive is rendered ONCE per slot with cairosvg, as its own white-canvas SVG,
    and a composition is assembled as the element-wise minimum of its three slot tiles.
    Primitives in different slots never touch the same pixel (slot circles are ≥ 0.1·size
    apart) and each is drawn over white, so this equals rasterising the full composition
    SVG pixel for pixel; ``tests/generators/test_shapes.py`` checks that against
    ``cairosvg.svg2png`` of :func:`composition_svg`. What remains per image is PNG
    encoding (:mod:`vgrc.generators._util.png`), spread over ``workers`` processes.

Resuming: images are written atomically under their final names, so a rerun skips those
that exist; metadata is a pure function of the configuration, written after the images;
the manifest is written last.
"""

from __future__ import annotations

import itertools
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vgrc.evaluators import __version__
from vgrc.evaluators.dataset import (
    METADATA_NAME,
    atomic_write_bytes,
    atomic_write_text,
    finish_dataset,
    prepare_output,
    read_manifest,
    remove_stale_temporaries,
    write_jsonl,
)
from vgrc.evaluators.errors import InvalidInputError
from vgrc.generators._util.png import encode_rgb_png
from vgrc.generators.shapes.svg import (
    COLORS,
    MIN_SIZE,
    Primitive,
    Slot,
    canvas_svg,
    composition_slots,
    primitive_bbox,
    reference_slot,
    select_vocabulary,
)
from vgrc.generators.shapes.render import render_svg, render_slot_tiles, run_jobs

__all__ = [
    "ShapesConfig",
    "ShapesResult",
    "count_compositions",
    "iter_compositions",
    "select_compositions",
    "composition_row",
    "primitive_row",
    "composition_svg",
    "render_svg",
    "build_shapes",
]

DATASET = "shapes"
SPLIT_COMPOSITIONS = "compositions"
SPLIT_PRIMITIVES = "primitives"
OBJECTS_PER_IMAGE = 3
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class ShapesConfig:
    """Everything that determines the bytes of a Synthetic Shapes build.

    Parameters
    ----------
    size : int
        Canvas side in pixels (≥ 32).
    shapes, colors : tuple of str
        Vocabulary subsets; empty = all six shapes / all seven colors.
    limit : int or None
        Keep a seeded, deterministic subset of this many compositions (smoke runs).
        The reference primitives are always all written.
    seed : int
        Seeds the ``--limit`` subset and the slot layout of every composition.
    """

    size: int = 224
    shapes: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    limit: int | None = None
    seed: int = 0

    def check(self) -> list[Primitive]:
        """Validate, and return the primitives of the selected vocabulary."""
        if not isinstance(self.size, int) or self.size < MIN_SIZE:
            raise InvalidInputError(f"--size must be an integer ≥ {MIN_SIZE} pixels, got {self.size!r}")
        if self.size > 4096:
            raise InvalidInputError(f"--size must be ≤ 4096 pixels, got {self.size}")
        if self.limit is not None and self.limit < 1:
            raise InvalidInputError(f"--limit must be a positive number of compositions, got {self.limit}")
        return select_vocabulary(self.shapes, self.colors)

    def as_record(self, primitives: Sequence[Primitive]) -> dict:
        """The JSON form stored in the build marker and the manifest (names resolved)."""
        return {
            "size": self.size,
            "shapes": sorted({p.shape for p in primitives}, key=[q.shape for q in primitives].index),
            "colors": sorted({p.color for p in primitives}, key=[q.color for q in primitives].index),
            "limit": self.limit,
            "seed": self.seed,
        }


@dataclass
class ShapesResult:
    """What :func:`build_shapes` did."""

    out: Path
    state: str  # "new", "resume" or "complete"
    counts: dict[str, int] = field(default_factory=dict)
    rendered: int = 0
    skipped: int = 0
    manifest: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- enumeration


def count_compositions(n_primitives: int, k: int = OBJECTS_PER_IMAGE) -> int:
    """Number of unordered k-combinations with replacement: C(n + k − 1, k)."""
    return math.comb(n_primitives + k - 1, k)


def iter_compositions(n_primitives: int, k: int = OBJECTS_PER_IMAGE):
    """Index tuples ``(i ≤ j ≤ l)`` of all compositions, in lexicographic order."""
    return itertools.combinations_with_replacement(range(n_primitives), k)


def select_compositions(n_primitives: int, limit: int | None, seed: int) -> list[tuple[int, ...]]:
    """All compositions, or a seeded subset of ``limit`` of them kept in enumeration order.

    The subset is drawn by index, so it costs O(limit) without listing all compositions.
    """
    total = count_compositions(n_primitives)
    if limit is None or limit >= total:
        return list(iter_compositions(n_primitives))
    keep = set(random.Random(seed).sample(range(total), limit))
    return [c for i, c in enumerate(iter_compositions(n_primitives)) if i in keep]


def _caption_order(prims: Sequence[Primitive]) -> list[int]:
    return sorted(range(len(prims)), key=lambda i: (prims[i].name, i))


def composition_id(prims: Sequence[Primitive]) -> str:
    """Content-derived id, e.g. ``"blue_circle-green_star-red_pentagon"`` (caption order)."""
    return "-".join(prims[i].slug for i in _caption_order(prims))


def composition_layout(prims: Sequence[Primitive], seed: int) -> list[int]:
    """Slot index of each primitive, in caption order: a seeded permutation of 0, 1, 2."""
    slots = list(range(OBJECTS_PER_IMAGE))
    random.Random(f"{seed}:{composition_id(prims)}").shuffle(slots)
    return slots


def _object(prim: Primitive, slot: Slot) -> dict:
    return {"noun": prim.shape, "attributes": [prim.color], "bbox": primitive_bbox(prim.shape, slot)}


def composition_row(prims: Sequence[Primitive], size: int, seed: int) -> dict:
    """The metadata row of a composition (objects listed in caption order)."""
    ordered = [prims[i] for i in _caption_order(prims)]
    layout = composition_layout(prims, seed)
    slots = composition_slots(size)
    cid = composition_id(prims)
    return {
        "id": cid,
        "file_name": f"images/{cid}.png",
        "caption": ", ".join(p.name for p in ordered),
        "objects": [_object(p, slots[s]) for p, s in zip(ordered, layout)],
        "layout": "composition",
        "slots": layout,
    }


def primitive_row(prim: Primitive, size: int) -> dict:
    """The metadata row of a single-primitive reference image."""
    return {
        "id": prim.slug,
        "file_name": f"images/{prim.slug}.png",
        "caption": prim.name,
        "objects": [_object(prim, reference_slot(size))],
        "layout": "reference",
        "slots": [0],
    }


def composition_svg(prims: Sequence[Primitive], size: int, seed: int) -> str:
    """The full SVG document of a composition: what its PNG is a rasterisation of."""
    ordered = [prims[i] for i in _caption_order(prims)]
    slots = composition_slots(size)
    return canvas_svg(size, [(p, slots[s]) for p, s in zip(ordered, composition_layout(prims, seed))])


# --------------------------------------------------------------------------- build


def _render_card(config_record: dict, counts: dict, command: str, primitives: Sequence[Primitive]) -> str:
    from vgrc.data_cards import render_card

    color_rows = "\n".join(
        f"| {c} | ({r}, {g}, {b}) | `#{r:02x}{g:02x}{b:02x}` |"
        for c in config_record["colors"]
        for (r, g, b) in [COLORS[c]]
    )
    return render_card(
        DATASET,
        vgrc_version=__version__,
        command=command,
        size=config_record["size"],
        seed=config_record["seed"],
        limit="none" if config_record["limit"] is None else config_record["limit"],
        shapes=", ".join(config_record["shapes"]),
        colors=", ".join(config_record["colors"]),
        n_primitives=len(primitives),
        n_compositions=counts[SPLIT_COMPOSITIONS],
        n_compositions_full=count_compositions(len(primitives)),
        n_reference=counts[SPLIT_PRIMITIVES],
        color_table=color_rows,
        size_category="10K<n<100K" if counts[SPLIT_COMPOSITIONS] >= 10_000 else "n<10K",
    )


#: the files gen-shapes writes beside its images (each image is recorded by name too:
#: :func:`shapes_files`; the record is what --overwrite may delete)
FILES = ("README.md", "compositions/metadata.jsonl", "primitives/metadata.jsonl")
#: where the per-object sets come from (stated in every eval output)
OBJECTS_SOURCE = "Synthetic Shapes symbolic labels (the generator's own)"
#: recommended reranker settings: captions describe the whole scene, so a surplus object is a mismatch
RECOMMENDED = {"unmatched_cost": 1.0, "surplus_cost": 1.0}


def build_shapes(
    out: str | os.PathLike,
    config: ShapesConfig = ShapesConfig(),
    *,
    workers: int | None = None,
    overwrite: bool = False,
    command: str = "vgrc gen-shapes",
    on_progress: ProgressFn | None = None,
) -> ShapesResult:
    """Build (or resume, or confirm) the Synthetic Shapes dataset in ``out``.

    Parameters
    ----------
    out : path
        Dataset folder (dataset folder contract).
    config : ShapesConfig
        Size, vocabulary subsets, ``limit`` and seed.
    workers : int, optional
        Processes that encode images; default: the CPU count (at most 8). Output bytes do
        not depend on it.
    overwrite : bool
        Replace a folder that holds a different vgrc dataset.
    command : str
        The command line, recorded in the manifest and the dataset card.
    on_progress : callable(done, total), optional
        Called as images are written (compositions and references together).

    Returns
    -------
    ShapesResult
    """
    primitives = config.check()
    if workers is not None and workers < 1:
        raise InvalidInputError(f"--workers must be ≥ 1, got {workers}")
    workers = workers or min(8, os.cpu_count() or 1)
    record = config.as_record(primitives)
    out = Path(out)
    size = config.size
    comps = select_compositions(len(primitives), config.limit, config.seed)
    # metadata is a pure function of the configuration, and so is every file name
    comp_rows = [composition_row([primitives[i] for i in c], size, config.seed) for c in comps]
    prim_rows = [primitive_row(p, size) for p in primitives]
    files = shapes_files(comp_rows, prim_rows)
    state = prepare_output(out, DATASET, record, overwrite=overwrite, files=files)
    counts = {SPLIT_COMPOSITIONS: len(comps), SPLIT_PRIMITIVES: len(primitives)}
    result = ShapesResult(out=out, state=state, counts=counts)
    total = sum(counts.values())
    if state == "complete":
        result.manifest = read_manifest(out)
        result.skipped = total
        if on_progress:
            on_progress(total, total)
        return result

    _render_missing(out, result, primitives, comps, comp_rows, prim_rows, size, workers, on_progress, total)

    write_jsonl(out / SPLIT_COMPOSITIONS / METADATA_NAME, comp_rows)
    write_jsonl(out / SPLIT_PRIMITIVES / METADATA_NAME, prim_rows)
    atomic_write_text(out / "README.md", _render_card(record, counts, command, primitives))
    result.manifest = finish_dataset(
        out,
        DATASET,
        record,
        version=__version__,
        command=command,
        seed=config.seed,
        splits=[SPLIT_COMPOSITIONS, SPLIT_PRIMITIVES],
        extra={"objects_source": OBJECTS_SOURCE, "recommended": RECOMMENDED},
        files=files,
    )
    return result


def _render_missing(out: Path, result: ShapesResult, primitives, comps, comp_rows, prim_rows, size: int, workers: int, on_progress, total: int) -> None:
    """Render every image not yet on disk (a resumed build keeps the finished ones): the
    references directly, the compositions from per-slot tiles in worker processes."""
    for split, rows in ((SPLIT_COMPOSITIONS, comp_rows), (SPLIT_PRIMITIVES, prim_rows)):
        d = out / split / "images"
        d.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(d, {Path(r["file_name"]).name for r in rows})
    # reference images: rendered directly (few), skipped when present
    done = 0
    for prim, row in zip(primitives, prim_rows):
        path = out / SPLIT_PRIMITIVES / row["file_name"]
        if path.exists():
            result.skipped += 1
        else:
            atomic_write_bytes(path, encode_rgb_png(render_svg(canvas_svg(size, [(prim, reference_slot(size))]))))
            result.rendered += 1
        done += 1
    jobs = []
    for c, row in zip(comps, comp_rows):
        path = out / SPLIT_COMPOSITIONS / row["file_name"]
        if path.exists():
            result.skipped += 1
            done += 1
            continue
        order = _caption_order([primitives[i] for i in c])
        jobs.append((str(path), tuple((c[i], s) for i, s in zip(order, row["slots"]))))
    result.rendered += len(jobs)
    needed = sorted({pi for _, placed in jobs for pi, _ in placed})
    tiles = render_slot_tiles(primitives, size, only=needed)
    run_jobs(jobs, tiles, size, workers, on_progress, total, done)


def shapes_files(comp_rows: list[dict], prim_rows: list[dict]) -> list[str]:
    """Every file a gen-shapes build writes, by exact relative path."""
    images = [f"{split}/{r['file_name']}" for split, rows in ((SPLIT_COMPOSITIONS, comp_rows), (SPLIT_PRIMITIVES, prim_rows)) for r in rows]
    return [*FILES, *images]


def default_shapes_dataset(
    cache_dir: str | os.PathLike | None = None, *, on_progress: ProgressFn | None = None, before_build: Callable[[], None] | None = None
) -> Path:
    """The full Synthetic Shapes dataset under the cache folder, built once and reused.

    ``vgrc eval`` uses it when no ``--data`` is given. The build is deterministic (the
    default :class:`ShapesConfig`, seed 0) and resumable; a finished one is only read.
    ``before_build`` runs first when there is something to build (e.g. a check that the
    model's weights are available, so a missing model does not cost a build).
    """
    from vgrc.evaluators.dataset import check_output
    from vgrc.evaluators.encoders.cache import default_cache_dir

    root = Path(cache_dir) if cache_dir else default_cache_dir()
    out = root / "datasets" / "shapes"
    config = ShapesConfig()
    if before_build is not None and check_output(out, DATASET, config.as_record(config.check())) != "complete":
        before_build()
    build_shapes(out, config, command="vgrc eval (default dataset)", on_progress=on_progress)
    return out
