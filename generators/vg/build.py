"""Build Visual Genome attribute-contrast splits (paper App. F.1, Table 9): ``vgrc build-vg``.

Input: ``--vg-dir`` holding VG's JSON files as distributed (v1.2 / v1.4). It needs
``attributes.json``; ``image_data.json`` is optional (sizes, and whether an image lives
in ``VG_100K/`` or ``VG_100K_2/``).

Two passes, with memory independent of the file size:

1. Stream ``attributes.json`` record by record (:mod:`vgrc.generators._util.json_stream`).
   Normalise every record: ``names`` (list), ``name`` (string) or v1.0 ``object_names``;
   ``image_id`` or v1.0 ``id``; lower case; single spaces; no trailing '.'; no empty
   strings. Every record dropped or repaired is counted. Each image's rows go to a
   temporary file, and for every (noun, pair, pole) the set of images where the noun
   carries a synonym of that pole is collected. A malformed file stops here, before
   anything is written to ``--out``.
2. A noun qualifies for a pair when, for EACH pole, it carries a synonym of that pole in
   at least ``min_images`` distinct images. The rows are then written with their
   ``contrastive_attributes``, together with ``steering.jsonl``, ``stats.csv`` /
   ``stats.md``, the dataset card, and the manifest last.

Rows (split ``images``) follow the dataset folder contract. ``file_name`` points to the
image under the user's VG image root (relative to the metadata file); nothing is copied.
``objects`` has one entry per VG object: noun = its first name, attributes normalised and
deduplicated, bbox [x, y, w, h]. ``caption`` lists the image's distinct "attributes noun"
phrases (at most 12, sorted).

Steering rows: one per qualifying (noun, pair) and direction. ``positives`` are the
images where the noun carries ANY synonym of the target pole (synonym-aware, App. H).
``negatives`` are the images where it carries a source-pole synonym and no target one:
an image annotated with both poles (a "black and white cat" tagged black and white)
counts only as a positive.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vgrc.evaluators import __version__
from vgrc.evaluators.retrieval_data import object_phrase
from vgrc.evaluators.dataset import METADATA_NAME, atomic_write_text, dumps_row, finish_dataset, prepare_output
from vgrc.evaluators.errors import InvalidInputError
from vgrc.generators._util.json_stream import iter_json_array
from vgrc.generators.vg.contrasts import ContrastPair, load_contrasts
from vgrc.generators.vg.records import normalize_record, image_locations
from vgrc.generators.vg.stats import card, contrast_stats, id_key, stats_csv, stats_md

__all__ = ["VGConfig", "VGResult", "build_vg", "normalize_record"]

DATASET = "vg"
SPLIT = "images"
DEFAULT_QUERY_TEMPLATE = "a photo of a {attribute} {noun}"
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class VGConfig:
    """Everything that determines the bytes of a ``build-vg`` output.

    Parameters
    ----------
    vg_dir : str
        Folder with ``attributes.json`` (and optionally ``image_data.json``).
    image_root : str or None
        Folder holding ``VG_100K/`` and ``VG_100K_2/``; default ``vg_dir``.
    contrasts : str or None
        A user contrast file (YAML); default the shipped 80 pairs.
    min_images : int
        Distinct images per pole for a noun to qualify (paper: 10).
    query_template : str
        Steering query, with ``{attribute}`` and ``{noun}``.
    check_images : bool
        Verify that every image exists on disk (and find it in either VG folder).
    limit : int or None
        Keep only the first N images (smoke runs).
    """

    vg_dir: str
    image_root: str | None = None
    contrasts: str | None = None
    min_images: int = 10
    query_template: str = DEFAULT_QUERY_TEMPLATE
    check_images: bool = False
    limit: int | None = None

    def record(self) -> dict:
        return {
            "vg_dir": os.path.abspath(self.vg_dir),
            "image_root": os.path.abspath(self.image_root or self.vg_dir),
            "contrasts": os.path.abspath(self.contrasts) if self.contrasts else "shipped",
            "min_images": self.min_images,
            "query_template": self.query_template,
            "check_images": self.check_images,
            "limit": self.limit,
            # 2: rows carry caption_objects (issue 9); a build without them is a different dataset
            "rows_version": ROWS_VERSION,
        }


@dataclass
class VGResult:
    """What :func:`build_vg` did: counts, repairs, grounded pairs."""

    out: Path
    state: str
    counts: dict = field(default_factory=dict)
    repairs: Counter = field(default_factory=Counter)
    pairs_total: int = 0
    pairs_grounded: int = 0
    manifest: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- normalisation


# --------------------------------------------------------------------------- images


# --------------------------------------------------------------------------- build


def _check(config: VGConfig) -> tuple[Path, Path]:
    vg_dir = Path(config.vg_dir)
    if not vg_dir.is_dir():
        raise InvalidInputError(f"--vg-dir {vg_dir} is not a folder; expected the Visual Genome folder holding attributes.json (and optionally image_data.json, VG_100K/, VG_100K_2/)")
    attributes = vg_dir / "attributes.json"
    if not attributes.is_file():
        raise InvalidInputError(
            f"{attributes} is missing; expected layout: {vg_dir}/attributes.json (required), image_data.json (optional), VG_100K/ and VG_100K_2/ with the images"
        )
    if config.min_images < 1:
        raise InvalidInputError(f"--min-images must be ≥ 1, got {config.min_images}")
    if config.limit is not None and config.limit < 1:
        raise InvalidInputError(f"--limit must be ≥ 1, got {config.limit}")
    try:
        config.query_template.format(attribute="x", noun="y")
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidInputError(f"--query-template {config.query_template!r} must use only {{attribute}} and {{noun}}") from exc
    if "{attribute}" not in config.query_template:
        # source and target queries would be the same text: steering would do nothing, silently
        raise InvalidInputError(f"--query-template {config.query_template!r} has no {{attribute}}: the source and target queries "
                                "would be identical; e.g. 'a photo of a {attribute} {noun}'")
    root = Path(config.image_root or config.vg_dir)
    if config.image_root and not root.is_dir():
        raise InvalidInputError(f"--image-root {root} is not a folder")
    return attributes, root


def build_vg(
    out: str | os.PathLike,
    config: VGConfig,
    *,
    overwrite: bool = False,
    command: str = "vgrc build-vg",
    on_progress: ProgressFn | None = None,
) -> VGResult:
    """Build the VG contrast dataset in ``out``; see the module documentation.

    Raises
    ------
    InvalidInputError
        Missing files (naming the expected layout), malformed JSON (file, line, column),
        an invalid contrast file (entry and problem), bad options.
    """
    attributes_path, image_root = _check(config)
    pairs = load_contrasts(config.contrasts)
    lookup = _pole_lookup(pairs)
    size = attributes_path.stat().st_size
    locations, have_image_data = image_locations(Path(config.vg_dir))
    tmp_dir = tempfile.TemporaryDirectory(prefix="vgrc-vg-")
    try:
        scan = _scan(attributes_path, Path(tmp_dir.name) / "rows.jsonl", lookup, config, size, on_progress)
        nouns_by_pair = _grounded_nouns(scan.incidences, config.min_images)
        record = config.record()
        state = prepare_output(out, DATASET, record, overwrite=overwrite, files=FILES)
        out = Path(out)
        result = VGResult(out=out, state=state, repairs=scan.repairs, pairs_total=len(pairs), pairs_grounded=len(nouns_by_pair))
        qualifying = {(noun, k) for k, nouns in nouns_by_pair.items() for noun in nouns}
        missing_images = _write_rows(scan.rows, out / SPLIT, image_root, locations, have_image_data, pairs, lookup, qualifying, config.check_images)
    finally:
        tmp_dir.cleanup()
    corpus = {
        "images": scan.n_images,
        "objects": scan.n_objects,
        "attribute_mentions": scan.mentions,
        "unique_attribute_strings": len(scan.unique_attrs),
        "images_missing_on_disk": missing_images if config.check_images else None,
    }
    _finish(out, result, config, record, command, pairs, nouns_by_pair, scan, corpus, len(qualifying), image_root)
    if on_progress:
        on_progress(size, size)
    return result


def _pole_lookup(pairs: list[ContrastPair]) -> dict[str, list[tuple[int, str]]]:
    """attribute word -> [(contrast index, pole "a" / "b"), …]."""
    lookup: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for k, pair in enumerate(pairs):
        for pole, words in (("a", pair.a), ("b", pair.b)):
            for w in words:
                lookup[w].append((k, pole))
    return lookup


@dataclass
class _Scan:
    """Pass 1's findings: the normalised rows (in a temporary file), which images show a
    noun with each contrast pole, and the corpus counts."""

    rows: Path
    repairs: Counter = field(default_factory=Counter)
    incidences: dict = field(default_factory=lambda: defaultdict(set))
    mentions: int = 0
    unique_attrs: set = field(default_factory=set)
    n_images: int = 0
    n_objects: int = 0


def _scan(attributes_path: Path, rows: Path, lookup, config: VGConfig, size: int, on_progress) -> _Scan:
    """Pass 1: normalise every record, keep the rows in ``rows``, collect pole incidences."""
    scan = _Scan(rows)
    with open(rows, "w", encoding="utf-8") as fh:
        report = (lambda done: on_progress(min(done, size), size)) if on_progress else None
        for rec in iter_json_array(attributes_path, on_offset=report):
            got = normalize_record(rec, scan.repairs)
            if got is None:
                continue
            image_id, objects = got
            scan.n_images += 1
            scan.n_objects += len(objects)
            by_noun: dict[str, set[str]] = defaultdict(set)
            for o in objects:
                scan.mentions += len(o["attributes"])
                scan.unique_attrs.update(o["attributes"])
                by_noun[o["noun"]].update(o["attributes"])
            for noun, attrs in by_noun.items():
                for a in attrs:
                    for k, pole in lookup.get(a, ()):
                        scan.incidences[(noun, k, pole)].add(image_id)
            fh.write(dumps_row({"id": image_id, "objects": objects}) + "\n")
            if config.limit is not None and scan.n_images >= config.limit:
                break
    return scan


def _grounded_nouns(incidences: dict, min_images: int) -> dict[int, list[str]]:
    """contrast index -> the nouns seen with both of its poles on ≥ ``min_images`` images each."""
    nouns_by_pair: dict[int, list[str]] = defaultdict(list)
    for (noun, k, pole), ids in incidences.items():
        other = incidences.get((noun, k, "b" if pole == "a" else "a"), ())
        if pole == "a" and len(ids) >= min_images and len(other) >= min_images:
            nouns_by_pair[k].append(noun)
    return nouns_by_pair


def _write_rows(rows: Path, split_dir: Path, image_root: Path, locations, have_image_data, pairs, lookup, qualifying, check_images) -> int:
    """Pass 2: ``images/metadata.jsonl`` (atomically), each row with its caption and its
    contrastive attributes; returns how many images are missing on disk."""
    split_dir.mkdir(parents=True, exist_ok=True)
    missing_images = 0
    meta_tmp = split_dir / f"{METADATA_NAME}.vgrc-tmp-{os.getpid()}"
    with open(rows, encoding="utf-8") as src, open(meta_tmp, "w", encoding="utf-8") as dst:
        for line in src:
            row = json.loads(line)
            image_id, objects = row["id"], row["objects"]
            folder, width, height = locations.get(image_id, ("VG_100K", None, None))
            rel = Path(folder) / f"{image_id}.jpg"
            if check_images and not (image_root / rel).exists():
                alt = Path("VG_100K_2" if folder == "VG_100K" else "VG_100K") / f"{image_id}.jpg"
                if not have_image_data and (image_root / alt).exists():
                    rel = alt
                else:
                    missing_images += 1
            named = caption_objects(objects)
            out_row = {
                "id": image_id,
                "file_name": os.path.relpath(image_root / rel, split_dir),
                "caption": ", ".join(object_phrase(o) for o in named),
                "objects": objects,
                "caption_objects": named,
                "contrastive_attributes": _contrastive_attributes(objects, pairs, lookup, qualifying),
                "width": width,
                "height": height,
            }
            dst.write(dumps_row(out_row) + "\n")
    os.replace(meta_tmp, split_dir / METADATA_NAME)
    return missing_images


def _contrastive_attributes(objects: list[dict], pairs, lookup, qualifying) -> list[dict]:
    """The row's (noun, contrast) pairs that qualify, with the pole(s) the row shows."""
    contrastive = []
    by_noun: dict[str, set[str]] = defaultdict(set)
    for o in objects:
        by_noun[o["noun"]].update(o["attributes"])
    for noun in sorted(by_noun):
        sides: dict[int, set[str]] = defaultdict(set)
        for a in by_noun[noun]:
            for k, pole in lookup.get(a, ()):
                if (noun, k) in qualifying:
                    sides[k].add(pole)
        for k in sorted(sides):
            pair = pairs[k]
            side = "both" if len(sides[k]) == 2 else next(iter(sides[k]))
            contrastive.append({"noun": noun, "category": pair.category, "a": list(pair.a), "b": list(pair.b), "side": side})
    return contrastive


def _finish(out: Path, result: VGResult, config: VGConfig, record: dict, command: str, pairs, nouns_by_pair, scan: _Scan, corpus: dict,
            n_qualifying: int, image_root: Path) -> None:
    """steering.jsonl, the statistics, the card and the manifest (written last)."""
    steering = _steering_rows(pairs, nouns_by_pair, scan.incidences, config.query_template)
    atomic_write_text(out / "steering.jsonl", "".join(dumps_row(r) + "\n" for r in steering))
    stats = contrast_stats(pairs, nouns_by_pair, steering)
    atomic_write_text(out / "stats.csv", stats_csv(stats))
    atomic_write_text(out / "stats.md", stats_md(stats, corpus, scan.repairs, len(pairs), len(nouns_by_pair)))
    result.counts = {**corpus, "steering_rows": len(steering), "qualifying_noun_pairs": n_qualifying}
    atomic_write_text(out / "README.md", card(record, corpus, stats, len(pairs), len(nouns_by_pair), command))
    result.manifest = finish_dataset(
        out, DATASET, record, version=__version__, command=command, seed=None, splits=[SPLIT],
        extra={"image_root": os.path.abspath(image_root), "corpus": corpus, "repairs": dict(sorted(scan.repairs.items())),
               "pairs_total": len(pairs), "pairs_grounded": len(nouns_by_pair), "steering": "steering.jsonl",
               "steering_thresholds": "a lower --min-images (vgrc build-vg)",
               "objects_source": OBJECTS_SOURCE, "recommended": RECOMMENDED},
        files=FILES,
    )


ROWS_VERSION = 2
#: every file build-vg writes (recorded in the manifest: what --overwrite may delete)
FILES = ("README.md", "images/metadata.jsonl", "steering.jsonl", "stats.csv", "stats.md")
#: where the per-object sets come from (stated in every eval output)
OBJECTS_SOURCE = "Visual Genome object–attribute annotations (caption_objects for queries, objects for images)"
#: recommended reranker settings: captions name a few of many objects, so surplus objects are free
RECOMMENDED = {"unmatched_cost": 1.0, "surplus_cost": 0.0}
CAPTION_PHRASES = 12


def caption_objects(objects: list[dict]) -> list[dict]:
    """The objects a retrieval caption names: one per distinct attributed phrase, the first
    ``CAPTION_PHRASES`` in sorted phrase order (bbox of the phrase's first object).

    The caption is exactly ``", ".join(object_phrase(o) for o in caption_objects(objects))``,
    so a query's object set is exactly what its caption says.
    """
    first: dict[str, dict] = {}
    for o in objects:
        if o["attributes"]:
            first.setdefault(object_phrase(o), o)
    return [{"noun": first[ph]["noun"], "attributes": list(first[ph]["attributes"]), "bbox": first[ph].get("bbox")} for ph in sorted(first)[:CAPTION_PHRASES]]


def _steering_rows(pairs: list[ContrastPair], nouns_by_pair, incidences, template: str) -> list[dict]:
    rows = []
    for k in sorted(nouns_by_pair):
        pair = pairs[k]
        for noun in sorted(nouns_by_pair[k]):
            ids = {pole: incidences[(noun, k, pole)] for pole in ("a", "b")}
            for src, dst in (("a", "b"), ("b", "a")):
                source, target = getattr(pair, src), getattr(pair, dst)
                rows.append(
                    {
                        "id": f"{noun}|{source[0]}->{target[0]}",
                        "noun": noun,
                        "category": pair.category,
                        "source": list(source),
                        "target": list(target),
                        "source_query": template.format(attribute=source[0], noun=noun),
                        "target_query": template.format(attribute=target[0], noun=noun),
                        "positives": sorted(ids[dst], key=id_key),
                        "negatives": sorted(ids[src] - ids[dst], key=id_key),
                    }
                )
    return rows


