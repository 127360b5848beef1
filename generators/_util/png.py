"""A minimal, fast PNG writer for 8-bit RGB images with large flat regions.

Why not Pillow's encoder: Pillow spends most of a synthetic image's encoding time on
adaptive row filtering and level-6 deflate. For the flat-colour images vgrc renders,
unfiltered rows at deflate level 1 give files of about the same size (within a few %)
about 4× faster (0.35 vs 1.45 ms for a 224² shapes image on the development machine),
and encoding is what bounds ``vgrc gen-shapes``. The output is standard PNG (signature,
IHDR, one IDAT, IEND; colour type 2, bit depth 8, no interlace) that every decoder reads;
tests decode it with Pillow and compare pixels.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["encode_rgb_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_rgb_png(rgb, level: int = 1) -> bytes:
    """PNG bytes of an RGB image.

    Parameters
    ----------
    rgb : numpy.ndarray of uint8, shape (H, W, 3)
        The pixels (C-contiguous or not).
    level : int
        zlib compression level, 0–9. Output bytes depend only on the pixels and this level
        (and the zlib build), so they are reproducible.

    Returns
    -------
    bytes
    """
    import numpy as np

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 array of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
    h, w, _ = rgb.shape
    rows = np.zeros((h, w * 3 + 1), dtype=np.uint8)  # column 0: filter type 0 (None)
    rows[:, 1:] = rgb.reshape(h, w * 3)
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"".join(
        (_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)), _chunk(b"IEND", b""))
    )
