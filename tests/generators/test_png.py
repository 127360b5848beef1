"""The minimal PNG writer: standard files that decode to exactly the input pixels."""

import io

import numpy as np
import pytest
from PIL import Image

from vgrc.generators._util.png import encode_rgb_png


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (64, 64, 3)])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_round_trip(shape, level):
    rgb = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    data = encode_rgb_png(rgb, level)
    with Image.open(io.BytesIO(data)) as im:
        im.verify()  # CRCs and chunk structure
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(im), rgb)
    assert encode_rgb_png(rgb.copy(), level) == data  # reproducible


def test_non_contiguous_input():
    rgb = np.random.default_rng(1).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    view = rgb[::2, ::3]
    with Image.open(io.BytesIO(encode_rgb_png(view))) as im:
        assert np.array_equal(np.asarray(im), view)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)])
def test_rejects_other_layouts(bad):
    with pytest.raises(ValueError, match="uint8 array of shape"):
        encode_rgb_png(bad)
