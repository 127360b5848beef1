"""Region embeddings, cached like image embeddings.

A box becomes a picture (``crop``: the box cut out; ``mask``: the box kept in place and
the rest of the image filled with the median colour of its border), goes through the
model's own preprocessing and its image tower, and is stored in the embedding cache under
``<model key>-regions`` by a key made of the image's content key, the mode and the box.
Per-image region sets whose regions come from the model itself (``patches``) are stored
whole, padded, under a namespace naming the method and its parameters
(:func:`encode_region_sets`). A second run with the same model, boxes and parameters
encodes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from vgrc.evaluators.encoders.cache import EmbeddingCache, EncodeStats, content_key, encode_cached
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.objects.candidates import RegionSets

__all__ = ["image_keys", "read_image", "box_picture", "occlusion_vectors", "encode_boxes", "encode_region_sets", "clamp_box"]


def image_keys(setup, paths: Sequence[os.PathLike]) -> list[str]:
    """The content key of every image (from the file-key memo; the encode stage listed them)."""
    from vgrc.evaluators.encoders.file_keys import FileKeys

    found = FileKeys(setup.cache_root, write=False).keys(paths)
    bad = next((p for p, k in zip(paths, found) if isinstance(k, OSError)), None)
    if bad is not None:
        raise InvalidInputError(f"cannot read image {bad} to cut its regions")
    return list(found)


def clamp_box(box, width: int, height: int) -> tuple[int, int, int, int] | None:
    """``[x, y, w, h]`` (floats, pixels) → integer ``(left, top, right, bottom)`` inside the
    image, at least 2 px a side; None when the box misses the image."""
    x, y, w, h = (float(v) for v in box)
    left, top = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    right, bottom = min(width, int(np.ceil(x + w))), min(height, int(np.ceil(y + h)))
    if right - left < 2 or bottom - top < 2:
        return None
    return left, top, right, bottom


def box_picture(image, box: tuple[int, int, int, int], mode: str):
    """The PIL picture of one region: the crop; (``mask``) the whole frame with only the
    box's pixels kept and the rest filled with the median colour of the image's border; or
    (``occlude``) the whole image with the box filled with that colour instead."""
    if mode == "crop":
        return image.crop(box)
    arr = np.asarray(image)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    fill = tuple(int(v) for v in np.median(border, axis=0))
    from PIL import Image

    if mode == "occlude":
        canvas = image.copy()
        canvas.paste(Image.new("RGB", (box[2] - box[0], box[3] - box[1]), fill), box[:2])
        return canvas
    canvas = Image.new("RGB", image.size, fill)
    canvas.paste(image.crop(box), box[:2])
    return canvas


def occlusion_vectors(image_emb: np.ndarray, owner: np.ndarray, occluded: np.ndarray) -> np.ndarray:
    """What each region adds to its image: ``normalize(e(image) − e(image without the
    region))`` (occlusion sensitivity, Zeiler & Fergus 2014, in embedding space)."""
    diff = image_emb[owner].astype(np.float64) - occluded
    norm = np.linalg.norm(diff, axis=1, keepdims=True)
    return (diff / np.where(norm > 0, norm, 1)).astype(np.float32)


@lru_cache(maxsize=16)
def read_image(path: str):
    from vgrc.evaluators.encoders.pixels import pil_rgb

    with open(path, "rb") as fh:
        return pil_rgb(fh.read())


def _cached(setup, namespace: str, keys: list[str], load: Callable, encode: Callable, dim: int, progress, label: str) -> np.ndarray:
    """``encode_cached`` under ``<model key>-<namespace>``, counted in the run's ``regions`` statistics."""
    cache = EmbeddingCache(setup.cache_root, f"{setup.key}-{namespace}")
    emb, stats = encode_cached(keys, load, encode, cache, dim, chunk=setup.config.batch_size * 4,
                               on_progress=lambda d, t: progress(label, d, t), load_threads=2)
    setup.stats.setdefault("regions", EncodeStats())
    setup.stats["regions"] += stats
    return emb


def encode_boxes(setup, paths: Sequence[os.PathLike], boxes: list[list[tuple[int, int, int, int]]], mode: str, image_emb: np.ndarray, progress,
                 label: str = "encoding regions") -> RegionSets:
    """The image tower's embedding of every box of every image (uniform weights within an
    image); ``boxes[i]`` are integer ``(left, top, right, bottom)`` boxes of ``paths[i]``,
    ``image_emb`` (N, d) the images' own embeddings (``occlude`` subtracts from them)."""
    keys_of_images = image_keys(setup, paths)
    owner, flat, keys = [], [], []
    for i, image_boxes in enumerate(boxes):
        for b in image_boxes:
            owner.append(i)
            flat.append(b)
            keys.append(content_key(f"{keys_of_images[i]}|{mode}|{','.join(map(str, b))}"))
    def load(j: int):
        return setup.encoder.load().preprocess(box_picture(read_image(str(paths[owner[j]])), flat[j], mode))

    def encode(items):
        import torch

        return setup.encoder.encode_pixels(torch.stack(items))

    emb = _cached(setup, "regions", keys, load, encode, image_emb.shape[1], progress, label)
    if mode == "occlude":
        emb = occlusion_vectors(image_emb, np.asarray(owner, np.int64), emb)
    counts = [len(b) for b in boxes]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    weight = np.concatenate([np.full(c, 1.0 / c) for c in counts if c]) if any(counts) else np.zeros(0)
    return RegionSets(emb, weight, offsets, boxes=np.asarray(flat, np.float64).reshape(-1, 4))


def encode_region_sets(setup, paths: Sequence[os.PathLike], tag: str, max_regions: int, dim: int, compute: Callable, progress,
                       label: str = "cutting regions") -> RegionSets:
    """Per-image region sets made by ``compute(pixels (B, 3, H, W)) -> (emb (B, K, d),
    weight (B, K))`` (weight 0 = no region), cached whole under ``<model key>-regions-<tag>``."""
    keys = image_keys(setup, paths)

    def load(i: int):
        with open(paths[i], "rb") as fh:
            return setup.encoder.load().load_pixels(fh.read(), str(paths[i]))

    def encode(items):
        import torch

        emb, weight = compute(torch.stack(items))
        return np.concatenate([weight[:, :, None], emb], axis=2).reshape(len(items), -1).astype(np.float32)

    packed = _cached(setup, f"regions-{tag}", keys, load, encode, max_regions * (1 + dim), progress, label)
    packed = packed.reshape(len(keys), max_regions, -1)
    weight, emb = packed[:, :, 0].astype(np.float64), packed[:, :, 1:]
    keep = weight > 0
    return RegionSets.from_lists([emb[i][keep[i]] for i in range(len(keys))], [weight[i][keep[i]] for i in range(len(keys))], dim)
