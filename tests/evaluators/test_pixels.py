"""``--preprocess fast`` (torchvision decode + uint8 resize) against open_clip's own PIL
preprocessing: same shapes and crops on every size and mode, pixels within 2/255 in a few
per thousand, decoding identical, unsupported steps refused, its own embedding cache."""

import numpy as np
import pytest
from helpers import SIZES
from helpers import image_bytes as _bytes
from helpers import picture as _picture
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Resize

from vgrc.evaluators.encoders.pixels import ExactPixels, FastPixels, UndecodableImage, pixel_function

OPEN_CLIP_STEPS = Compose([Resize(224, interpolation=InterpolationMode.BICUBIC), CenterCrop(224)])



@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize(("steps", "largest", "share"), [
    (OPEN_CLIP_STEPS, 2, 0.01),
    (Compose([Resize(224, interpolation=InterpolationMode.BILINEAR), CenterCrop(224)]), 2, 0.01),
    # unequal scale factors: Pillow 13 runs the vertical pass first on some of these images,
    # and so does fast (pixels.vertical_first); in the other order ~7% of values differed
    (Compose([Resize((160, 200), interpolation=InterpolationMode.BICUBIC)]), 2, 0.01),
], ids=["bicubic", "bilinear", "squash"])
def test_fast_pixels_are_within_a_few_levels_of_pil(fmt, steps, largest, share):
    exact, fast = ExactPixels(steps), FastPixels.from_pil_steps(steps)
    diffs = []
    for n, (w, h) in enumerate(SIZES):
        data = _bytes(_picture(w, h, n), fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        a, b = exact(data), fast(data)
        assert a.shape == b.shape and b.dtype == np.uint8 and b.flags.c_contiguous
        diffs.append(np.abs(a.astype(int) - b.astype(int)).ravel())
    diff = np.concatenate(diffs)
    assert diff.max() <= largest, diff.max()  # the same filters, rounded differently
    assert 0 < np.mean(diff > 0) < share  # not the same code (some pixels differ), but nearly everywhere equal


def test_decoding_is_identical_when_no_resampling_is_needed():
    """An image already at the model's size: the two decoders give the same pixels (PNG is
    lossless; the JPEG decoders are both libjpeg-turbo's)."""
    im = _picture(224, 224, 3)
    for data in (_bytes(im, "PNG"), _bytes(im, "JPEG", quality=85)):
        assert np.array_equal(ExactPixels(OPEN_CLIP_STEPS)(data), FastPixels.from_pil_steps(OPEN_CLIP_STEPS)(data))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "BMP"])
def test_other_modes_and_formats_become_the_same_rgb(mode):
    rgb = _picture(300, 200, 5)
    if mode == "BMP":  # torchvision cannot decode it: PIL decodes, the fast resize follows
        data = _bytes(rgb, "BMP")
    elif mode == "CMYK":
        data = _bytes(rgb.convert("CMYK"), "JPEG", quality=95)
    elif mode == "I;16":  # PIL clips 16-bit grey to white when converting to RGB; fast scales it to 8 bits
        data = _bytes(Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257)), "PNG")
    else:
        data = _bytes(rgb.convert(mode), "PNG")
    b = FastPixels.from_pil_steps(OPEN_CLIP_STEPS)(data)
    a = ExactPixels(OPEN_CLIP_STEPS)(_bytes(rgb.convert("L"), "PNG") if mode == "I;16" else data)
    assert a.shape == b.shape == (224, 224, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


@pytest.mark.parametrize("steps_cls", [ExactPixels, FastPixels.from_pil_steps])
def test_bytes_that_are_no_image_raise_undecodable(steps_cls):
    with pytest.raises(UndecodableImage):
        steps_cls(OPEN_CLIP_STEPS)(b"certainly not an image")


@pytest.mark.parametrize("steps_cls", [ExactPixels, FastPixels.from_pil_steps])
def test_a_decompression_bomb_is_refused_by_both_paths(steps_cls, monkeypatch):
    """PIL's pixel limit (here lowered) holds on the fast path too, from the header."""
    import warnings

    picture = _picture(400, 300, 1)  # 120,000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40_000)
    for fmt in ("PNG", "JPEG"):  # PNG: read from its header directly; others: PIL's header parser
        with pytest.raises(UndecodableImage, match="decompression bomb"):
            steps_cls(OPEN_CLIP_STEPS)(_bytes(picture, fmt))  # > 2 × 40,000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 61_000)  # < 2 × 61,000: decoded (PIL only warns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        assert steps_cls(OPEN_CLIP_STEPS)(_bytes(picture, "PNG")).shape == (224, 224, 3)


def test_unsupported_steps_are_named():
    from torchvision.transforms import RandomCrop

    with pytest.raises(ValueError, match="RandomCrop"):
        FastPixels.from_pil_steps(Compose([Resize(224), RandomCrop(224)]))
    with pytest.raises(ValueError, match="no Resize"):
        FastPixels.from_pil_steps(Compose([CenterCrop(224)]))
    with pytest.raises(ValueError, match="quick"):
        pixel_function("quick", OPEN_CLIP_STEPS)


def test_fast_encoder_workers_equal_threads_and_stay_close_to_exact(shapes_dir):
    """Through the real open_clip model: the worker processes and the threads give the same
    fast embeddings, bit for bit; their cosine to the exact ones is ~1 but not always 1."""
    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model

    paths = sorted((shapes_dir / "compositions" / "images").iterdir())[:24]
    items = [(str(p), _bytes(_picture(200 + 9 * i, 150 + 5 * i, i), "JPEG", quality=90)) for i, p in enumerate(paths)]
    spec = resolve_model("tiny-random")
    exact = ClipEncoder(spec, batch_size=8, decode_workers=0).encode_image_bytes(items)
    threads = ClipEncoder(spec, batch_size=8, decode_workers=0, preprocess="fast")
    procs = ClipEncoder(spec, batch_size=8, decode_workers=2, preprocess="fast")
    try:
        a, b = threads.encode_image_bytes(items), procs.encode_image_bytes(items)
        assert procs._decoders is not None and np.array_equal(a, b)
    finally:
        procs.close()
    cos = (a * exact).sum(1)
    assert cos.min() > 0.999 and not np.array_equal(a, exact)


def test_fast_on_a_model_it_cannot_mirror_is_one_error(monkeypatch):
    from torchvision.transforms import Normalize, RandomCrop, ToTensor

    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model
    from vgrc.evaluators.errors import InvalidInputError

    enc = ClipEncoder(resolve_model("tiny-random"), preprocess="fast").load()
    enc.preprocess = Compose([Resize(32), RandomCrop(32), ToTensor(), Normalize((0.5,) * 3, (0.5,) * 3)])
    with pytest.raises(InvalidInputError, match="--preprocess fast does not support .*RandomCrop.*use --preprocess exact"):
        enc.encode_image_bytes([("a.png", _bytes(_picture(64, 48, 0), "PNG"))])
