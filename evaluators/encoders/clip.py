"""The open_clip encoder (:class:`ClipEncoder`): the real ``open_clip.create_model_and_transforms``
loading path, batched image and text encoding, and the readable errors of damaged images.
Which model a name means is :mod:`vgrc.evaluators.encoders.models`' job."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence

import numpy as np

from vgrc.evaluators.errors import InvalidInputError, VgrcError
from vgrc.evaluators.encoders.models import PRECISIONS, ModelSpec, _ensure_weights_reachable, _register_tiny_configs, _unavailable

__all__ = ["ClipEncoder", "BadImageError"]


class ClipEncoder:
    """An open_clip model with its preprocessing and tokenizer, encoding to unit vectors.

    Parameters
    ----------
    spec : ModelSpec
        From :func:`resolve_model`.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``…
    precision : {"fp32", "fp16", "bf16"}
    batch_size : int
        Images or texts per forward pass.
    decode_workers : int, optional
        Processes that decode images and tokenise texts
        (:mod:`~vgrc.evaluators.encoders.workers`); 0 = threads in this process; None = the
        default for the device (:func:`~vgrc.evaluators.encoders.workers.default_workers`).
        The embeddings are the same either way.
    preprocess : {"exact", "fast", "device"}
        How image bytes become pixels (:mod:`~vgrc.evaluators.encoders.pixels`): open_clip's own
        PIL steps, bit-identical (default); torchvision's decoders and uint8 resize; or
        resizing (and on CUDA JPEG decoding) on the device
        (:mod:`~vgrc.evaluators.encoders.device_pixels`, where ``decode_workers`` counts host
        decode threads).
    """

    def __init__(self, spec: ModelSpec, device: str = "cpu", precision: str = "fp32", batch_size: int = 64, decode_workers: int | None = None,
                 preprocess: str = "exact"):
        from vgrc.evaluators.encoders.workers import default_workers
        from vgrc.evaluators.encoders.pixels import PREPROCESS_MODES

        if precision not in PRECISIONS:
            raise InvalidInputError(f"unknown --precision {precision!r}; valid: {', '.join(PRECISIONS)}")
        if batch_size < 1:
            raise InvalidInputError(f"--batch-size must be ≥ 1, got {batch_size}")
        if decode_workers is not None and decode_workers < 0:
            raise InvalidInputError(f"--decode-workers must be ≥ 0, got {decode_workers}")
        if preprocess not in PREPROCESS_MODES:
            raise InvalidInputError(f"unknown --preprocess {preprocess!r}; valid: {', '.join(PREPROCESS_MODES)}")
        self.preprocess_mode = preprocess
        self.spec = spec
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.decode_workers = default_workers(device) if decode_workers is None else decode_workers
        self._decoders = None
        self._device_prep = None
        self._tokenizers = None
        self.model = None

    def load(self) -> "ClipEncoder":
        """Load weights, preprocessing and tokenizer (done on first use; cached runs skip it)."""
        if self.model is None:
            self._load()
        return self

    def _load(self) -> None:
        import open_clip
        import torch

        _register_tiny_configs()
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidInputError(f"--device {self.device}: no CUDA device is available; use --device cpu")
        _ensure_weights_reachable(self.spec)
        if self.spec.is_random:
            torch.manual_seed(self.spec.seed)
        import logging

        quiet = logging.getLogger().level
        if self.spec.is_random:  # open_clip warns that no weights were loaded: intended here
            logging.getLogger().setLevel(logging.ERROR)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.spec.arch, pretrained=self.spec.pretrained, precision=self.precision, device=self.device
            )
            tokenizer = open_clip.get_tokenizer(self.spec.arch)
        except (RuntimeError, OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise _unavailable(self.spec, f"loading failed ({first})") from exc
        finally:
            logging.getLogger().setLevel(quiet)
        model.eval()
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        with torch.no_grad():
            self.dim = int(model.encode_text(tokenizer(["x"]).to(self.device)).shape[1])

    @property
    def cache_key(self) -> str:
        """Identifies everything the embeddings depend on: architecture and its config,
        weights (tag, or checkpoint path + size + mtime, or the random seed), precision
        and image preprocessing. Computed without loading the model."""
        import open_clip

        _register_tiny_configs()
        weights = self.spec.pretrained
        if weights and os.path.exists(weights):
            st = os.stat(weights)
            weights = f"{os.path.abspath(weights)}:{st.st_size}:{int(st.st_mtime)}"
        if self.spec.is_random:
            weights = f"random-seed-{self.spec.seed}"
        arch_cfg = None if self.spec.arch.startswith("hf-hub:") else open_clip.get_model_config(self.spec.arch)
        tag_cfg = {}
        if self.spec.pretrained and not os.path.exists(self.spec.pretrained) and arch_cfg is not None:
            tag_cfg = {k: v for k, v in open_clip.pretrained.get_pretrained_cfg(self.spec.arch, self.spec.pretrained).items() if k not in ("url", "hf_hub")}
        blob = json.dumps([self.spec.arch, weights, self.precision, arch_cfg, tag_cfg, open_clip.__version__], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def _autocast(self):
        import contextlib

        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.device.split(":")[0], dtype=dtype)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm text embeddings, float32 (N, dim). With ``decode_workers``, texts are
        tokenised in worker processes ahead of the forward pass."""
        import torch

        self.load()
        out = []
        if self.decode_workers and len(texts) > self.batch_size:
            if self._tokenizers is None:
                from vgrc.evaluators.encoders.workers import TokenizeWorkers

                self._tokenizers = TokenizeWorkers(self.decode_workers, self.tokenizer)
            pin = self.device.startswith("cuda")  # page-locked: the copy to the GPU does not wait for the previous forward
            token_batches = (torch.from_numpy(t).pin_memory() if pin else torch.from_numpy(t) for t in self._tokenizers.batches(texts, self.batch_size))
        else:
            token_batches = (self.tokenizer(list(texts[s : s + self.batch_size])) for s in range(0, len(texts), self.batch_size))
        with torch.no_grad(), self._autocast():
            for tokens in token_batches:  # embeddings stay on the device until the end: no per-batch synchronisation
                feats = self.model.encode_text(tokens.to(self.device, non_blocking=True))
                out.append(torch.nn.functional.normalize(feats.float(), dim=-1))
        return torch.cat(out).cpu().numpy() if out else np.zeros((0, self.dim), np.float32)

    def encode_pixels(self, pixels) -> np.ndarray:
        """Unit-norm image embeddings of a preprocessed batch (B, 3, H, W)."""
        import torch

        with torch.no_grad(), self._autocast():
            feats = self.model.encode_image(pixels.to(self.device))
            return torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy()

    def _tensor_tail(self):
        """``(pil_transforms, mean, std)`` when preprocessing ends in ToTensor + Normalize
        (open_clip's standard pipeline), else None.

        Threads then run only the PIL steps, and the tensor steps run once per batch in
        the calling thread. On few cores, per-image torch ops in worker threads start
        extra OpenMP work that competes with the forward pass.
        """
        if not hasattr(self, "_tail"):
            from torchvision.transforms import Compose

            steps = list(getattr(self.preprocess, "transforms", []))
            names = [type(t).__name__ for t in steps[-2:]]
            ok = len(steps) >= 2 and names[0] in ("ToTensor", "MaybeToTensor") and names[1] == "Normalize"
            self._tail = (Compose(steps[:-2]), steps[-1].mean, steps[-1].std) if ok else None
        return self._tail

    def load_pixels(self, data: bytes, name: str):
        """Decode image bytes and preprocess them (a CHW float tensor); a damaged file raises naming it."""
        return self._finish([self._decode(data, name)])[0]

    def _pixels(self):
        """``bytes -> uint8 HWC`` of ``--preprocess`` (:mod:`~vgrc.evaluators.encoders.pixels`), or
        None where preprocessing does not end in ToTensor + Normalize (then ``preprocess``
        runs whole, exact only)."""
        if not hasattr(self, "_pixel_fn"):
            from vgrc.evaluators.encoders.pixels import pixel_function

            if self._tensor_tail() is None and self.preprocess_mode == "exact":
                self._pixel_fn = None
            else:
                self._pixel_fn = self._mirror_pil_steps(lambda steps: pixel_function(self.preprocess_mode, steps))
        return self._pixel_fn

    def _mirror_pil_steps(self, build):
        """``build(pil_steps)``: the ``--preprocess`` path made from open_clip's PIL steps
        (before ToTensor + Normalize); one line naming what it cannot mirror."""
        tail = self._tensor_tail()
        if tail is None:
            raise InvalidInputError(f"--preprocess {self.preprocess_mode}: {self.spec.arch}'s preprocessing does not end in ToTensor + Normalize; use --preprocess exact")
        try:
            return build(tail[0])
        except ValueError as exc:
            raise InvalidInputError(f"--preprocess {self.preprocess_mode} does not support {self.spec.arch}'s preprocessing step {exc}; use --preprocess exact") from None

    def _decode(self, data: bytes, name: str):
        from vgrc.evaluators.encoders.pixels import UndecodableImage, pil_rgb

        pixels = self._pixels()  # an unsupported --preprocess is the user's error, not the image's
        try:
            return pixels(data) if pixels is not None else self.preprocess(pil_rgb(data))
        except (UndecodableImage, OSError, ValueError) as exc:  # ValueError: a non-standard preprocess refusing the image
            raise BadImageError(name, f"cannot decode image {name}: {exc}") from exc

    def _finish(self, decoded, device: str = "cpu"):
        """Stack decoded images (a list, or a uint8 (B, H, W, 3) array) into a preprocessed
        batch (B, 3, H, W) on ``device``, exactly as ``self.preprocess`` would: the same
        ToTensor and Normalize arithmetic (IEEE division and subtraction, so the same bits
        on any device)."""
        import torch

        tail = self._tensor_tail()
        if not tail:
            return torch.stack(decoded)
        return self._normalize_uint8(torch.from_numpy(decoded if isinstance(decoded, np.ndarray) else np.stack(decoded)).to(device))

    def _normalize_uint8(self, pixels):
        """uint8 (B, H, W, 3) on any device -> ToTensor + Normalize, (B, 3, H, W) floats."""
        import torch

        batch = pixels.permute(0, 3, 1, 2).contiguous().to(torch.get_default_dtype())
        scale, mean, std = self._normalize_constants(batch.device, batch.dtype)
        # ToTensor divides by the Python number 255. On CUDA a number divisor becomes a
        # multiplication by its reciprocal (not always the same float); a 0-d tensor
        # divisor keeps true, correctly rounded division: the CPU's bits
        batch = batch.div(255) if batch.device.type == "cpu" else batch.div(scale)
        return batch.sub_(mean).div_(std)

    def _normalize_constants(self, device, dtype):
        """(255, mean, std) as tensors on ``device``, made once (a per-batch host-to-device
        copy would wait for the previous batch's forward pass)."""
        import torch

        key = (str(device), dtype)
        cache = self.__dict__.setdefault("_constants", {})
        if key not in cache:
            tail = self._tensor_tail()
            cache[key] = (torch.tensor(255, dtype=dtype, device=device), torch.as_tensor(tail[1], dtype=dtype, device=device).view(-1, 1, 1),
                          torch.as_tensor(tail[2], dtype=dtype, device=device).view(-1, 1, 1))
        return cache[key]

    def _decode_workers(self):
        """The decode processes (created on first use), or None where preprocessing is not
        the standard PIL steps + ToTensor + Normalize."""
        if self._decoders is None:
            pixels = self._pixels()
            if pixels is None:
                return None
            import io

            from PIL import Image

            from vgrc.evaluators.encoders.workers import DecodeWorkers

            probe = io.BytesIO()
            Image.new("RGB", (97, 61)).save(probe, format="PNG")
            shape = pixels(probe.getvalue()).shape
            self._decoders = DecodeWorkers(self.decode_workers, pixels, shape, self.batch_size)
        return self._decoders

    def encode_image_bytes(self, items: Sequence[tuple[str, bytes]], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Encode ``(name, bytes)`` items; decoding of the next batches overlaps the forward
        pass (in ``decode_workers`` processes, else in threads)."""
        self.load()
        if self.preprocess_mode == "device":
            return self._encode_device(items, on_batch)
        workers = self._decode_workers() if self.decode_workers and len(items) > self.batch_size else None
        if workers is not None:
            if self.device.startswith("cuda"):
                return self._encode_ring_cuda(workers, items, on_batch)
            out = []
            for pixels, errors in workers.batches(items):
                if errors:
                    raise BadImageError(errors[0][0], errors[0][1])
                out.append(self.encode_pixels(self._finish(pixels, self.device)))
                if on_batch:
                    on_batch(len(pixels))
            return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
        return self._encode_image_bytes_threads(items, on_batch)

    def _encode_ring_cuda(self, workers, items, on_batch) -> np.ndarray:
        """The GPU pipeline: the workers' uint8 pixels are copied on a side stream while the
        previous batch's forward runs (straight from the shared-memory ring when it could
        be page-locked, else through a pinned staging buffer), normalised on the GPU, and
        the embeddings kept there until the end (no per-batch synchronisation)."""
        import torch

        registered = _page_lock(workers)
        copy_stream = torch.cuda.Stream(device=self.device)
        compute = torch.cuda.current_stream(self.device)
        staging, done, feats = [None, None], [None, None], []
        with torch.no_grad(), self._autocast():
            for i, (pixels, errors) in enumerate(workers.batches(items)):
                if errors:
                    raise BadImageError(errors[0][0], errors[0][1])
                slot = i % 2
                if registered:
                    host = torch.from_numpy(pixels)
                else:
                    if staging[slot] is None or staging[slot].shape[0] < len(pixels):
                        staging[slot] = torch.empty((self.batch_size, *pixels.shape[1:]), dtype=torch.uint8).pin_memory()
                    if done[slot] is not None:
                        done[slot].synchronize()  # the copy that last read this staging buffer has finished
                    host = staging[slot][: len(pixels)]
                    np.copyto(host.numpy(), pixels)
                with torch.cuda.stream(copy_stream):
                    gpu = host.to(self.device, non_blocking=True)
                    done[slot] = torch.cuda.Event()
                    done[slot].record(copy_stream)
                compute.wait_stream(copy_stream)
                gpu.record_stream(compute)
                feats.append(torch.nn.functional.normalize(self.model.encode_image(self._normalize_uint8(gpu)).float(), dim=-1))
                if registered:
                    done[slot].synchronize()  # the ring slots may be refilled once the generator resumes
                if on_batch:
                    on_batch(len(pixels))
        return torch.cat(feats).cpu().numpy() if feats else np.zeros((0, self.dim), np.float32)

    def _device_pixels(self):
        """``--preprocess device``'s batch preprocessing (:mod:`~vgrc.evaluators.encoders.device_pixels`), made on first use."""
        if self._device_prep is None:
            from vgrc.evaluators.encoders.device_pixels import DevicePixels, default_threads

            threads = self.decode_workers or default_threads()
            self._device_prep = self._mirror_pil_steps(lambda steps: DevicePixels.from_pil_steps(steps, self.device, threads))
        return self._device_prep

    def _encode_device(self, items, on_batch) -> np.ndarray:
        """``--preprocess device``: a helper thread decodes and resizes the next batch (on a
        side CUDA stream) while this one runs the forward pass; embeddings stay on the
        device until the end."""
        from concurrent.futures import ThreadPoolExecutor

        import torch

        prep = self._device_pixels()
        cuda = self.device.startswith("cuda")
        side = torch.cuda.Stream(device=self.device) if cuda else None

        def produce(batch):
            if side is None:
                return prep(batch), None
            with torch.cuda.stream(side):
                result, ready = prep(batch), torch.cuda.Event()
                ready.record(side)
            return result, ready

        batches = [items[s : s + self.batch_size] for s in range(0, len(items), self.batch_size)]
        feats = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vgrc-prefetch") as ahead, torch.no_grad(), self._autocast():
            pending = ahead.submit(produce, batches[0]) if batches else None
            for i, batch in enumerate(batches):
                (pixels, errors), ready = pending.result()
                pending = ahead.submit(produce, batches[i + 1]) if i + 1 < len(batches) else None
                if errors:
                    raise BadImageError(errors[0][0], errors[0][1])
                if ready is not None:
                    torch.cuda.current_stream(self.device).wait_event(ready)
                    pixels.record_stream(torch.cuda.current_stream(self.device))
                feats.append(torch.nn.functional.normalize(self.model.encode_image(self._normalize_uint8(pixels)).float(), dim=-1))
                if on_batch:
                    on_batch(len(batch))
        return torch.cat(feats).cpu().numpy() if feats else np.zeros((0, self.dim), np.float32)

    def _encode_image_bytes_threads(self, items, on_batch) -> np.ndarray:
        from concurrent.futures import ThreadPoolExecutor

        batches = [items[s : s + self.batch_size] for s in range(0, len(items), self.batch_size)]
        out = []
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:

            def submit(batch):
                return [pool.submit(self._decode, data, name) for name, data in batch]

            pending = submit(batches[0]) if batches else []
            for i, batch in enumerate(batches):
                pixels = self._finish([f.result() for f in pending])
                pending = submit(batches[i + 1]) if i + 1 < len(batches) else []
                out.append(self.encode_pixels(pixels))
                if on_batch:
                    on_batch(len(batch))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def close(self) -> None:
        """Stop the worker processes (also done when the encoder is garbage-collected)."""
        if getattr(self._decoders, "page_locked", False):
            self._decoders.page_unlock()  # before the ring's memory goes; runs once
            self._decoders.page_locked = False
        for pool in (self._decoders, self._tokenizers, self._device_prep):
            if pool is not None:
                pool.close()
        self._decoders = self._tokenizers = self._device_prep = None


def _page_lock(workers) -> bool:
    """Page-lock the decode ring once (``cudaHostRegister``), so copies to the GPU read it
    directly and asynchronously; False where CUDA refuses (then a pinned staging copy)."""
    if not hasattr(workers, "page_locked"):
        import torch

        try:
            cudart = torch.cuda.cudart()
            workers.page_locked = int(cudart.cudaHostRegister(workers.ring.ctypes.data, workers.ring.nbytes, 0)) == 0
            if not workers.page_locked:
                cudart.cudaGetLastError()  # clear the refusal: a staging copy is used instead
        except (AttributeError, RuntimeError, TypeError):
            workers.page_locked = False
        if workers.page_locked:
            import weakref

            workers.page_unlock = weakref.finalize(workers, _page_unlock, workers.ring.ctypes.data)
    return workers.page_locked


def _page_unlock(ptr: int) -> None:
    """Undo :func:`_page_lock` once; a failure is cleared from CUDA's last-error state, or
    the next, unrelated CUDA call would report it."""
    try:
        import torch

        cudart = torch.cuda.cudart()
        if int(cudart.cudaHostUnregister(ptr)) != 0:
            cudart.cudaGetLastError()
    except Exception:  # noqa: BLE001 - best effort at shutdown
        pass


class BadImageError(VgrcError):
    """An image file is missing or cannot be decoded; ``name`` says which."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name
