"""Image bytes → the model's input pixels (uint8, H × W × 3), before ToTensor + Normalize.

Two ways, chosen by ``--preprocess``:

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

Both are picklable callables ``bytes -> np.ndarray`` that the decode workers run; both
raise :class:`UndecodableImage` for bytes that are not an image. The module imports nothing
heavy (the CLI reads ``PREPROCESS_MODES`` for its help).
"""

from __future__ import annotations

import io

__all__ = ["PREPROCESS_MODES", "ExactPixels", "FastPixels", "UndecodableImage", "pixel_function", "pil_rgb"]

#: ``--preprocess`` choices
PREPROCESS_MODES = {
    "exact": "open_clip's own PIL preprocessing: bit-identical embeddings (default)",
    "fast": "torchvision decoding and uint8 resizing: 2-3x faster per core, pixels within 2/255 of exact in a few per thousand",
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


def _check_pixel_count(data: bytes) -> None:
    """PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``), from the header
    alone, for decoders that have none; formats PIL cannot identify pass."""
    from PIL import Image, UnidentifiedImageError

    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":  # PNG's size is at a fixed place (PIL's parse: ~0.1 ms)
        pixels = int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big")
        limit = Image.MAX_IMAGE_PIXELS
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
        import numpy as np
        import torch
        from torchvision.transforms.v2 import functional as F

        _check_pixel_count(data)  # torchvision would allocate whatever the header claims
        try:
            image = _torchvision_decode(data)
        except (RuntimeError, ValueError, ImportError):  # a format torchvision does not read: PIL decodes it
            image = torch.from_numpy(np.asarray(pil_rgb(data)).copy()).permute(2, 0, 1)
        if image.dtype != torch.uint8:  # 16-bit PNG: to 8 bits, as PIL's RGB conversion does
            image = F.to_dtype(image, torch.uint8, scale=True)
        image = F.resize(image, self.size, interpolation=self.interpolation, max_size=self.max_size, antialias=True)
        if self.crop is not None:
            image = F.center_crop(image, list(self.crop))
        return image.permute(1, 2, 0).contiguous().numpy()


def _torchvision_decode(data: bytes):
    """(3, H, W) RGB, by torchvision's decoders. torchvision 0.29 deprecates them in favour
    of TorchCodec; once they are gone, the ImportError sends every image to PIL's decoder
    and only the resize stays fast."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision", category=DeprecationWarning)
        from torchvision.io import ImageReadMode, decode_image

        return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


def pixel_function(mode: str, pil_steps):
    """The ``bytes -> uint8 HWC`` function of ``--preprocess mode`` for these PIL steps."""
    if mode == "exact":
        return ExactPixels(pil_steps)
    if mode == "fast":
        return FastPixels.from_pil_steps(pil_steps)
    raise ValueError(f"unknown preprocess mode {mode!r}")
