"""``--preprocess device`` (decode + resize of whole batches on the model's device), run here
on the CPU: the same sizes as open_clip's PIL steps, pixels within a level of PIL's in a
few per ten thousand (two rounded passes, as PIL's), an image's pixels independent of its
batch, every format and mode read, damaged files named, PIL's pixel limit kept, and its own
embedding cache per device type. nvJPEG (CUDA) is measured by benchmarks/bench_encode.py."""

import io
import json

import numpy as np
import pytest
from helpers import SIZES
from helpers import image_bytes as _bytes
from helpers import picture as _picture
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Resize

from vgrc.evaluators.encoders.device_pixels import DevicePixels
from vgrc.evaluators.encoders.pixels import ExactPixels, FastPixels, header_size

OPEN_CLIP_STEPS = Compose([Resize(224, interpolation=InterpolationMode.BICUBIC), CenterCrop(224)])


def _device(steps, items):
    pixels, errors = DevicePixels.from_pil_steps(steps)(items)
    assert errors == []
    return pixels.numpy()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize(("steps", "largest", "share"), [
    (OPEN_CLIP_STEPS, 1, 0.001),  # fast: ~0.003 (one rounded float pass would give ~0.17)
    # bilinear: halves rounded up as PIL's fixed point does (to even: 0.5%, up to 2/255)
    (Compose([Resize(224, interpolation=InterpolationMode.BILINEAR), CenterCrop(224)]), 1, 0.004),
    (Compose([Resize(200, interpolation=InterpolationMode.BICUBIC, max_size=300)]), 1, 0.002),
    # unequal scale factors: Pillow 13 runs the vertical pass first on some of these images;
    # in the other order ~7% of values differed
    (Compose([Resize((160, 200), interpolation=InterpolationMode.BICUBIC)]), 1, 0.002),
], ids=["bicubic", "bilinear", "max-size", "squash"])
def test_device_pixels_are_within_a_level_of_pil(fmt, steps, largest, share):
    diffs = []
    for n, (w, h) in enumerate(SIZES):
        data = _bytes(_picture(w, h, n), fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        a, b = ExactPixels(steps)(data), _device(steps, [("x", data)])[0]
        assert a.shape == b.shape and b.dtype == np.uint8
        diffs.append(np.abs(a.astype(int) - b.astype(int)).ravel())
    diff = np.concatenate(diffs)
    assert diff.max() <= largest, diff.max()
    assert 0 < np.mean(diff > 0) < share, np.mean(diff > 0)


@pytest.mark.parametrize("steps", [OPEN_CLIP_STEPS, Compose([Resize(37, max_size=50)]), Compose([Resize([37])]), Compose([Resize((31, 45))])],
                         ids=["short-side", "max-size", "one-element-list", "squash"])
def test_output_size_follows_torchvision_resize_of_a_pil_image(steps):
    dev = DevicePixels.from_pil_steps(Compose([steps.transforms[0]]))
    for w, h in [*SIZES, (37, 37), (51, 37), (37, 1000), (3, 2)]:
        assert dev.output_size(h, w) == steps.transforms[0](Image.new("RGB", (w, h))).size[::-1], (w, h)


@pytest.mark.parametrize("steps", [
    OPEN_CLIP_STEPS,
    Compose([Resize(224, interpolation=InterpolationMode.BILINEAR), CenterCrop(224)]),
    Compose([Resize(64, interpolation=InterpolationMode.BICUBIC), CenterCrop((96, 81))]),  # the crop pads
    Compose([Resize((160, 200), interpolation=InterpolationMode.BICUBIC)]),
    Compose([Resize(50, interpolation=InterpolationMode.NEAREST), CenterCrop(50)]),
], ids=["bicubic", "bilinear", "padding-crop", "squash", "nearest"])
def test_resize_equals_torchvisions_two_rounded_passes_and_centre_crop(steps):
    """The resize calls torch's kernel without torchvision's dispatch (its Python cost is paid
    once per size group) and crops by slicing: bit for bit what torchvision's ``resize`` (per
    pass, each rounded halves up) and ``center_crop`` give, on sizes whose crop anchors
    round both ways and whose passes run in either order."""
    import torch
    from torchvision.transforms.v2 import functional as F

    from vgrc.evaluators.encoders.pixels import vertical_first

    dev = DevicePixels.from_pil_steps(steps)
    rng = np.random.default_rng(3)
    for w, h in [*SIZES, (225, 224), (301, 224), (224, 333), (400, 90), (33, 260)]:
        batch = torch.from_numpy(rng.integers(0, 256, (2, 3, h, w), dtype=np.uint8))
        out_h, out_w = dev.output_size(h, w)
        image = batch
        for target in ((out_h, w) if vertical_first(h, w, out_h, out_w) else (h, out_w), (out_h, out_w)):
            if tuple(image.shape[-2:]) != target:
                resized = F.resize(image.float(), list(target), interpolation=dev.interpolation, antialias=True)
                image = resized.add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)
        expected = F.center_crop(image, list(dev.crop)) if dev.crop is not None else image
        assert torch.equal(dev._resize(batch), expected), (w, h)


def test_an_images_pixels_do_not_depend_on_its_batch():
    """Mixed formats and sizes, grouped by size inside the batch: every image comes back in
    its place with the pixels it has alone."""
    items = [(f"i{n}", _bytes(_picture(w, h, n), fmt, **({"quality": 90} if fmt == "JPEG" else {})))
             for n, ((w, h), fmt) in enumerate(zip(SIZES * 2, ["PNG", "JPEG", "JPEG", "PNG", "PNG", "JPEG"] * 2))]
    together = _device(OPEN_CLIP_STEPS, items)
    alone = np.stack([_device(OPEN_CLIP_STEPS, [item])[0] for item in items])
    assert np.array_equal(together, alone)
    assert not np.array_equal(together[0], together[6])  # the images differ: the test can tell them apart


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "BMP", "L-JPEG"])
def test_other_modes_and_formats_are_read(mode):
    rgb = _picture(300, 200, 5)
    data = {"BMP": lambda: _bytes(rgb, "BMP"), "CMYK": lambda: _bytes(rgb.convert("CMYK"), "JPEG", quality=95),
            "I;16": lambda: _bytes(Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257), "PNG"),
            "L-JPEG": lambda: _bytes(rgb.convert("L"), "JPEG", quality=95)}.get(mode, lambda: _bytes(rgb.convert(mode), "PNG"))()
    b = _device(OPEN_CLIP_STEPS, [("x", data)])[0]
    a = ExactPixels(OPEN_CLIP_STEPS)(_bytes(rgb.convert("L"), "PNG") if mode == "I;16" else data)  # PIL clips 16-bit grey to white
    assert a.shape == b.shape == (224, 224, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_damaged_files_are_named_and_good_ones_unaffected():
    good = [(f"g{n}.jpg", _bytes(_picture(120, 90, n), "JPEG", quality=90)) for n in range(3)]
    truncated = ("cut.jpg", good[0][1][: len(good[0][1]) // 3])
    junk = ("notes.png", b"certainly not an image")
    pixels, errors = DevicePixels.from_pil_steps(OPEN_CLIP_STEPS)([good[0], truncated, good[1], junk, good[2]])
    assert pixels is None and [name for name, _ in errors] == ["cut.jpg", "notes.png"]
    assert errors[0][1].startswith("cannot decode image cut.jpg: ") and errors[1][1].startswith("cannot decode image notes.png: ")


def test_pil_pixel_limit_holds_from_jpeg_and_png_headers(monkeypatch):
    picture = _picture(400, 300, 1)  # 120,000 pixels > 2 × 40,000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40_000)
    for fmt in ("PNG", "JPEG"):
        _, errors = DevicePixels.from_pil_steps(OPEN_CLIP_STEPS)([(f"big.{fmt}", _bytes(picture, fmt))])
        assert len(errors) == 1 and "decompression bomb" in errors[0][1]


def test_header_size_agrees_with_pil():
    """PNG IHDR and JPEG start-of-frame, past EXIF / ICC / comment segments, baseline and
    progressive; None for other formats and for a header cut short."""
    picture = _picture(173, 91, 2)
    exif = Image.Exif()
    exif[0x010E] = "a description " * 50
    cases = [_bytes(picture, "PNG"), _bytes(picture, "JPEG"), _bytes(picture, "JPEG", progressive=True),
             _bytes(picture, "JPEG", exif=exif.tobytes(), icc_profile=b"\0" * 3000, comment=b"hello"), _bytes(picture.convert("L"), "JPEG")]
    for data in cases:
        with Image.open(io.BytesIO(data)) as im:
            assert header_size(data) == im.size[::-1]
    assert header_size(_bytes(picture, "BMP")) is None
    assert header_size(cases[3][:200]) is None and header_size(b"\xff\xd8\xff") is None


def test_unsupported_steps_are_named():
    from torchvision.transforms import RandomCrop

    with pytest.raises(ValueError, match="RandomCrop"):
        DevicePixels.from_pil_steps(Compose([Resize(224), RandomCrop(224)]))


def test_device_encoder_stays_close_to_exact_and_names_a_bad_image():
    """Through the real open_clip model, in batches with a helper thread running ahead: the
    same embeddings whatever the thread count, close to the exact path's but not equal."""
    from vgrc.evaluators.encoders.clip import BadImageError, ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model

    items = [(f"im{i}", _bytes(_picture(200 + 9 * i, 150 + 5 * i, i), "JPEG" if i % 2 else "PNG", **({"quality": 90} if i % 2 else {}))) for i in range(21)]
    spec = resolve_model("tiny-random")
    exact = ClipEncoder(spec, batch_size=8, decode_workers=0).encode_image_bytes(items)
    one, four = (ClipEncoder(spec, batch_size=8, decode_workers=n, preprocess="device") for n in (1, 4))
    try:
        a, b = one.encode_image_bytes(items), four.encode_image_bytes(items)
        assert np.array_equal(a, b) and a.shape == exact.shape
        cos = (a * exact).sum(1)
        assert cos.min() > 0.9999 and not np.array_equal(a, exact)
        with pytest.raises(BadImageError, match="cannot decode image broken.png"):
            one.encode_image_bytes([*items[:9], ("broken.png", b"\x89PNG\r\n\x1a\n nothing more")])
    finally:
        one.close(), four.close()


def test_device_preprocessing_has_its_own_image_cache_per_device_type(shapes_dir, tmp_path):
    from vgrc.evaluators.pipeline import EvalConfig, run_eval

    cache = tmp_path / "cache"
    for out in ("device", "again"):
        run_eval(EvalConfig(data=str(shapes_dir), out=str(tmp_path / out), model="tiny-random", k=20, cache_dir=str(cache), preprocess="device"))
    assert json.loads((tmp_path / "again" / "run.json").read_text())["encode"]["images"]["encoded"] == 0  # reused
    assert sorted(p.name.split("-", 1)[1] for p in cache.iterdir() if p.is_dir() and "-image" in p.name) == ["image-device-cpu"]
    notes = (tmp_path / "device" / "metrics.md").read_text()
    assert "--preprocess device (resized on the model's device" in notes
    assert json.loads((tmp_path / "device" / "metrics.json").read_text())["config"]["preprocess"] == "device"


def test_fast_and_device_read_the_same_geometry():
    fast, dev = FastPixels.from_pil_steps(OPEN_CLIP_STEPS), DevicePixels.from_pil_steps(OPEN_CLIP_STEPS)
    assert (fast.size, fast.interpolation, fast.max_size, fast.crop) == (dev.size, dev.interpolation, dev.max_size, dev.crop)


def test_a_jpeg_the_device_refuses_goes_to_the_host_and_keeps_its_place(monkeypatch):
    """nvJPEG lacks some JPEG flavours (CMYK, 12-bit, lossless): here the device decoder
    refuses one file, which fails its batched call; the others are decoded one by one on
    the device, the refused one on the host, and every image keeps its pixels and place."""
    items = [(f"i{n}.jpg", _bytes(_picture(150 + 10 * n, 100, n), "JPEG", quality=90)) for n in range(20)]
    expected = _device(OPEN_CLIP_STEPS, items)
    refused, calls = items[7][1], []
    real = DevicePixels._decode_jpeg_call

    def picky(self, datas):
        calls.append(len(datas))
        if any(d == refused for d in datas):
            raise RuntimeError("nvjpeg: unsupported JPEG")
        return real(self, datas)

    monkeypatch.setattr(DevicePixels, "_decode_jpeg_call", picky)
    prep = DevicePixels.from_pil_steps(OPEN_CLIP_STEPS, threads=2)
    pixels, errors = prep(items)
    assert errors == [] and np.array_equal(pixels.numpy(), expected)
    assert sorted(calls, reverse=True)[:2] == [16, 4] and calls.count(1) == 16  # two chunks; the failed one retried alone


def test_device_on_a_model_it_cannot_mirror_is_one_error():
    from torchvision.transforms import Normalize, RandomCrop, ToTensor

    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model
    from vgrc.evaluators.errors import InvalidInputError

    enc = ClipEncoder(resolve_model("tiny-random"), preprocess="device").load()
    enc.preprocess = Compose([Resize(32), RandomCrop(32), ToTensor(), Normalize((0.5,) * 3, (0.5,) * 3)])
    with pytest.raises(InvalidInputError, match="--preprocess device does not support .*RandomCrop.*use --preprocess exact"):
        enc.encode_image_bytes([("a.png", _bytes(_picture(64, 48, 0), "PNG"))])


def test_sharded_device_run_equals_one_process(shapes_dir, tmp_path):
    """`--preprocess device --shards 2` through the CLI: each rank's helper and decode threads
    give the same cached embeddings, metrics and ranks as one process."""
    from helpers import eval_one_and_sharded

    from vgrc.evaluators.encoders.cache import EmbeddingCache

    one, two = eval_one_and_sharded(tmp_path, "--data", shapes_dir, "--model", "tiny-random", "--k", "10", "--batch-size", "2", "--preprocess", "device")
    assert one == two
    caches = [(c, [p.name for p in c.iterdir() if p.name.endswith("-image-device-cpu")]) for c in (tmp_path / "cache-one", tmp_path / "cache-two")]
    (c1, [ns1]), (c2, [ns2]) = caches
    a, b = EmbeddingCache(c1, ns1), EmbeddingCache(c2, ns2)
    assert ns1 == ns2 and len(a) == len(b) > 0 and all(np.array_equal(a.get(k), b.get(k)) for k in a._load())


@pytest.mark.parametrize(("in_hw", "out_hw", "expected"), [
    ((122, 266), (98, 249), False),   # height shrinks 24, width 17: not more than twice
    ((700, 150), (160, 200), True),   # height shrinks, width grows
    ((480, 640), (100, 300), False),  # 380 is not more than 2 × 340
    ((61, 97), (100, 300), False),    # both grow
    ((240, 320), (100, 300), True),   # 140 > 2 × 20
    ((100, 100), (100, 50), False),   # height kept
])
def test_pass_order_follows_pillow_13(in_hw, out_hw, expected):
    """Pillow 13's rule (Resample.c: vertical first when the height shrinks by more than
    twice what the width does), and the installed Pillow agrees: resizing noise, the order
    the rule picks matches PIL in all but a few values, the other order in ~1 in 4."""
    import torch
    from torchvision.transforms.v2 import functional as F

    from vgrc.evaluators.encoders.pixels import vertical_first

    assert vertical_first(*in_hw, *out_hw) is expected
    noise = np.random.default_rng(3).integers(0, 256, (*in_hw, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(noise).resize(out_hw[::-1], Image.BICUBIC)).astype(int)
    image = torch.from_numpy(noise).permute(2, 0, 1)
    kw = dict(interpolation=InterpolationMode.BICUBIC, antialias=True)
    by_order = {False: F.resize(image, list(out_hw), **kw), True: F.resize(F.resize(image, [out_hw[0], in_hw[1]], **kw), list(out_hw), **kw)}
    miss = {order: np.mean(t.permute(1, 2, 0).numpy().astype(int) != pil) for order, t in by_order.items()}
    assert miss[expected] < 0.01 and (in_hw[0] == out_hw[0] or miss[not expected] > 0.1), miss
