"""Helpers shared by the tests (importable: tests/ is on pytest's pythonpath)."""

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

SMALL_SHAPES = dict(size=64, limit=60, seed=7)


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root``, keyed by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_error_line(result) -> str:
    """A CLI result that failed with exit code 2 and exactly one ``error:`` line, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


def eval_one_and_sharded(tmp_path: Path, *args) -> tuple[dict, dict]:
    """`vgrc eval ARGS` in one process and with `--shards 2` (torch.distributed's launcher,
    2 local gloo workers), each with its own cache; both runs' metrics (without the config),
    after checking that both succeeded and wrote the same files and the same per-query table."""
    import json
    import sys

    import pandas as pd

    runs = {}
    for name, extra in (("one", ()), ("two", ("--shards", "2"))):
        cmd = [sys.executable, "-m", "vgrc.cli.main", "eval", *map(str, args), "--out", str(tmp_path / name), "--cache-dir", str(tmp_path / f"cache-{name}"), "-q", *extra]
        done = run_in_own_tmpdir(cmd, tmp_path / f"tmpdir-{name}")
        assert done.returncode == 0, done.stderr[-2000:]
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        runs[name] = {k: v for k, v in metrics.items() if k != "config"}
    one, two = tmp_path / "one", tmp_path / "two"
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    assert pd.read_parquet(one / "per_query.parquet").equals(pd.read_parquet(two / "per_query.parquet"))
    return runs["one"], runs["two"]


def run_in_own_tmpdir(cmd: list, tmpdir: Path):
    """``subprocess.run(cmd)`` with ``TMPDIR`` set to a new, empty ``tmpdir``; checks that the
    command left nothing there (vgrc's own temporary folders and the launcher's logs are
    removed, whether it succeeded or not)."""
    import os
    import subprocess

    tmpdir.mkdir()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "TMPDIR": str(tmpdir)})
    # torch's own per-user cache folder (made by importing open_clip, shared by every torch
    # program of this user, one per user, not per run) is torch's, not vgrc's, to keep
    left = sorted(str(p.relative_to(tmpdir)) for p in tmpdir.rglob("*") if not p.relative_to(tmpdir).parts[0].startswith("torchinductor_"))
    assert left == [], f"left in TMPDIR: {left[:10]}"
    return done


def run_two_ranks(tmp_path: Path, script: str) -> list[dict]:
    """Run ``script`` as 2 gloo ranks under torch.distributed's launcher (``argv[1]`` =
    ``tmp_path``); each rank writes ``rank-R.json`` there, returned in rank order."""
    import json
    import subprocess
    import sys

    path = tmp_path / "ranks.py"
    path.write_text(script)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--log-dir", str(tmp_path / "launcher"), str(path), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]


def picture(w: int, h: int, seed: int) -> "Image.Image":
    """Smooth colour fields, noise and hard-edged shapes (the edges are where resamplers differ)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(7 * x * rng.random() + 6 * rng.random()) * 90 + 128 + 40 * y for _ in range(3)], -1) + rng.normal(0, 10, (h, w, 3))
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
        draw.rectangle([x0, y0, x0 + int(rng.integers(4, w // 2 + 5)), y0 + int(rng.integers(4, h // 2 + 5))], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return im


def image_bytes(im: "Image.Image", fmt: str, **kw) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


#: image sizes (w, h) for the preprocessing tests: landscape, portrait, tiny, square, extreme
SIZES = [(320, 240), (640, 480), (97, 61), (224, 224), (1000, 150), (150, 700)]


def jpeg(path, shade):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), (shade % 256, (3 * shade) % 256, 120)).save(path, format="JPEG")


def write_sugarcrepe(tmp_path: Path) -> tuple[Path, Path]:
    """SugarCrepe's files and COCO images in ``tmp_path``: two records per category (keys "0"
    and "2": one deleted upstream), stray white space, images reused, one image missing."""
    from vgrc.generators.importers.sugarcrepe import CATEGORIES

    data = tmp_path / "sugar-crepe" / "data"
    data.mkdir(parents=True)
    coco = tmp_path / "val2017"
    for i in range(4):
        jpeg(coco / f"00000000000{i}.jpg", 40 * i)
    for n, cat in enumerate(CATEGORIES):
        recs = {
            "0": {"filename": f"00000000000{n % 4}.jpg", "caption": f"  A man riding a red  horse{n}.\n", "negative_caption": f"A man riding a blue horse{n}. "},
            "2": {"filename": "000000000001.jpg", "caption": f"Two dogs on a green lawn {n}", "negative_caption": f"Two cats on a green lawn {n}"},
        }
        if cat == "swap_obj":
            recs["5"] = {"filename": "000000000099.jpg", "caption": "missing image", "negative_caption": "still missing"}
        (data / f"{cat}.json").write_text(json.dumps(recs))
    return tmp_path / "sugar-crepe", coco


def coco_instances(tmp_path) -> Path:
    """COCO instances for the fixture's four images (a man and a horse; two dogs), so that
    reranked ITM compares captions with annotated objects, not with the positive caption."""
    images = [{"id": i, "file_name": f"00000000000{i}.jpg"} for i in range(4)]
    cats = [{"id": 1, "name": "man"}, {"id": 19, "name": "horse"}, {"id": 18, "name": "dog"}]
    anns = [{"image_id": i, "category_id": c, "bbox": [1, 2, 3, 4]} for i in range(4) for c in ((18, 18) if i == 1 else (1, 19))]
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps({"images": images, "categories": cats, "annotations": anns}))
    return path
