"""``--preprocess device``: decode and resize whole batches on the model's device.

Why: issue 13 measured, on a 16-core H200 host, ViT-B-32 bf16's forward pass at 21,483
img/s and the host's whole capacity to decode and resize with PIL at 4,790 (PNG) / 7,971
(JPEG) img/s, so the GPU idled ~75% of the time; nvJPEG decoding plus a GPU resize ran at
21,583 img/s. This path moves the resize, and on CUDA the JPEG decoding, onto the device.

Per batch of ``(name, bytes)``:

1. **JPEGs** (by their first bytes) are decoded together by
   ``torchvision.io.decode_jpeg(list, device=device)``: nvJPEG on CUDA, libjpeg-turbo on the
   CPU. When the batched call fails (a damaged file, or a JPEG flavour nvJPEG does not
   decode), each image is retried alone on the device, then decoded on the host like
   other formats; only an image that no decoder reads is an error.
2. **Other formats** are decoded on the host by a pool of threads
   (:func:`~vgrc.evaluators.encoders.pixels.host_decode`: torchvision's libpng decoder releases the
   GIL, PIL reads the formats it does not), then copied to the device.
3. Images of one size are **resized together** on the device, in PIL's two passes and
   PIL's order (each rounded and clamped to 8 bits as PIL's are) with
   torch's antialiased float32 kernel and the preprocessing's interpolation and
   output-size rule, then centre-cropped.

The result is uint8 ``(B, H, W, 3)`` on the device, which ToTensor + Normalize then take
(the encoder's ``_normalize_uint8``). PIL's decompression-bomb limit is checked from each
header before anything is decoded.

Not bit-identical to ``exact``:
- the float kernel differs from PIL's fixed-point one by a level of 255 in ~0.02% of the
  values (measured on the CPU by ``benchmarks/bench_encode.py``; ``fast``: ~0.3%);
- on CUDA, nvJPEG's inverse DCT and chroma upsampling differ from libjpeg-turbo's, which
  PIL uses. That difference exists only on a GPU, so it is measured there.

The pixels therefore depend on the device type, and the embedding cache keeps this mode's
embeddings apart per device type (``KEY-image-device-cuda`` / ``-cpu``).

A guard for nvJPEG on CUDA: its output tensors come from PyTorch's caching allocator on the
stream current at the call, but nvJPEG's hardware decoder writes them without waiting for
the work already queued on that stream (pytorch/vision#9606, meta-pytorch/torchcodec#1634).
The allocator hands out a block as soon as it is freed on its stream, so a decode could
overwrite the previous batch's decoded images while that batch's queued resize still reads
them. Each batch therefore waits for its stream's queued work before decoding JPEGs
(``stream.synchronize()``): the previous batch's resize, a few milliseconds, while the
forward pass runs on the main stream.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DevicePixels"]

#: float32 values resized at once per size group (512 MB): bounds memory for large photos
MAX_FLOATS = 2**27


class DevicePixels:
    """Batches of image bytes → uint8 ``(B, H, W, 3)`` pixels on ``device``.

    Parameters
    ----------
    size, interpolation, max_size, crop
        The resize and crop, as :class:`~vgrc.evaluators.encoders.pixels.FastPixels` reads them from
        the preprocessing's PIL steps (:meth:`from_pil_steps`).
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``…
    threads : int
        Host threads decoding the images that are not decoded on the device.
    """

    def __init__(self, size, interpolation, max_size=None, crop=None, device: str = "cpu", threads: int = 1):
        from vgrc.evaluators.encoders.pixels import FastPixels

        self.size, self.interpolation, self.max_size, self.crop = size, interpolation, max_size, crop
        self.output_size = FastPixels(size, interpolation, max_size, crop).output_size  # the same sizes
        self.device, self.threads = device, max(1, threads)
        self._pool = None

    @classmethod
    def from_pil_steps(cls, pil_steps, device: str = "cpu", threads: int = 1) -> "DevicePixels":
        """:class:`ValueError` naming the step the device path does not support."""
        from vgrc.evaluators.encoders.pixels import FastPixels

        geometry = FastPixels.from_pil_steps(pil_steps)
        return cls(geometry.size, geometry.interpolation, geometry.max_size, geometry.crop, device, threads)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __call__(self, items: Sequence[tuple[str, bytes]]):
        """``(pixels, errors)``: uint8 ``(B, H, W, 3)`` on the device (None when an image
        failed), and ``[(name, message)]`` for the images that could not be read."""
        decoded, errors = self._decode(items)
        return (None, errors) if errors else (self._resize_all(decoded), [])

    def _decode(self, items) -> tuple[list, list[tuple[str, str]]]:
        """Every image as uint8 (3, h, w): JPEGs on the device, the rest (and the JPEGs the
        device refuses) on the host; the errors, in the items' order."""
        from vgrc.evaluators.encoders.pixels import UndecodableImage, check_pixel_count, is_jpeg

        pool, stream = self._host_pool(), _current_stream(self.device)
        pin = stream is not None
        jpegs, host = [], []
        for i, (_, data) in enumerate(items):
            on_device = is_jpeg(data)
            if on_device:
                try:
                    check_pixel_count(data)
                except UndecodableImage:  # the host path reports it in the same words as every other path
                    on_device = False
            (jpegs if on_device else host).append(i)
        if stream is not None and jpegs:
            stream.synchronize()  # nvJPEG may write recycled blocks before queued kernels read them (module docstring)
        # JPEGs in one chunk per thread (nvJPEG's Huffman stage runs on the calling CPU
        # thread), the other images one task each, all at once
        per_thread = max(16, -(-len(jpegs) // self.threads))
        chunks = [jpegs[s : s + per_thread] for s in range(0, len(jpegs), per_thread)]
        jpeg_tasks = [pool.submit(self._device_jpegs, [items[i][1] for i in chunk], stream) for chunk in chunks]
        host_tasks = {i: pool.submit(_host_decode_or_error, items[i][1], pin) for i in host}
        decoded: list = [None] * len(items)
        for chunk, task in zip(chunks, jpeg_tasks):
            for i, image in zip(chunk, task.result()):
                if image is None:  # not decodable on the device: the host tries
                    host_tasks[i] = pool.submit(_host_decode_or_error, items[i][1], pin)
                decoded[i] = image
        errors = []
        for i in sorted(host_tasks):
            result = host_tasks[i].result()
            if isinstance(result, str):
                errors.append((items[i][0], f"cannot decode image {items[i][0]}: {result}"))
            else:
                decoded[i] = result
        return decoded, errors

    def _resize_all(self, decoded: list):
        """Resize and crop every image, those of one size together; (B, H, W, 3) in order.

        In a gallery of mixed sizes each image is a group of its own, and what a group
        costs the issuing thread does not depend on its pixels: ten small operations, each
        dispatched from Python. They are kept few (:meth:`_resize`): on the CPU with tiny
        images, where that cost is what is measured, 76.7 µs a group against 105.6 µs with
        torchvision's ``resize`` and ``center_crop`` (``bench_encode.py``'s
        ``group_dispatch``, BENCHMARKS.md). Issuing the groups from the decode
        threads instead was slower (170–210 µs): the operations hold the GIL while they
        are dispatched, and each hand-over costs more than it saves."""
        import torch

        out = [None] * len(decoded)
        for shape, members in _groups(decoded).items():
            per_call = max(1, MAX_FLOATS // (shape[0] * shape[1] * shape[2]))
            for s in range(0, len(members), per_call):
                group = members[s : s + per_call]
                # on CUDA each host image is copied from its page-locked buffer (filled by its
                # decode thread) asynchronously, and stacked on the GPU: no serial host copy
                resized = self._resize(torch.stack([decoded[i].to(self.device, non_blocking=True) for i in group]))
                for j, i in enumerate(group):
                    out[i] = resized[j]
        return torch.stack(out).permute(0, 2, 3, 1)

    def _device_jpegs(self, datas: list[bytes], stream) -> list:
        """Decode JPEGs on the device (on ``stream`` when CUDA): one batched call; when it
        fails (one damaged file fails the batch), each alone; None for those the device
        cannot decode (a damaged file, or a flavour nvJPEG lacks: CMYK, 12-bit, lossless…)."""
        import contextlib

        import torch

        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            try:
                return self._decode_jpeg_call(datas)
            except (RuntimeError, ValueError):
                pass
            out = []
            for data in datas:
                try:
                    out.append(self._decode_jpeg_call([data])[0])
                except (RuntimeError, ValueError):
                    out.append(None)
            return out

    def _decode_jpeg_call(self, datas: list[bytes]) -> list:
        import torch

        from vgrc.evaluators.encoders.pixels import quiet_torchvision_decoders

        quiet_torchvision_decoders()
        from torchvision.io import ImageReadMode, decode_jpeg

        images = decode_jpeg([torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas], mode=ImageReadMode.RGB, device=self.device)
        if any(im.shape[0] != 3 or im.dtype != torch.uint8 for im in images):
            raise RuntimeError("decoded to other than 3 channels of 8 bits")
        return images

    def _resize(self, batch):
        """uint8 (n, 3, h, w) on the device → resized, cropped uint8 (n, 3, H, W).

        Two passes, as PIL's resampler does, in PIL's order
        (:func:`~vgrc.evaluators.encoders.pixels.vertical_first`), each rounded and clamped to 8
        bits (a pass is skipped where its axis keeps its size), halves rounded up as PIL
        does. Each pass is torch's antialiased kernel in float32, which follows PIL's
        filter support and weights. Without the rounding between the passes 17% of the
        values differed from PIL's by one level, with it 0.02%; rounding halves to even
        instead of up left 3% off in a bilinear 320 → 224 pass (measured on the CPU)."""
        import torch

        from vgrc.evaluators.encoders.pixels import vertical_first

        h, w = batch.shape[-2:]
        out_h, out_w = self.output_size(h, w)
        first = (out_h, w) if vertical_first(h, w, out_h, out_w) else (h, out_w)
        image = batch
        for target in (first, (out_h, out_w)):
            if tuple(image.shape[-2:]) != target:
                if image.dtype != torch.uint8:
                    image.floor_()  # the first pass's rounding, finished
                # halves up, as PIL's fixed point (+0.5, shift) does; the floor comes next
                image = self._interpolate(image.float(), target).add_(0.5).clamp_(0, 255)
        image = image.to(torch.uint8)  # truncates: the floor of the last pass's values (≥ 0)
        return _centre_crop(image, self.crop) if self.crop is not None else image

    def _interpolate(self, image, size):
        """torchvision's ``resize`` of a float tensor (``resize_image``), without its
        dispatch, whose Python costs more than the kernel's launch, once per size group."""
        import torch
        from torchvision.transforms import InterpolationMode

        smooth = self.interpolation in (InterpolationMode.BILINEAR, InterpolationMode.BICUBIC, InterpolationMode.LANCZOS)
        return torch.nn.functional.interpolate(image, size=list(size), mode=self.interpolation.value,
                                               align_corners=False if smooth else None, antialias=smooth)

    def _host_pool(self):
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="vgrc-decode")
        return self._pool


def _current_stream(device: str):
    """The calling thread's CUDA stream on ``device`` (the pool's threads decode on it), or None off CUDA."""
    import torch

    return torch.cuda.current_stream(device) if torch.device(device).type == "cuda" else None


def _host_decode_or_error(data: bytes, pin: bool = False):
    """(3, H, W) uint8 on the CPU (page-locked with ``pin``, for an asynchronous copy to the
    GPU), or the reason it cannot be decoded."""
    from vgrc.evaluators.encoders.pixels import UndecodableImage, host_decode

    try:
        image = host_decode(data)
    except UndecodableImage as exc:
        return str(exc)
    return image.pin_memory() if pin else image


def _centre_crop(image, crop):
    """torchvision's ``center_crop`` of a tensor: a view when the crop fits (its anchor rule),
    torchvision itself when it pads."""
    from torchvision.transforms.v2 import functional as F

    (h, w), (ch, cw) = image.shape[-2:], crop
    if ch > h or cw > w:
        return F.center_crop(image, list(crop))
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return image[..., top : top + ch, left : left + cw]


def _groups(decoded: list) -> dict:
    """Image indices by (channels, height, width), in order."""
    groups: dict = {}
    for i, image in enumerate(decoded):
        groups.setdefault(tuple(image.shape), []).append(i)
    return groups


def default_threads() -> int:
    """Host decode threads when ``--decode-workers`` is not given: as many as a GPU run's
    decode processes (one per core but one, at most 16), at least one."""
    from vgrc.evaluators.encoders.workers import default_workers

    return max(1, default_workers("cuda"))
