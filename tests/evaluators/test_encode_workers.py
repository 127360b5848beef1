"""Decoding and tokenising in worker processes: the same embeddings as open_clip's own
``preprocess`` and as the threaded path, bit for bit; damaged images named; nothing leaks."""

import io

import numpy as np
import pytest
from PIL import Image

from vgrc.evaluators.encoders.clip import BadImageError, ClipEncoder
from vgrc.evaluators.encoders.models import resolve_model


def _jpeg(path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def items(shapes_dir):
    paths = sorted((shapes_dir / "compositions" / "images").iterdir())[:37]
    png = [(str(p), p.read_bytes()) for p in paths]
    jpg = [(str(p) + ".jpg", _jpeg(p)) for p in paths]
    return png + jpg


def test_worker_processes_give_bit_identical_embeddings(items):
    import torch

    threads = ClipEncoder(resolve_model("tiny-random"), batch_size=8, decode_workers=0)
    procs = ClipEncoder(resolve_model("tiny-random"), batch_size=8, decode_workers=2)
    try:
        a = threads.encode_image_bytes(items)
        b = procs.encode_image_bytes(items)
        assert procs._decoders is not None  # the process path really ran
        assert np.array_equal(a, b)
        # the pixels the workers produce equal open_clip's own preprocess, bit for bit
        reference = torch.stack([threads.preprocess(Image.open(io.BytesIO(d))) for _, d in items])
        produced = torch.cat([procs._finish(px) for px, errors in procs._decode_workers().batches(items)])
        assert produced.dtype == reference.dtype and torch.equal(produced, reference)
        texts = [f"a photo of shape {i}" for i in range(50)]
        t = procs.encode_texts(texts)
        assert procs._tokenizers is not None and np.array_equal(t, threads.encode_texts(texts))
        # the pool is reused across calls (persistent workers) and the ring is not corrupted
        assert np.array_equal(procs.encode_image_bytes(items[::-1]), threads.encode_image_bytes(items[::-1]))
    finally:
        procs.close()


def test_a_damaged_image_in_the_worker_path_is_named_and_the_pool_stays_usable(items):
    enc = ClipEncoder(resolve_model("tiny-random"), batch_size=8, decode_workers=2)
    try:
        bad = [*items[:20], ("broken.png", b"not an image"), *items[20:30]]
        with pytest.raises(BadImageError, match="broken.png") as info:
            enc.encode_image_bytes(bad)
        assert info.value.name == "broken.png"
        assert np.array_equal(enc.encode_image_bytes(items[:30]), ClipEncoder(resolve_model("tiny-random"), batch_size=8, decode_workers=0).encode_image_bytes(items[:30]))
    finally:
        enc.close()
    assert enc._decoders is None


def test_negative_worker_count_is_one_line():
    from vgrc.evaluators.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="--decode-workers must be ≥ 0, got -1"):
        ClipEncoder(resolve_model("tiny-random"), decode_workers=-1)
