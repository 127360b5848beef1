"""NAC merge: verification, steerability filter and the dataset folder (paper App. F.1).

For every generated image the judge is asked about the prompted attribute, the pair's
other attribute, and every attribute the plausibility file lists for the noun. A
detection counts when P(Yes) ≥ ``min_confidence``. A noun–attribute pair is steerable
when it has at least ``min_samples`` verified images. A contrast is retained for a noun
when both of its attributes are steerable. With ``--judge none``, the prompted attribute
counts as detected (no verification).

``steering.jsonl`` uses the same format as ``vgrc build-vg``'s, so
``vgrc eval --task steering`` works on NAC too. Positives are the images with a verified
target-attribute detection; negatives have a verified source detection and no target one.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from vgrc.data_cards import render_card
from vgrc.evaluators import __version__
from vgrc.evaluators.dataset import METADATA_NAME, atomic_write_text, dumps_row, finish_dataset
from vgrc.evaluators.judges.verify import JudgmentCache, clipscore, make_judge
from vgrc.generators.nac.layout import SPLIT, image_paths, nac_files
from vgrc.generators.nac.prompts import load_plausible

__all__ = ["merge_nac"]


def merge_nac(out: Path, pairs, config, *, device: str | None = None, command: str = "vgrc build-nac") -> dict:
    """Verify every kept image, then write the split, steering.jsonl, the statistics, the
    card and the manifest; return the counts."""
    images = []  # (row id, pair, pole, attribute, prompt, path)
    for p in pairs:
        for pole, attr, prompt, path in zip("ab", (p.attribute_a, p.attribute_b), (p.prompt_a, p.prompt_b), image_paths(out, p)):
            images.append((f"{p.pair_id}_{pole}", p, pole, attr, prompt, path))
    judge = make_judge(config.judge, config.judge_model, device)
    conf = _confidences(out, images, config, judge)
    verified_count: dict[tuple[str, str], int] = defaultdict(int)
    for rid, p, _, _, _, _ in images:
        for a, c in conf[rid].items():
            if c >= config.min_confidence:
                verified_count[(p.noun, a)] += 1
    rows = [_row(out, rid, p, pole, attr, prompt, path, conf[rid], judge is not None, config.min_confidence) for rid, p, pole, attr, prompt, path in images]
    (out / SPLIT).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SPLIT / METADATA_NAME, "".join(dumps_row(r) + "\n" for r in rows))
    contrasts = list(dict.fromkeys((p.noun, p.attribute_a, p.attribute_b) for p in pairs))
    retained = [(n, a, b) for n, a, b in contrasts if verified_count[(n, a)] >= config.min_samples and verified_count[(n, b)] >= config.min_samples]
    steering = _steering_rows(rows, retained, config.min_confidence)
    atomic_write_text(out / "steering.jsonl", "".join(dumps_row(r) + "\n" for r in steering))
    stats = _stats(contrasts, retained, verified_count, pairs)
    atomic_write_text(out / "stats.csv", stats[0])
    atomic_write_text(out / "stats.md", stats[1])
    counts = {"pairs": len(pairs), "images": len(rows), "contrasts": len(contrasts), "retained": len(retained), "steering_rows": len(steering),
              "verified_images": sum(1 for r in rows if r["verified"]) if judge is not None else None}
    atomic_write_text(out / "README.md", render_card("nac", vgrc_version=__version__, command=command, model=config.model, judge=config.judge,
                                                     judge_model=config.judge_model if judge is not None else "none", min_confidence=config.min_confidence,
                                                     min_samples=config.min_samples, images=len(rows), pairs=len(pairs), retained=len(retained),
                                                     contrasts=len(contrasts), stats_table=stats[2]))
    finish_dataset(out, "nac", config.record(), version=__version__, command=command, seed=config.seed, splits=[SPLIT],
                   extra={"counts": counts, "steering": "steering.jsonl", "merge": config.merge_record(),
                          "steering_thresholds": "a lower --min-samples or --min-confidence (vgrc build-nac re-merges from the kept images, no regeneration)",
                          "objects_source": "the generation prompt's noun and attribute",
                          "recommended": {"unmatched_cost": 1.0, "surplus_cost": 1.0}},
                   files=nac_files(pairs))
    return counts


def _confidences(out: Path, images: list, config, judge) -> dict[str, dict[str, float]]:
    """row id -> {attribute: the judge's confidence}, for the row's own attribute, its
    contrast and the noun's plausible attributes; answers cached in judgments.jsonl.
    Images below the optional CLIPScore prefilter are not asked (confidence 0)."""
    from PIL import Image

    plausible = load_plausible(config.plausible)
    shas = {img[0]: hashlib.sha256(img[5].read_bytes()).hexdigest() for img in images}
    passed = {img[0]: True for img in images}
    if config.clipscore_model:
        scores = clipscore([img[5] for img in images], [img[4] for img in images], config.clipscore_model)
        passed = {img[0]: bool(s >= config.clipscore_min) for img, s in zip(images, scores)}
    questions = {}
    for rid, p, pole, attr, _, _ in images:
        asked = [attr, p.attribute_b if pole == "a" else p.attribute_a, *plausible.get(p.noun, [])]
        questions[rid] = list(dict.fromkeys(asked))
    if judge is None:
        return {rid: {a: float(a == attr) for a in questions[rid]} for rid, _, _, attr, _, _ in images}
    cache = JudgmentCache(out / "judgments.jsonl", judge.model_id)
    todo = [(rid, p.noun, a, path) for rid, p, _, _, _, path in images if passed[rid] for a in questions[rid] if cache.key(shas[rid], p.noun, a) not in cache.values]
    for s in range(0, len(todo), 32):
        part = todo[s : s + 32]
        with_images = [Image.open(path).convert("RGB") for _, _, _, path in part]
        values = judge.score(with_images, [n for _, n, _, _ in part], [a for _, _, a, _ in part])
        cache.add([(cache.key(shas[rid], n, a), v) for (rid, n, a, _), v in zip(part, values)])
    return {rid: {a: (cache.values[cache.key(shas[rid], p.noun, a)] if passed[rid] else 0.0) for a in questions[rid]} for rid, p, _, _, _, _ in images}


def _row(out: Path, rid: str, p, pole: str, attr: str, prompt: str, path: Path, conf: dict, judged: bool, min_confidence: float) -> dict:
    return {
        "id": rid,
        "file_name": str(path.relative_to(out / SPLIT)),
        "caption": prompt,
        "objects": [{"noun": p.noun, "attributes": [attr], "bbox": None}],
        "pair_id": p.pair_id,
        "noun": p.noun,
        "attribute": attr,
        "pole": pole,
        "seed": p.seed,
        "prompt": prompt,
        "confidence": round(conf[attr], 6) if judged else None,
        "verified": conf[attr] >= min_confidence if judged else None,
        "detections": {a: round(c, 6) for a, c in conf.items()},
    }


def _steering_rows(rows: list[dict], retained: list, min_confidence: float) -> list[dict]:
    """Both directions of every retained contrast: positives show the target attribute,
    negatives the source one (and not the target)."""
    steering = []
    by_noun = defaultdict(list)
    for r in rows:
        by_noun[r["noun"]].append(r)
    for noun, a, b in retained:
        for src, dst in ((a, b), (b, a)):
            pos = [r["id"] for r in by_noun[noun] if r["detections"].get(dst, 0.0) >= min_confidence]
            is_pos = set(pos)
            neg = [r["id"] for r in by_noun[noun] if r["detections"].get(src, 0.0) >= min_confidence and r["id"] not in is_pos]
            steering.append({
                "id": f"{noun}|{src}->{dst}", "noun": noun, "category": f"{a}/{b}", "source": [src], "target": [dst],
                "source_query": f"a photo of {_article(src)} {src} {noun}", "target_query": f"a photo of {_article(dst)} {dst} {noun}",
                "positives": pos, "negatives": neg,
            })
    return steering


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _stats(contrasts, retained, verified_count, pairs):
    per_pair = defaultdict(lambda: {"nouns": [], "retained": []})
    for n, a, b in contrasts:
        per_pair[(a, b)]["nouns"].append(n)
    for n, a, b in retained:
        per_pair[(a, b)]["retained"].append(n)
    samples = defaultdict(int)
    for p in pairs:
        samples[(p.noun, p.attribute_a, p.attribute_b)] += 1
    csv = ["noun,attribute_a,attribute_b,pairs_generated,verified_a,verified_b,retained"]
    for n, a, b in contrasts:
        csv.append(f"{n},{a},{b},{samples[(n, a, b)]},{verified_count[(n, a)]},{verified_count[(n, b)]},{int((n, a, b) in set(retained))}")
    table = ["| Attribute pair | Nouns retained | Nouns tried |", "|---|---|---|"]
    for (a, b), v in per_pair.items():
        table.append(f"| {a}/{b} | {', '.join(v['retained']) or '—'} | {len(v['nouns'])} |")
    md = "# NAC statistics\n\n" + f"{len(retained)} of {len(contrasts)} noun contrasts retained.\n\n" + "\n".join(table) + "\n"
    return "\n".join(csv) + "\n", md, "\n".join(table)
