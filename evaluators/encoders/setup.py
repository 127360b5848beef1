"""Encoding for an evaluation: the encoder with its two embedding caches, images read
tolerantly (``--skip-bad``) and lazily (only those missing from the cache, chunk by chunk;
their keys from :mod:`~vgrc.evaluators.encoders.file_keys`), and the encode statistics recorded in
``run.json``.

A fully cached run never imports torch or open_clip (~4 s here): the cache's namespace
(the model's cache key) is remembered in ``model-keys.json`` under the cache folder,
keyed by everything the key is computed from — ``--model``, ``--pretrained`` (with the
checkpoint's size and modification time), seed, precision, the installed open_clip
version and, for vgrc's shipped configs, their bytes. The first run with a new identity
imports open_clip, computes the key and records it; the encoder itself is created only
when something is missing from the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from vgrc.evaluators.dataset import atomic_write_text
from vgrc.evaluators.encoders.cache import EmbeddingCache, EncodeStats, content_key, default_cache_dir, encode_cached
from vgrc.evaluators.encoders.clip import BadImageError, ClipEncoder
from vgrc.evaluators.encoders.models import resolve_model
from vgrc.evaluators.errors import DatasetFolderError

__all__ = ["EncodingSetup", "model_identity", "KEY_RECORD"]

#: file under the cache folder: model identity -> cache key and resolved spec
KEY_RECORD = "model-keys.json"


def _identity(config) -> str:
    from importlib.metadata import PackageNotFoundError, version

    from vgrc.evaluators.encoders.model_refs import TINY_CONFIG_DIR

    try:
        open_clip_version = version("open_clip_torch")
    except PackageNotFoundError:
        open_clip_version = None
    parts = {"model": config.model, "pretrained": config.pretrained, "seed": config.seed, "precision": config.precision,
             "open_clip": open_clip_version, "format": 1}
    for ref in (config.pretrained, config.model):
        if ref and os.path.exists(ref):
            st = os.stat(ref)
            parts[f"file:{ref}"] = [os.path.abspath(ref), st.st_size, int(st.st_mtime)]
    shipped = hashlib.sha256()
    for path in sorted(TINY_CONFIG_DIR.glob("*.json")):
        shipped.update(path.name.encode() + path.read_bytes())
    parts["shipped_configs"] = shipped.hexdigest()[:16]
    return json.dumps(parts, sort_keys=True)


def model_identity(config, cache_root: Path) -> tuple[str, dict]:
    """``(cache key, spec as a dict)`` of ``config``'s model, from the key record when it
    holds this identity (no torch/open_clip import), else computed and recorded."""
    path = Path(cache_root) / KEY_RECORD
    ident = _identity(config)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(records, dict):
            records = {}
    except (OSError, ValueError):
        records = {}
    hit = records.get(ident)
    if isinstance(hit, dict) and isinstance(hit.get("cache_key"), str) and isinstance(hit.get("spec"), dict):
        return hit["cache_key"], hit["spec"]
    spec = resolve_model(config.model, config.pretrained, seed=config.seed)
    key = ClipEncoder(spec, precision=config.precision).cache_key
    records[ident] = {"cache_key": key, "spec": asdict(spec)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(records, indent=1, sort_keys=True) + "\n")
    except OSError:  # a read-only cache still works, it just imports open_clip each time
        pass
    return key, asdict(spec)


def _unreadable(path, exc: OSError) -> BadImageError:
    return BadImageError(str(path), f"cannot read image {path}: {exc.strerror or exc}; pass --skip-bad to skip it")


def _encode_images_tolerant(encoder: ClipEncoder, items: list[tuple[str, bytes]], skip_bad: bool) -> np.ndarray:
    try:
        return encoder.encode_image_bytes(items)
    except BadImageError:
        if not skip_bad:
            raise
    out = []
    for item in items:  # find the damaged ones; they come back as NaN rows
        try:
            out.append(encoder.encode_image_bytes([item])[0])
        except BadImageError:
            out.append(np.full(encoder.dim, np.nan, np.float32))
    return np.stack(out)


def image_namespace(config) -> str:
    """The image cache's name after the model key. Other pixels, other embeddings: fast has
    its own; device its own per device type (nvJPEG decodes JPEGs on CUDA only). A path
    whose pixels changed gets a new version, so that no cache mixes old and new."""
    mode = getattr(config, "preprocess", "exact")
    if mode == "device":
        return f"image-device-{str(config.device).split(':')[0]}"
    if mode == "fast":
        return "image-fast-v2"  # v2: Pillow 13's pass order (pixels.vertical_first)
    return "image"


class EncodingSetup:
    """The encoder with its two embedding caches, and encoding with statistics."""

    def __init__(self, config):
        self.config = config
        self.cache_root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        self.key, self.spec_record = model_identity(config, self.cache_root)
        self.image_cache = EmbeddingCache(self.cache_root, f"{self.key}-{image_namespace(config)}")
        self.text_cache = EmbeddingCache(self.cache_root, f"{self.key}-text")
        self.stats = {"images": EncodeStats(), "texts": EncodeStats()}
        self._encoder = None

    @property
    def encoder(self) -> ClipEncoder:
        """The model, made on first use: a fully cached run never makes it."""
        if self._encoder is None:
            c = self.config
            spec = resolve_model(c.model, c.pretrained, seed=c.seed)
            from vgrc.evaluators.sharding import rank_device

            self._encoder = ClipEncoder(spec, device=rank_device(c.device), precision=c.precision, batch_size=c.batch_size,
                                        decode_workers=getattr(c, "decode_workers", None), preprocess=getattr(c, "preprocess", "exact"))
            if self._encoder.cache_key != self.key:  # the key record is stale (an edited config, say): recompute it
                raise DatasetFolderError(f"{self.cache_root / KEY_RECORD} disagrees with the model's cache key; delete that file and run again")
        return self._encoder

    def encode_images(self, paths: Sequence[Path], progress) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Embeddings (NaN rows for skipped images), the skipped mask, the skipped paths.

        Images are not held in memory: their content keys come from the file-key memo or a
        streamed hash (:mod:`~vgrc.evaluators.encoders.file_keys`), and only the images missing from
        the cache are read, chunk by chunk, when they are encoded: in reader threads, the next
        chunk while the current one is encoded (:mod:`~vgrc.evaluators.encoders.io_threads`)."""
        from vgrc.evaluators import sharding
        from vgrc.evaluators.encoders.file_keys import FileKeys

        skip_bad = self.config.skip_bad
        file_keys = FileKeys(self.cache_root, write=sharding.is_main())
        found = file_keys.keys(paths)
        self.stats["images"].hashed += file_keys.hashed
        keys, bad = [], []
        for p, key in zip(paths, found):
            if isinstance(key, OSError):
                if not skip_bad:
                    raise _unreadable(p, key)
                bad.append(str(p))
                keys.append(f"missing:{p}")
            else:
                keys.append(key)

        def load(i: int) -> tuple[str, bytes | None]:
            """The image's bytes, read now, checked against the key it was listed under (by its
            stat signature, or by hashing them again: :meth:`FileKeys.read`)."""
            if keys[i].startswith("missing:"):
                return str(paths[i]), None
            try:
                data, unchanged = file_keys.read(paths[i])
            except OSError as exc:
                if not skip_bad:
                    raise _unreadable(paths[i], exc) from exc
                return str(paths[i]), None
            if not unchanged and content_key(data) != keys[i]:
                raise DatasetFolderError(f"{paths[i]} changed while this run was encoding it; run the command again")
            return str(paths[i]), data

        def encode_items(batch):
            encoder = self.encoder
            good = [it for it in batch if it[1] is not None]
            emb = _encode_images_tolerant(encoder, good, skip_bad) if good else np.zeros((0, 1), np.float32)
            rows, j = [], 0
            for it in batch:
                if it[1] is None:
                    rows.append(None)
                else:
                    rows.append(emb[j])
                    j += 1
            dim = emb.shape[1] if len(emb) else encoder.load().dim
            return np.stack([r if r is not None else np.full(dim, np.nan, np.float32) for r in rows])

        emb, st = encode_cached(keys, load, encode_items, self.image_cache, chunk=self.config.batch_size * 16, on_progress=lambda d, t: progress("encoding images", d, t),
                                sharded=True, load_threads=max(1, file_keys.reader_threads))  # ≥ 1: the next chunk is read during this one's encoding
        self.stats["images"] += st
        failed = ~np.isfinite(emb).all(axis=1)
        skipped = sorted(set(bad) | {str(paths[i]) for i in np.flatnonzero(failed)})
        if skipped and failed.sum() < len(paths):  # all of them: the task's error line says so
            from vgrc.evaluators.errors import warn
            from vgrc.evaluators.runs import skipped_images_note

            warn(skipped_images_note(skipped))
        return emb, failed, skipped

    def encode_texts(self, texts: list[str], progress) -> np.ndarray:
        emb, st = encode_cached([content_key(t) for t in texts], lambda i: texts[i], lambda batch: self.encoder.encode_texts(batch), self.text_cache, chunk=self.config.batch_size * 16, on_progress=lambda d, t: progress("encoding texts", d, t), sharded=True)
        self.stats["texts"] += st
        return emb

    def encode_phrases(self, phrases: list[str], progress) -> np.ndarray:
        """Per-object phrase embeddings (paper Eq. 3/7): each phrase in every prompt
        template, each normalised, averaged, normalised again. Shape (len(phrases), d)."""
        from vgrc.evaluators.first_stage.search import normalize

        templates = self.config.templates
        if not phrases:
            return np.zeros((0, 1), np.float32)
        filled = [t.format(ph) for ph in phrases for t in templates]
        emb = self.encode_texts(filled, progress).reshape(len(phrases), len(templates), -1)
        return normalize(normalize(emb).mean(axis=1))
