"""Benchmark: every importer at its dataset's full size (issue 10).

Synthetic sources in the real formats and sizes, written to a temporary folder:

- SugarCrepe: 7,511 records over the seven category files (string keys with a gap, stray
  white space), 5,000 COCO-like images reused across records; objects parsed by ``rules``.
- CLEVR-HOPE: a scenes file of 70,000 scenes (3–10 objects each, CLEVR's keys, ~120 MB)
  and one small PNG per scene; the paper's subset of 1,000 scenes with ≥ 2 objects.
- Urban1K: 1,000 image/caption pairs, captions of ~5 sentences over several lines.

Each importer runs as a separate ``vgrc import`` process, so the wall time includes
start-up and imports. Peak RSS is that process tree's largest resident size, sampled
every 20 ms. Baseline in the same run, for the one large source: ``json.load`` of the
whole CLEVR scenes file plus the same selection, in a separate process.

Usage::

    python benchmarks/bench_import.py [--clevr-scenes 70000]

Last line: ``RESULT import_sugarcrepe_seconds=<s> import_clevr_seconds=<s> import_urban1k_seconds=<s>
peak_rss_mb=<m> clevr_naive_json_load_seconds=<s> clevr_naive_peak_rss_mb=<m>``
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

from bench_shapes import PeakTreeRSS  # benchmarks/ is on sys.path when run as a script

CATEGORIES = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
SIZES = {"add_att": 692, "add_obj": 2062, "replace_att": 788, "replace_obj": 1652, "replace_rel": 1406, "swap_att": 666, "swap_obj": 245}  # 7,511


def vgrc_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("vgrc")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "vgrc.cli.main"]


def tiny_png(seed: int) -> bytes:
    import numpy as np

    from vgrc.generators._util.png import encode_rgb_png

    return encode_rgb_png(np.full((8, 8, 3), seed % 256, dtype=np.uint8))


def make_sugarcrepe(root: Path) -> tuple[Path, Path]:
    rng = random.Random(0)
    coco = root / "val2017"
    coco.mkdir(parents=True)
    png = tiny_png(1)
    names = [f"{i:012d}.jpg" for i in range(5000)]
    for n in names:
        (coco / n).write_bytes(png)  # content does not matter to the importer
    colours, nouns = ["red", "blue", "green", "white", "black"], ["man", "dog", "horse", "table", "car", "cat", "bus"]
    data = root / "sugar-crepe" / "data"
    data.mkdir(parents=True)
    for cat in CATEGORIES:
        recs = {}
        for k in range(SIZES[cat] + 1):
            if k == 3:
                continue  # a deleted key, as upstream
            a, b = rng.sample(nouns, 2)
            recs[str(k)] = {"filename": rng.choice(names), "caption": f" A {rng.choice(colours)} {a} next to a  {b}.\n",
                            "negative_caption": f"A {rng.choice(colours)} {b} next to a {a}."}
        (data / f"{cat}.json").write_text(json.dumps(recs))
    return root / "sugar-crepe", coco


def make_clevr(root: Path, n: int) -> tuple[Path, Path]:
    rng = random.Random(1)
    images = root / "images"
    images.mkdir(parents=True)
    png = tiny_png(2)
    scenes = []
    for i in range(n):
        k = rng.randint(3, 10)
        objs = [{"shape": rng.choice(["sphere", "cube", "cylinder"]), "color": rng.choice(["red", "blue", "gray", "green", "brown", "purple", "cyan", "yellow"]),
                 "material": rng.choice(["rubber", "metal"]), "size": rng.choice(["small", "large"]), "3d_coords": [rng.random(), rng.random(), 0.35],
                 "pixel_coords": [rng.randint(0, 480), rng.randint(0, 320), 10.0], "rotation": rng.random() * 360} for _ in range(k)]
        rel = {d: [sorted(rng.sample(range(k), rng.randint(0, k - 1))) for _ in range(k)] for d in ("left", "right", "front", "behind")}
        name = f"CLEVR_train_{i:06d}.png"
        scenes.append({"image_index": i, "image_filename": name, "split": "train", "objects": objs, "relationships": rel, "directions": {}})
        (images / name).write_bytes(png)
    path = root / "CLEVR_train_scenes.json"
    path.write_text(json.dumps({"info": {"split": "train", "version": "1.0"}, "scenes": scenes}))
    return path, images


def make_urban(root: Path) -> Path:
    rng = random.Random(2)
    src = root / "Urban1k"
    (src / "image").mkdir(parents=True)
    (src / "caption").mkdir()
    png = tiny_png(3)
    words = "street building car person tree sky window sign bus bicycle shop light road crowd lamp".split()
    for i in range(1, 1001):
        (src / "image" / f"{i}.jpg").write_bytes(png)
        sentences = [f"The image shows a {rng.choice(words)} near a {rng.choice(words)}, with a {rng.choice(words)} in the background." for _ in range(5)]
        (src / "caption" / f"{i}.txt").write_text(" ".join(sentences[:3]) + "\n" + " ".join(sentences[3:]) + "\n")
    return src


NAIVE_CLEVR = r"""
import json, random, sys
from pathlib import Path
scenes = json.load(open(sys.argv[1]))["scenes"]
images = Path(sys.argv[2])
eligible = [s for s in scenes if len(s["objects"]) >= 2 and (images / s["image_filename"]).is_file()]
chosen = random.Random(0).sample(eligible, 1000)
print(len(chosen))
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    import psutil

    with PeakTreeRSS() as mem:
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
    return wall, (mem.peak - psutil.Process().memory_info().rss) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clevr-scenes", type=int, default=70_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        t0 = time.perf_counter()
        src, coco = make_sugarcrepe(tmp / "sc")
        scenes, images = make_clevr(tmp / "clevr", args.clevr_scenes)
        urban = make_urban(tmp / "urban")
        print(f"sources written in {time.perf_counter() - t0:.1f} s; CLEVR scenes file {scenes.stat().st_size / 2**20:.0f} MB")
        vgrc = vgrc_cmd()
        sc = timed([*vgrc, "import", "sugarcrepe", "--src", str(src), "--coco-images", str(coco), "--out", str(tmp / "o-sc"), "-q"])
        cl = timed([*vgrc, "import", "clevr-hope", "--scenes", str(scenes), "--images", str(images), "--out", str(tmp / "o-cl"), "-q"])
        ub = timed([*vgrc, "import", "urban1k", "--src", str(urban), "--out", str(tmp / "o-ub"), "-q"])
        naive = timed([sys.executable, "-c", NAIVE_CLEVR, str(scenes), str(images)])
        counts = {name: json.loads((tmp / out / "manifest.json").read_text())["counts"] for name, out in (("sugarcrepe", "o-sc"), ("clevr", "o-cl"), ("urban1k", "o-ub"))}
        print(f"sugarcrepe  {counts['sugarcrepe']['records']:,} records: {sc[0]:.2f} s, peak {sc[1]:.0f} MB")
        print(f"clevr-hope  {counts['clevr']['rows']:,} of {counts['clevr']['scenes_in_file']:,} scenes: {cl[0]:.2f} s, peak {cl[1]:.0f} MB "
              f"| naive json.load + select: {naive[0]:.2f} s, peak {naive[1]:.0f} MB")
        print(f"urban1k     {counts['urban1k']['pairs']:,} pairs: {ub[0]:.2f} s, peak {ub[1]:.0f} MB")
        peak = max(sc[1], cl[1], ub[1])
        print(f"RESULT import_sugarcrepe_seconds={sc[0]:.2f} import_clevr_seconds={cl[0]:.2f} import_urban1k_seconds={ub[0]:.2f} peak_rss_mb={peak:.0f} "
              f"clevr_naive_json_load_seconds={naive[0]:.2f} clevr_naive_peak_rss_mb={naive[1]:.0f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
