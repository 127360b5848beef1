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
from vgrc.generators.vg.contrasts import ContrastPair, load_contrasts, normalize_term

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


# --------------------------------------------------------------------------- images


def _image_locations(vg_dir: Path) -> tuple[dict[str, tuple[str, int | None, int | None]], bool]:
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
    lookup: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for k, pair in enumerate(pairs):
        for pole, words in (("a", pair.a), ("b", pair.b)):
            for w in words:
                lookup[w].append((k, pole))
    repairs: Counter = Counter()
    size = attributes_path.stat().st_size
    locations, have_image_data = _image_locations(Path(config.vg_dir))

    # ---- pass 1: normalise, keep rows in a temporary file, collect pole incidences
    incidences: dict[tuple[str, int, str], set[str]] = defaultdict(set)
    mentions = 0
    unique_attrs: set[str] = set()
    n_images = n_objects = 0
    tmp_dir = tempfile.TemporaryDirectory(prefix="vgrc-vg-")
    try:
        tmp_rows = Path(tmp_dir.name) / "rows.jsonl"
        with open(tmp_rows, "w", encoding="utf-8") as fh:
            report = (lambda done: on_progress(min(done, size), size)) if on_progress else None
            for rec in iter_json_array(attributes_path, on_offset=report):
                got = normalize_record(rec, repairs)
                if got is None:
                    continue
                image_id, objects = got
                n_images += 1
                n_objects += len(objects)
                by_noun: dict[str, set[str]] = defaultdict(set)
                for o in objects:
                    mentions += len(o["attributes"])
                    unique_attrs.update(o["attributes"])
                    by_noun[o["noun"]].update(o["attributes"])
                for noun, attrs in by_noun.items():
                    for a in attrs:
                        for k, pole in lookup.get(a, ()):
                            incidences[(noun, k, pole)].add(image_id)
                fh.write(dumps_row({"id": image_id, "objects": objects}) + "\n")
                if config.limit is not None and n_images >= config.limit:
                    break

        # ---- qualification
        nouns_by_pair: dict[int, list[str]] = defaultdict(list)
        for (noun, k, pole), ids in incidences.items():
            other = incidences.get((noun, k, "b" if pole == "a" else "a"), ())
            if pole == "a" and len(ids) >= config.min_images and len(other) >= config.min_images:
                nouns_by_pair[k].append(noun)
        qualifying = {(noun, k) for k, nouns in nouns_by_pair.items() for noun in nouns}

        record = config.record()
        state = prepare_output(out, DATASET, record, overwrite=overwrite, files=FILES)
        out = Path(out)
        result = VGResult(out=out, state=state, repairs=repairs, pairs_total=len(pairs), pairs_grounded=len(nouns_by_pair))
        split_dir = out / SPLIT
        split_dir.mkdir(parents=True, exist_ok=True)

        # ---- pass 2: rows with contrastive attributes
        missing_images = 0
        meta_tmp = split_dir / f"{METADATA_NAME}.vgrc-tmp-{os.getpid()}"
        with open(tmp_rows, encoding="utf-8") as src, open(meta_tmp, "w", encoding="utf-8") as dst:
            for line in src:
                row = json.loads(line)
                image_id, objects = row["id"], row["objects"]
                folder, width, height = locations.get(image_id, ("VG_100K", None, None))
                rel = Path(folder) / f"{image_id}.jpg"
                if config.check_images and not (image_root / rel).exists():
                    alt = Path("VG_100K_2" if folder == "VG_100K" else "VG_100K") / f"{image_id}.jpg"
                    if not have_image_data and (image_root / alt).exists():
                        rel = alt
                    else:
                        missing_images += 1
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
                named = caption_objects(objects)
                out_row = {
                    "id": image_id,
                    "file_name": os.path.relpath(image_root / rel, split_dir),
                    "caption": ", ".join(object_phrase(o) for o in named),
                    "objects": objects,
                    "caption_objects": named,
                    "contrastive_attributes": contrastive,
                    "width": width,
                    "height": height,
                }
                dst.write(dumps_row(out_row) + "\n")
        os.replace(meta_tmp, split_dir / METADATA_NAME)
    finally:
        tmp_dir.cleanup()

    steering = _steering_rows(pairs, nouns_by_pair, incidences, config.query_template)
    atomic_write_text(out / "steering.jsonl", "".join(dumps_row(r) + "\n" for r in steering))
    stats = _stats(pairs, nouns_by_pair, steering)
    corpus = {
        "images": n_images,
        "objects": n_objects,
        "attribute_mentions": mentions,
        "unique_attribute_strings": len(unique_attrs),
        "images_missing_on_disk": missing_images if config.check_images else None,
    }
    atomic_write_text(out / "stats.csv", _stats_csv(stats))
    atomic_write_text(out / "stats.md", _stats_md(stats, corpus, repairs, len(pairs), len(nouns_by_pair)))
    result.counts = {**corpus, "steering_rows": len(steering), "qualifying_noun_pairs": len(qualifying)}
    atomic_write_text(out / "README.md", _card(record, corpus, stats, len(pairs), len(nouns_by_pair), command))
    result.manifest = finish_dataset(
        out, DATASET, record, version=__version__, command=command, seed=None, splits=[SPLIT],
        extra={"image_root": os.path.abspath(image_root), "corpus": corpus, "repairs": dict(sorted(repairs.items())),
               "pairs_total": len(pairs), "pairs_grounded": len(nouns_by_pair), "steering": "steering.jsonl",
               "steering_thresholds": "a lower --min-images (vgrc build-vg)",
               "objects_source": OBJECTS_SOURCE, "recommended": RECOMMENDED},
        files=FILES,
    )
    if on_progress:
        on_progress(size, size)
    return result


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
                        "positives": sorted(ids[dst], key=_id_key),
                        "negatives": sorted(ids[src] - ids[dst], key=_id_key),
                    }
                )
    return rows


def _id_key(image_id: str):
    return (0, int(image_id), "") if image_id.isdigit() else (1, 0, image_id)


def _stats(pairs, nouns_by_pair, steering) -> list[dict]:
    cats = list(dict.fromkeys(p.category for p in pairs))
    total_instances = sum(len(r["positives"]) for r in steering) or 1
    out = []
    for c in cats:
        rows = [r for r in steering if r["category"] == c]
        inst = sum(len(r["positives"]) for r in rows)
        out.append(
            {
                "category": c,
                "pairs": sum(p.category == c for p in pairs),
                "pairs_grounded": sum(pairs[k].category == c for k in nouns_by_pair),
                "noun_pairs": len(rows) // 2,
                "steering_rows": len(rows),
                "count_both_dirs": inst,
                "percent": round(100 * inst / total_instances, 1),
            }
        )
    out.sort(key=lambda r: -r["count_both_dirs"])
    return out


def _stats_csv(stats) -> str:
    cols = ["category", "pairs", "pairs_grounded", "noun_pairs", "steering_rows", "count_both_dirs", "percent"]
    lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in stats]
    total = {c: sum(r[c] for r in stats) for c in cols[1:-1]}
    lines.append(",".join(["TOTAL", *(str(total[c]) for c in cols[1:-1]), ""]))
    return "\n".join(lines) + "\n"


def _stats_table(stats) -> str:
    lines = ["| Type | Pairs (grounded / defined) | Noun–pairs | Count (both dirs) | % |", "|---|---|---|---|---|"]
    for r in stats:
        lines.append(f"| {r['category']} | {r['pairs_grounded']} / {r['pairs']} | {r['noun_pairs']:,} | {r['count_both_dirs']:,} | {r['percent']} |")
    lines.append(f"| TOTAL | {sum(r['pairs_grounded'] for r in stats)} / {sum(r['pairs'] for r in stats)} | {sum(r['noun_pairs'] for r in stats):,} | {sum(r['count_both_dirs'] for r in stats):,} | – |")
    return "\n".join(lines)


def _stats_md(stats, corpus, repairs, n_pairs, n_grounded) -> str:
    rep = "\n".join(f"| {k} | {v:,} |" for k, v in sorted(repairs.items())) or "| (none) | 0 |"
    missing = corpus["images_missing_on_disk"]
    return (
        "# Visual Genome contrast statistics\n\n"
        f"{n_grounded} of {n_pairs} contrastive pairs have at least one qualifying noun.\n\n"
        f"{_stats_table(stats)}\n\n"
        "Count (both dirs): the images on the target side, summed over the steering rows of\n"
        "both directions (that is, image–noun incidences on either pole of a grounded pair).\n\n"
        "## Corpus\n\n"
        f"- images: {corpus['images']:,}; objects: {corpus['objects']:,}\n"
        f"- attribute mentions: {corpus['attribute_mentions']:,}; unique attribute strings: {corpus['unique_attribute_strings']:,}\n"
        f"- images missing on disk: {'not checked (pass --check-images)' if missing is None else f'{missing:,}'}\n\n"
        "## Records dropped or repaired\n\n| what | count |\n|---|---|\n" + rep + "\n"
    )


def _card(record, corpus, stats, n_pairs, n_grounded, command) -> str:
    from vgrc.data_cards import render_card

    return render_card(
        DATASET,
        vgrc_version=__version__,
        command=command,
        images=f"{corpus['images']:,}",
        objects=f"{corpus['objects']:,}",
        mentions=f"{corpus['attribute_mentions']:,}",
        unique_attributes=f"{corpus['unique_attribute_strings']:,}",
        pairs=n_pairs,
        grounded=n_grounded,
        min_images=record["min_images"],
        contrasts=record["contrasts"],
        query_template=record["query_template"],
        stats_table=_stats_table(stats),
        size_category="100K<n<1M" if corpus["images"] >= 100_000 else ("10K<n<100K" if corpus["images"] >= 10_000 else "n<10K"),
    )
