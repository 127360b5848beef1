"""Input handling shared by the solvers: numpy/torch in, validated float64 numpy inside,
results back in the caller's array type and device."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from vgrc.evaluators.errors import InvalidInputError

#: Problems per call of a compiled kernel: bounds temporary memory for huge batches.
CHUNK = 65_536


@dataclass(frozen=True)
class ArrayKind:
    """Where the inputs came from, so results can be returned the same way."""

    torch_device: object = None  # a torch.device when the inputs were torch tensors
    torch_dtype: object = None

    def wrap(self, a: np.ndarray):
        if self.torch_device is None:
            return a
        import torch

        t = torch.from_numpy(np.ascontiguousarray(a))
        if a.dtype.kind != "f":
            return t.to(self.torch_device)
        dtype = self.torch_dtype if self.torch_dtype in (torch.float32, torch.float64) else torch.float64
        return t.to(device=self.torch_device, dtype=dtype)


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def to_numpy(name: str, x, kind: ArrayKind | None) -> tuple[np.ndarray, ArrayKind]:
    """float64 numpy view/copy of ``x``; records torch device/dtype of the first tensor."""
    if _is_torch(x):
        if kind is None or kind.torch_device is None:
            kind = ArrayKind(torch_device=x.device, torch_dtype=x.dtype)
        x = x.detach().to("cpu").double().numpy()
    try:
        arr = np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a numeric array, got {type(x).__name__}") from exc
    return arr, kind or ArrayKind()


def check_batch(name: str, a: np.ndarray, ndim: int, shape: tuple | None = None, finite: bool = True) -> None:
    """Shape check (and, unless ``finite=False``, a NaN/inf check) naming the argument."""
    if a.ndim != ndim:
        want = {2: "(B, n)", 3: "(B, n, m)"}[ndim]
        raise InvalidInputError(f"{name} must be a batch of shape {want}, got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise InvalidInputError(f"{name} must have shape {shape}, got {a.shape}")
    if finite and not np.isfinite(a).all():
        raise InvalidInputError(f"{name} contains NaN or infinite values")


def weights(name: str, w, B: int, n: int, kind: ArrayKind) -> tuple[np.ndarray, ArrayKind]:
    """Marginal weights (B, n): ``None`` = uniform; non-negative, each row with positive mass."""
    if w is None:
        return np.full((B, n), 1.0 / n), kind
    arr, kind = to_numpy(name, w, kind)
    check_batch(name, arr, 2, (B, n))
    if (arr < 0).any():
        b = int(np.argwhere(arr < 0)[0][0])
        raise InvalidInputError(f"{name} has negative weights (problem {b}); weights must be ≥ 0")
    empty = arr.sum(axis=1) <= 0
    if empty.any():
        raise InvalidInputError(f"{name} has no positive weight in problem {int(np.argmax(empty))}: every problem needs at least one object")
    return arr, kind


def rounding_eps(x) -> float:
    """Machine epsilon of ``x``'s floating dtype (numpy or torch); float64's for anything else.

    Weights given in float32 (or a CUDA float32 tensor) carry float32 rounding, so checks
    such as "equal total mass" must tolerate it.
    """
    if x is None:
        return float(np.finfo(np.float64).eps)
    name = str(getattr(x, "dtype", "float64"))
    for key, eps in (("bfloat16", 2.0**-7), ("float16", float(np.finfo(np.float16).eps)), ("float32", float(np.finfo(np.float32).eps))):
        if key in name:
            return eps
    return float(np.finfo(np.float64).eps)


def n_blocks(B: int) -> int:
    """Parallel blocks per kernel call: a few per thread, so uneven problems balance."""
    threads = os.cpu_count() or 1
    return max(1, min(B, 4 * threads))
