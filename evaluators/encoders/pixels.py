"""Image bytes → the model's input pixels (uint8, H × W × 3), before ToTensor + Normalize.

Three ways, chosen by ``--preprocess``:

- ``exact`` (default): PIL decodes and converts to RGB, then open_clip's own PIL steps
  (Resize, CenterCrop, …) run. Embeddings are bit-identical to ``model.encode_image(
  preprocess(Image.open(f)))``.
- ``fast`` (opt-in): torchvision decodes (libpng / libjpeg-turbo, without PIL's per-image
  Python work) and resizes with its uint8 antialiased kernels (vectorised), with the same
  output size and crop arithmetic as torchvision's PIL transforms. Issue 13 measured the
  cost it removes: on a 16-core GPU host PIL decoding and resizing caps ViT-B-32 bf16 at
  ~0.2 of its forward pass. Not bit-identical: resampling rounds differently from PIL's
  fixed-point kernel in a few pixels per thousand, by 1–2 levels of 255 (decoding itself
  is identical); the largest cosine deviation from the exact path is measured by
  ``benchmarks/bench_encode.py`` and recorded in docs/FIDELITY.md. Files torchvision
  cannot decode (BMP, TIFF, …) are decoded by PIL, then resized the fast way. It runs on
  the CPU (in the decode workers or threads), so its pixels are the same on every host.
- ``device`` (opt-in): whole batches are resized on the model's device, and on CUDA JPEGs
  are decoded there too (nvJPEG); :mod:`~vgrc.evaluators.encoders.device_pixels`. This module gives
  it the host decoder (:func:`host_decode`) and the header check.

``exact`` and ``fast`` are picklable callables ``bytes -> np.ndarray`` that the decode workers run; both
raise :class:`UndecodableImage` for bytes that are not an image. The module imports nothing
heavy (the CLI reads ``PREPROCESS_MODES`` for its help).
"""

from __future__ import annotations

import functools
import io

__all__ = ["PREPROCESS_MODES", "ExactPixels", "FastPixels", "UndecodableImage", "header_size", "host_decode", "is_jpeg", "pixel_function", "pil_rgb"]

#: ``--preprocess`` choices
PREPROCESS_MODES = {
    "exact": "open_clip's own PIL preprocessing: bit-identical embeddings (default)",
    "fast": "torchvision decoding and uint8 resizing: 1.3-1.9x the images per core, pixels within 2/255 of exact in a few per thousand",
    "device": "resize on the model's device (and decode JPEGs there with nvJPEG on CUDA): for fast GPUs that host decoding cannot feed",
}


class UndecodableImage(ValueError):
    """The bytes are not an image this path can decode."""


def pil_rgb(data: bytes):
    """The image in ``data`` decoded by PIL and converted to RGB (as open_clip's loaders do)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")
    except UnidentifiedImageError as exc:  # PIL's message names its BytesIO object, not the file
        raise UndecodableImage("not an image format PIL can read") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UndecodableImage(str(exc)) from exc


def check_pixel_count(data: bytes) -> None:
    """PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``), from the header
    alone, for decoders that have none; formats PIL cannot identify pass."""
    from PIL import Image, UnidentifiedImageError

    size = header_size(data)  # PNG and JPEG without PIL (its parse: ~0.1 ms, a GPU feed's whole budget per image)
    if size is not None:
        pixels, limit = size[0] * size[1], Image.MAX_IMAGE_PIXELS
        if limit and pixels > 2 * limit:
            raise UndecodableImage(f"Image size ({pixels} pixels) exceeds limit of {2 * limit} pixels, could be decompression bomb DOS attack.")
        return
    try:
        with Image.open(io.BytesIO(data)):
            pass
    except Image.DecompressionBombError as exc:
        raise UndecodableImage(str(exc)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        pass


def is_jpeg(data) -> bool:
    return bytes(data[:3]) == b"\xff\xd8\xff"


#: JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic)
_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))


def header_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` read from a PNG's IHDR or a JPEG's start-of-frame segment;
    None for other formats or a header this cannot follow (the decoder then judges)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")
    if not is_jpeg(data):
        return None
    at = 2
    while at + 4 <= len(data):  # segments: FF marker, 2-byte length (which counts itself), payload
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _SOF:
            return (int.from_bytes(data[at + 5 : at + 7], "big"), int.from_bytes(data[at + 7 : at + 9], "big")) if at + 9 <= len(data) else None
        if marker in (0xD9, 0xDA):  # end of image, or the scan before any frame header
            return None
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def host_decode(data: bytes):
    """(3, H, W) uint8 RGB on the CPU: torchvision's decoders (libpng, libjpeg-turbo;
    they release the GIL), PIL for formats they do not read; PIL's decompression-bomb
    limit checked from the header first."""
    import numpy as np
    import torch

    check_pixel_count(data)  # torchvision would allocate whatever the header claims
    try:
        image = _torchvision_decode(data)
    except (RuntimeError, ValueError, ImportError):  # a format torchvision does not read: PIL decodes it
        image = torch.from_numpy(np.asarray(pil_rgb(data)).copy()).permute(2, 0, 1)
    if image.dtype != torch.uint8:  # 16-bit PNG: to 8 bits, as PIL's RGB conversion does
        from torchvision.transforms.v2 import functional as F

        image = F.to_dtype(image, torch.uint8, scale=True)
    return image


class ExactPixels:
    """PIL decode + RGB + open_clip's PIL steps (``pil_steps``)."""

    def __init__(self, pil_steps):
        self.pil_steps = pil_steps

    def __call__(self, data: bytes):
        import numpy as np

        image = pil_rgb(data)
        try:
            return np.asarray(self.pil_steps(image))
        except (OSError, ValueError) as exc:
            raise UndecodableImage(str(exc)) from exc


class FastPixels:
    """torchvision decode + uint8 antialiased resize + centre crop.

    Parameters
    ----------
    size : int or (h, w)
        As ``torchvision.transforms.Resize``: an int resizes the shorter side to it.
    interpolation : torchvision InterpolationMode
    max_size : int, optional
    crop : (h, w), optional
        Centre crop after the resize (padded with zeros when larger, as CenterCrop does).
    """

    def __init__(self, size, interpolation, max_size=None, crop=None):
        self.size, self.interpolation, self.max_size, self.crop = size, interpolation, max_size, crop

    @classmethod
    def from_pil_steps(cls, pil_steps) -> "FastPixels":
        """The fast equivalent of a ``Compose`` of Resize [+ CenterCrop] [+ RGB conversion];
        :class:`ValueError` naming the step when there is none."""
        size = interpolation = max_size = crop = None
        for step in getattr(pil_steps, "transforms", [pil_steps]):
            kind = type(step).__name__
            if kind == "Resize" and size is None and crop is None and getattr(step, "antialias", True) is not False:
                size, interpolation, max_size = step.size, step.interpolation, step.max_size
            elif kind == "CenterCrop" and crop is None:
                crop = tuple(step.size)
            elif kind in ("MaybeConvertMode", "function") and getattr(step, "mode", "RGB") == "RGB" and (kind != "function" or "rgb" in getattr(step, "__name__", "")):
                continue  # the image is RGB already
            else:
                raise ValueError(f"{kind} ({step!r})")
        if size is None:
            raise ValueError("no Resize step")
        return cls(size, interpolation, max_size, crop)

    def __call__(self, data: bytes):
        from torchvision.transforms.v2 import functional as F

        image = host_decode(data)
        h, w = image.shape[-2:]
        out_h, out_w = self.output_size(h, w)
        if vertical_first(h, w, out_h, out_w):  # two single-axis calls in Pillow's order (torch's kernel runs horizontal first)
            image = F.resize(image, [out_h, w], interpolation=self.interpolation, antialias=True)
        image = F.resize(image, [out_h, out_w], interpolation=self.interpolation, antialias=True)
        if self.crop is not None:
            image = F.center_crop(image, list(self.crop))
        return image.permute(1, 2, 0).contiguous().numpy()

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """The size ``Resize(size, max_size=...)`` gives an ``h × w`` image (torchvision's
        rule, the same for PIL images and tensors)."""
        if not isinstance(self.size, int) and len(self.size) == 2:
            return int(self.size[0]), int(self.size[1])
        requested = self.size if isinstance(self.size, int) else int(self.size[0])
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = requested, int(requested * long / short)
        if self.max_size is not None and new_long > self.max_size:
            new_short, new_long = int(self.max_size * new_short / new_long), self.max_size
        return (new_long, new_short) if w <= h else (new_short, new_long)


def vertical_first(h: int, w: int, out_h: int, out_w: int) -> bool:
    """Whether PIL resamples ``h × w`` to ``out_h × out_w`` vertically first.

    Pillow 13's ``ImagingResampleInner`` (Resample.c) runs the vertical pass first "if
    height is being scaled down more than twice the amount the width is":
    ``(h - out_h) > 0 and (h - out_h) > 2 * (w - out_w)``; earlier Pillow always ran the
    horizontal pass first. Each pass rounds to 8 bits, so the order changes ~25% of the
    values by a level or more. Which rule the installed Pillow follows is probed once."""
    dy = h - out_h
    return dy > 0 and dy > 2 * (w - out_w) and _pillow_reorders_passes()


@functools.cache
def _pillow_reorders_passes() -> bool:
    """Resize a noise image for which the two orders differ (its height shrinks 5×, its
    width 1.25×) with PIL, and with each order emulated by torch's uint8 kernel (which
    rounds each pass as PIL does): True when the vertical-first emulation is the closer."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    noise = np.random.default_rng(0).integers(0, 256, (200, 50, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(noise).resize((40, 40), Image.BICUBIC)).astype(int)
    image = torch.from_numpy(noise).permute(2, 0, 1)
    bicubic = dict(interpolation=InterpolationMode.BICUBIC, antialias=True)
    horizontal = F.resize(image, [40, 40], **bicubic)
    vertical = F.resize(F.resize(image, [40, 50], **bicubic), [40, 40], **bicubic)
    misses = [np.mean(t.permute(1, 2, 0).numpy().astype(int) != pil) for t in (horizontal, vertical)]
    return bool(misses[1] < misses[0])


def _torchvision_decode(data: bytes):
    """(3, H, W) RGB, by torchvision's decoders. torchvision 0.29 deprecates them in favour
    of TorchCodec; once they are gone, the ImportError sends every image to PIL's decoder
    and only the resize stays fast."""
    import torch

    quiet_torchvision_decoders()
    from torchvision.io import ImageReadMode, decode_image

    return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


def quiet_torchvision_decoders() -> None:
    """Silence torchvision 0.29's deprecation warning for its decoders: a filter added once
    (``warnings.catch_warnings`` per call is not thread-safe, and decode threads call it),
    again if someone reset the filters."""
    import warnings

    if not any(f[1] is not None and f[1].pattern == _DEPRECATION for f in warnings.filters):
        warnings.filterwarnings("ignore", message=_DEPRECATION, category=DeprecationWarning)


_DEPRECATION = "The image decoding and encoding capabilities of TorchVision"


def pixel_function(mode: str, pil_steps):
    """The ``bytes -> uint8 HWC`` function of ``--preprocess mode`` for these PIL steps."""
    if mode == "exact":
        return ExactPixels(pil_steps)
    if mode == "fast":
        return FastPixels.from_pil_steps(pil_steps)
    raise ValueError(f"unknown preprocess mode {mode!r}")
