"""Benchmark: `vgrc build-vg` at full Visual Genome scale vs a naive json.load pipeline (issue 5).

The input is a synthetic VG-format ``attributes.json`` at full scale: 108,077 images,
about 2 million attribute mentions, Zipf-distributed nouns (5,000) and attributes
(20,000, with the contrast vocabulary among the frequent ones). The quirks are sprinkled
in: mixed case, doubled and surrounding spaces, trailing '.', empty strings, objects
without ``attributes``, ``name`` strings, v1.0 records (``id``, ``object_names``). It is
written one image at a time.

- vgrc: ``vgrc build-vg --vg-dir … --out …`` as a separate process (imports included),
  with peak RSS sampled every 20 ms.
- Naive baseline (named in the issue): ``json.load`` of the whole file, then a Python
  loop doing the same work: the same record normalisation, pole incidences,
  qualification, and metadata rows written as JSON Lines. It runs as a separate process
  so its own peak memory is measured too.

Last line: ``RESULT vg_full_scale_seconds=<s> vg_speedup_vs_naive=<x> peak_rss_mb=<m>``
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_shapes import PeakTreeRSS  # benchmarks/ is on sys.path when run as a script

NAIVE = r"""
import json, sys
from collections import Counter, defaultdict
from vgrc.generators.vg.records import normalize_record
from vgrc.generators.vg.contrasts import load_contrasts
from vgrc.evaluators.dataset import dumps_row
path, out = sys.argv[1], sys.argv[2]
pairs = load_contrasts()
lookup = defaultdict(list)
for k, p in enumerate(pairs):
    for pole, words in (("a", p.a), ("b", p.b)):
        for w in words:
            lookup[w].append((k, pole))
data = json.load(open(path))
repairs, inc, rows = Counter(), defaultdict(set), []
for rec in data:
    got = normalize_record(rec, repairs)
    if got is None:
        continue
    image_id, objects = got
    by_noun = defaultdict(set)
    for o in objects:
        by_noun[o["noun"]].update(o["attributes"])
    for noun, attrs in by_noun.items():
        for a in attrs:
            for k, pole in lookup.get(a, ()):
                inc[(noun, k, pole)].add(image_id)
    rows.append((image_id, objects, by_noun))
qual = {(n, k) for (n, k, pole), ids in inc.items() if pole == "a" and len(ids) >= 10 and len(inc.get((n, k, "b"), ())) >= 10}
with open(out, "w") as fh:
    for image_id, objects, by_noun in rows:
        contrastive = [{"noun": n, "category": pairs[k].category, "pole": pole}
                       for n, attrs in by_noun.items() for a in attrs for k, pole in lookup.get(a, ()) if (n, k) in qual]
        fh.write(dumps_row({"id": image_id, "objects": objects, "contrastive_attributes": contrastive}) + "\n")
print(len(rows), len(qual))
"""


def zipf_words(rng, prefix: str, n: int, head: list[str]) -> tuple[list[str], np.ndarray]:
    words = head + [f"{prefix}{i}" for i in range(n - len(head))]
    weights = 1.0 / np.arange(1, n + 1) ** 1.1
    return words, weights / weights.sum()


def quirk(word: str, r: random.Random) -> str:
    x = r.random()
    if x < 0.02:
        return word.upper() if r.random() < 0.5 else word.title()
    if x < 0.03:
        return word + "."
    if x < 0.04:
        return f"  {word} "
    if x < 0.045:
        return word.replace(" ", "  ") if " " in word else word + "  "
    if x < 0.05:
        return ""
    return word


def write_synthetic(path: Path, images: int, seed: int = 0) -> int:
    """Write the synthetic attributes.json; return the number of attribute mentions."""
    from vgrc.generators.vg.contrasts import load_contrasts

    rng = np.random.default_rng(seed)
    r = random.Random(seed)
    contrast_words = list(dict.fromkeys(w for p in load_contrasts() for w in p.a + p.b))
    head_nouns = ["man", "window", "tree", "building", "shirt", "wall", "sign", "woman", "sky", "car", "table", "dog", "cat", "bus", "plate", "road", "street", "water", "grass", "door"]
    nouns, pn = zipf_words(rng, "noun", 5000, head_nouns)
    attrs, pa = zipf_words(rng, "attr", 20000, contrast_words)
    # sample everything in bulk (a per-object rng.choice over 20,000 weights is slow)
    n_obj = rng.poisson(18, images) + 1
    obj_nouns = rng.choice(len(nouns), int(n_obj.sum()), p=pn)
    n_attrs = rng.poisson(1.05, int(n_obj.sum()))
    attr_idx = rng.choice(len(attrs), int(n_attrs.sum()), p=pa)
    boxes = rng.integers(1, 500, size=(int(n_obj.sum()), 4))
    mentions = 0
    o_at = a_at = 0
    with open(path, "w") as fh:
        fh.write("[")
        for i in range(1, images + 1):
            objs = []
            for j in range(n_obj[i - 1]):
                ni, na = obj_nouns[o_at], int(n_attrs[o_at])
                x, y, w, h = (int(v) for v in boxes[o_at])
                o_at += 1
                o = {"object_id": i * 1000 + j, "x": x, "y": y, "w": w, "h": h}
                name = quirk(nouns[ni], r) or nouns[ni]
                if r.random() < 0.01:
                    o["name"] = name
                else:
                    o["names"] = [name]
                if na == 0 and r.random() < 0.5:
                    pass  # no "attributes" key at all
                else:
                    o["attributes"] = [quirk(attrs[k], r) for k in attr_idx[a_at : a_at + na]]
                    mentions += na
                a_at += na
                objs.append(o)
            if r.random() < 0.001:
                for o in objs:
                    if "names" in o:
                        o["object_names"] = o.pop("names")
                rec = {"id": i, "attributes": objs}
            else:
                rec = {"image_id": i, "attributes": objs}
            fh.write(("," if i > 1 else "") + json.dumps(rec))
        fh.write("]")
    return mentions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=108_077)
    parser.add_argument("--keep", type=Path, default=None, help="write the synthetic VG folder here and keep it")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-vg-"))
    try:
        vg = args.keep or tmp / "vg"
        vg.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        mentions = write_synthetic(vg / "attributes.json", args.images)
        gen_s = time.perf_counter() - t0
        size_mb = (vg / "attributes.json").stat().st_size / 2**20

        exe = Path(sys.executable).with_name("vgrc")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "vgrc.cli.main"]
        with PeakTreeRSS() as ours_mem:
            t0 = time.perf_counter()
            subprocess.run([*cmd, "build-vg", "--vg-dir", str(vg), "--out", str(tmp / "out"), "-q"], check=True)
            ours = time.perf_counter() - t0
        base_rss = __import__("psutil").Process().memory_info().rss
        ours_peak = (ours_mem.peak - base_rss) / 2**20
        manifest = json.loads((tmp / "out" / "manifest.json").read_text())

        with PeakTreeRSS() as naive_mem:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", NAIVE, str(vg / "attributes.json"), str(tmp / "naive.jsonl")], check=True, capture_output=True)
            naive = time.perf_counter() - t0
        naive_peak = (naive_mem.peak - base_rss) / 2**20

        corpus = manifest["corpus"]
        print(f"synthetic attributes.json   {args.images:,} images, {mentions:,} attribute mentions, {size_mb:.0f} MB (written in {gen_s:.0f} s)")
        print(f"vgrc build-vg               {ours:.1f} s, peak RSS {ours_peak:.0f} MB; read {corpus['images']:,} images, {corpus['attribute_mentions']:,} mentions, "
              f"{corpus['unique_attribute_strings']:,} unique; {manifest['pairs_grounded']} of {manifest['pairs_total']} pairs grounded; "
              f"{sum(manifest['repairs'].values()):,} records repaired or dropped")
        print(f"naive json.load + loop      {naive:.1f} s, peak RSS {naive_peak:.0f} MB")
        print(f"RESULT vg_full_scale_seconds={ours:.1f} vg_speedup_vs_naive={naive / ours:.2f} peak_rss_mb={ours_peak:.0f} naive_peak_rss_mb={naive_peak:.0f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
