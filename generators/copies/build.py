r"""``vgrc build-copies``: a near-duplicate retrieval set with exact ground truth, from any
image folder or vgrc dataset, with no download (issue 26).

Every source image gets ``--copies N`` transformed copies. Each copy is the source warped by
a random homography :math:`H = T\,R\,S\,P` — a perspective jitter P (each corner moved by up
to ``perspective`` × the side), a scale S in [``scale_min``, 1], a rotation R in ±``rotate``
degrees about the centre and a translation T of up to ``shift`` × the side — onto a canvas
the size of the source (what falls outside is cropped; uncovered pixels are black), then
colour-jittered (brightness, contrast and saturation factors in [1 − ``jitter``,
1 + ``jitter``]) and JPEG-encoded at a quality in [``jpeg_min``, 95].

The dataset has two splits:

``originals``
    the source images, referenced where they are (not copied): ``id``, ``file_name``.
``copies``
    the copies (``copies/images/<id>-<j>.jpg``): ``id``, ``file_name``, ``query_of`` (the
    source's id) and ``transform``: ``homography`` (3 × 3, source pixel → copy pixel, row
    major), ``scale``, ``rotate_deg``, ``jitter`` (the three factors), ``jpeg_quality``.

The transform of copy ``j`` of image ``id`` depends only on ``--seed``, ``id`` and ``j``, so
the dataset does not depend on the order of the images, and an interrupted build resumes:
finished copies (each written atomically) are kept.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vgrc.evaluators import __version__
from vgrc.evaluators.dataset import atomic_write_bytes, atomic_write_text, finish_dataset, prepare_output, read_manifest, read_split, write_jsonl
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.retrieval_data import default_split
from vgrc.generators.importers._common import IMAGE_EXTENSIONS, ProgressFn

__all__ = ["CopiesConfig", "CopiesResult", "build_copies", "copy_transform", "warp"]


@dataclass
class CopiesConfig:
    """Everything the copies depend on (a resumed build must match it)."""

    src: str
    copies: int = 3
    perspective: float = 0.08
    scale_min: float = 0.6
    rotate: float = 25.0
    shift: float = 0.1
    jitter: float = 0.3
    jpeg_min: int = 40
    limit: int | None = None
    seed: int = 0

    def check(self) -> None:
        import math

        if self.copies < 1:
            raise InvalidInputError(f"--copies must be ≥ 1, got {self.copies}")
        if self.limit is not None and self.limit < 1:
            raise InvalidInputError(f"--limit must be ≥ 1, got {self.limit}")
        for flag, value, lo, hi in (("--perspective", self.perspective, 0, 0.3), ("--scale-min", self.scale_min, 0.1, 1), ("--rotate", self.rotate, 0, 180),
                                    ("--shift", self.shift, 0, 0.5), ("--jitter", self.jitter, 0, 0.9)):
            if not (math.isfinite(value) and lo <= value <= hi):
                raise InvalidInputError(f"{flag} must be in [{lo:g}, {hi:g}], got {value}")
        if not 1 <= self.jpeg_min <= 95:
            raise InvalidInputError(f"--jpeg-min must be in [1, 95], got {self.jpeg_min}")


@dataclass
class CopiesResult:
    out: Path
    state: str
    counts: dict = field(default_factory=dict)
    written: int = 0
    kept: int = 0


def _rng(seed: int, image_id: str, j: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}|{image_id}|{j}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def copy_transform(config: CopiesConfig, image_id: str, j: int, width: int, height: int) -> dict:
    """The recorded transform of copy ``j`` of ``image_id`` (a ``width`` × ``height`` source)."""
    rng = _rng(config.seed, image_id, j)
    w, h = float(width), float(height)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]])
    moved = src + rng.uniform(-1, 1, size=(4, 2)) * config.perspective * np.array([w, h])
    P = _homography_from_points(src, moved)
    s = rng.uniform(config.scale_min, 1.0)
    theta = np.deg2rad(rng.uniform(-config.rotate, config.rotate))
    c, si = np.cos(theta), np.sin(theta)
    centre = np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1]])
    back = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]])
    RS = centre @ np.array([[c * s, -si * s, 0], [si * s, c * s, 0], [0, 0, 1]]) @ back
    tx, ty = rng.uniform(-1, 1, size=2) * config.shift * np.array([w, h])
    H = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]]) @ RS @ P
    H = H / H[2, 2]
    jitter = [float(v) for v in rng.uniform(1 - config.jitter, 1 + config.jitter, size=3)]
    quality = int(rng.integers(config.jpeg_min, 96))
    return {"homography": [float(v) for v in H.ravel()], "scale": float(s), "rotate_deg": float(np.rad2deg(theta)),
            "jitter": {"brightness": jitter[0], "contrast": jitter[1], "saturation": jitter[2]}, "jpeg_quality": quality}


def _homography_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3 × 3 H with ``H [x, y, 1]ᵀ ∝ [x', y', 1]ᵀ`` for four point pairs (direct linear transform)."""
    rows = []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    _, _, vt = np.linalg.svd(np.asarray(rows))
    H = vt[-1].reshape(3, 3)
    return H / H[2, 2]


def warp(image, transform: dict) -> bytes:
    """The copy's JPEG bytes: ``image`` (PIL, RGB) warped, jittered and encoded."""
    from PIL import Image, ImageEnhance

    H = np.asarray(transform["homography"]).reshape(3, 3)
    inv = np.linalg.inv(H)
    inv = inv / inv[2, 2]  # PIL maps each output pixel back to the input: the inverse, normalised
    out = image.transform(image.size, Image.Transform.PERSPECTIVE, tuple(inv.ravel()[:8]), resample=Image.Resampling.BILINEAR)
    j = transform["jitter"]
    out = ImageEnhance.Brightness(out).enhance(j["brightness"])
    out = ImageEnhance.Contrast(out).enhance(j["contrast"])
    out = ImageEnhance.Color(out).enhance(j["saturation"])
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=transform["jpeg_quality"])
    return buf.getvalue()


def source_images(src: Path, limit: int | None, seed: int) -> tuple[list[tuple[str, Path]], str]:
    """``(id, path)`` of every source image — a vgrc dataset's main split, or every image file
    under a folder (id = its path relative to the folder, without the suffix) — and a
    description; ``--limit`` keeps a seeded subset."""
    if (src / "manifest.json").is_file():
        manifest = read_manifest(src)
        split = default_split(manifest)
        found = []
        for r in read_split(src, split):
            p = Path(r["file_name"])
            found.append((str(r["id"]), p if p.is_absolute() else src / split / p))
        what = f"the {split!r} split of the vgrc dataset {src}"
    elif src.is_dir():
        found = sorted((p.relative_to(src).with_suffix("").as_posix(), p) for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        what = f"the image files under {src}"
    else:
        raise InvalidInputError(f"--src {src}: no such folder; give an image folder or a vgrc dataset folder")
    if not found:
        raise InvalidInputError(f"--src {src}: no images found ({', '.join(IMAGE_EXTENSIONS)})")
    if limit is not None and limit < len(found):
        import random

        keep = set(random.Random(seed).sample(range(len(found)), limit))
        found = [f for i, f in enumerate(found) if i in keep]
    return found, what


def _name(image_id: str, j: int) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in image_id)
    return f"images/{safe}-{hashlib.sha256(image_id.encode()).hexdigest()[:6]}-{j}.jpg"


def build_copies(out: str | os.PathLike, config: CopiesConfig, *, overwrite: bool = False, command: str = "vgrc build-copies",
                 on_progress: ProgressFn | None = None) -> CopiesResult:
    """Build (or resume) the copies dataset in ``out``; see the module documentation."""
    from PIL import Image

    config.check()
    out, src = Path(out), Path(config.src)
    sources, what = source_images(src, config.limit, config.seed)
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise InvalidInputError(f"--out {out} is inside --src {src}; write the copies elsewhere")
    names = [_name(i, j) for i, _ in sources for j in range(config.copies)]
    files = ["README.md", "originals/metadata.jsonl", "copies/metadata.jsonl", *(f"copies/{n}" for n in names)]
    record = {**asdict(config), "src": str(src.resolve())}
    state = prepare_output(out, "copies", record, overwrite=overwrite, files=files)
    if state == "complete":
        return CopiesResult(out, state, read_manifest(out).get("counts", {}))
    (out / "copies" / "images").mkdir(parents=True, exist_ok=True)
    (out / "originals").mkdir(parents=True, exist_ok=True)
    originals, copies, written, kept = [], [], 0, 0
    total = len(names)
    for n, (image_id, path) in enumerate(sources):
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except OSError as exc:
            raise InvalidInputError(f"cannot read source image {path}: {exc}") from None
        originals.append({"id": image_id, "file_name": os.path.relpath(path.resolve(), (out / "originals").resolve())})
        for j in range(config.copies):
            name = _name(image_id, j)
            transform = copy_transform(config, image_id, j, *image.size)
            target = out / "copies" / name
            if target.is_file():
                kept += 1
            else:
                atomic_write_bytes(target, warp(image, transform))
                written += 1
            copies.append({"id": f"{image_id}#{j}", "file_name": name, "query_of": image_id, "transform": transform})
            if on_progress:
                on_progress(n * config.copies + j + 1, total)
    write_jsonl(out / "originals" / "metadata.jsonl", originals)
    write_jsonl(out / "copies" / "metadata.jsonl", copies)
    from vgrc.data_cards import render_card

    counts = {"originals": len(originals), "copies": len(copies)}
    atomic_write_text(out / "README.md", render_card("copies", vgrc_version=__version__, command=command, originals=f"{len(originals):,}",
                                                     copies=f"{len(copies):,}", per_image=config.copies, source=what, seed=config.seed))
    finish_dataset(out, "copies", record, version=__version__, command=command, seed=config.seed, splits=["copies", "originals"], files=files,
                   extra={"counts": counts, "source": what, "query_split": "copies", "gallery_split": "originals"})
    return CopiesResult(out, state, counts, written, kept)
