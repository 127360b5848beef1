"""Encoding for an evaluation: the encoder with its two embedding caches, images read
tolerantly (``--skip-bad``), and the encode statistics recorded in ``run.json``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vgrc.evaluators.embedding_cache import EmbeddingCache, EncodeStats, content_key, default_cache_dir, encode_cached
from vgrc.evaluators.encoders import BadImageError, ClipEncoder, resolve_model

__all__ = ["EncodingSetup"]


def _read_images(paths: Sequence[Path], skip_bad: bool) -> tuple[list[bytes | None], list[str]]:
    data, bad = [], []
    for p in paths:
        try:
            data.append(Path(p).read_bytes())
        except OSError as exc:
            if not skip_bad:
                raise BadImageError(str(p), f"cannot read image {p}: {exc.strerror or exc}; pass --skip-bad to skip it") from exc
            data.append(None)
            bad.append(str(p))
    return data, bad


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


class EncodingSetup:
    """The encoder with its two embedding caches, and encoding with statistics."""

    def __init__(self, config):
        self.config = config
        self.spec = resolve_model(config.model, config.pretrained, seed=config.seed)
        self.encoder = ClipEncoder(self.spec, device=config.device, precision=config.precision, batch_size=config.batch_size,
                                   decode_workers=getattr(config, "decode_workers", None))
        self.cache_root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        self.key = self.encoder.cache_key
        self.image_cache = EmbeddingCache(self.cache_root, f"{self.key}-image")
        self.text_cache = EmbeddingCache(self.cache_root, f"{self.key}-text")
        self.stats = {"images": EncodeStats(), "texts": EncodeStats()}

    def encode_images(self, paths: Sequence[Path], progress) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Embeddings (NaN rows for skipped images), the skipped mask, the skipped paths."""
        skip_bad = self.config.skip_bad
        data, bad = _read_images(paths, skip_bad)
        keys = [content_key(d) if d is not None else f"missing:{p}" for d, p in zip(data, paths)]
        items = [(str(p), d) for p, d in zip(paths, data)]
        encoder = self.encoder

        def encode_items(batch):
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

        emb, st = encode_cached(keys, lambda i: items[i], encode_items, self.image_cache, chunk=max(1024, self.config.batch_size * 16), on_progress=lambda d, t: progress("encoding images", d, t))
        self.stats["images"] += st
        failed = ~np.isfinite(emb).all(axis=1)
        return emb, failed, sorted(set(bad) | {str(paths[i]) for i in np.flatnonzero(failed)})

    def encode_texts(self, texts: list[str], progress) -> np.ndarray:
        emb, st = encode_cached([content_key(t) for t in texts], lambda i: texts[i], self.encoder.encode_texts, self.text_cache, chunk=1024, on_progress=lambda d, t: progress("encoding texts", d, t))
        self.stats["texts"] += st
        return emb

    def encode_phrases(self, phrases: list[str], progress) -> np.ndarray:
        """Per-object phrase embeddings (paper Eq. 3/7): each phrase in every prompt
        template, each normalised, averaged, normalised again. Shape (len(phrases), d)."""
        from vgrc.evaluators.first_stage import normalize

        templates = self.config.templates
        if not phrases:
            return np.zeros((0, 1), np.float32)
        filled = [t.format(ph) for ph in phrases for t in templates]
        emb = self.encode_texts(filled, progress).reshape(len(phrases), len(templates), -1)
        return normalize(normalize(emb).mean(axis=1))
