"""Geometric verification of image pairs with OpenCV (*Beyond Vision*'s re-ranking: ORB and
SIFT feature matching with RANSAC), for ``--rerank orb|sift|orb+sift``.

Per image, keypoints and descriptors are computed once (grey image, its longest side
brought to at most :data:`MAX_SIDE` and at least :data:`MIN_SIDE` pixels: ORB's 31-pixel
patches find nothing in a 64-pixel image) and cached on disk under ``<cache>/keypoints-<method>-<params>/``
by the image's content key. A pair is verified by

1. k-nearest-neighbour matching (k = 2; Hamming distance for ORB, L2 for SIFT) and
   Lowe's ratio test (``ratio``);
2. a RANSAC homography (``cv2.findHomography``, reprojection threshold ``ransac_px``) over
   the surviving matches, with at least 4 of them;

its score is the number of RANSAC inliers (0 when there are fewer than 4 matches or no
homography). Pairs are verified in threads: OpenCV releases the GIL in matching and RANSAC.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgrc.evaluators.atomic import atomic_write_bytes
from vgrc.evaluators.errors import InvalidInputError

__all__ = ["MAX_SIDE", "MIN_SIDE", "METHODS", "Features", "detect", "verify_pair", "KeypointStore", "verify_pairs"]

MAX_SIDE = 640
MIN_SIDE = 256
METHODS = ("orb", "sift")


@dataclass
class Features:
    """Keypoint positions (n, 2) float32 and descriptors (n, D) of one image."""

    points: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # a dependency: only a broken install lacks it
        raise InvalidInputError("--rerank orb/sift needs OpenCV: pip install opencv-python-headless") from exc
    return cv2


def detect(image_bytes: bytes, method: str, n_features: int) -> Features:
    """ORB or SIFT keypoints and descriptors of an encoded image (grey, at most MAX_SIDE)."""
    cv2 = _cv2()
    grey = cv2.imdecode(np.frombuffer(image_bytes, np.uint8), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise InvalidInputError("an image OpenCV cannot decode")
    side = max(grey.shape)
    scale = MAX_SIDE / side if side > MAX_SIDE else (MIN_SIDE / side if side < MIN_SIDE else 1.0)
    if scale != 1.0:
        grey = cv2.resize(grey, (round(grey.shape[1] * scale), round(grey.shape[0] * scale)), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    detector = cv2.ORB_create(nfeatures=n_features) if method == "orb" else cv2.SIFT_create(nfeatures=n_features)
    kps, desc = detector.detectAndCompute(grey, None)
    width = 32 if method == "orb" else 128
    if desc is None or not kps:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, width), np.uint8 if method == "orb" else np.float32))
    return Features(np.array([k.pt for k in kps], np.float32), desc)


def verify_pair(a: Features, b: Features, method: str, ratio: float = 0.75, ransac_px: float = 5.0) -> tuple[int, int]:
    """``(RANSAC inliers, ratio-test matches)`` of the pair."""
    cv2 = _cv2()
    if len(a) < 2 or len(b) < 2:
        return 0, 0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING if method == "orb" else cv2.NORM_L2)
    good = [p[0] for p in matcher.knnMatch(a.descriptors, b.descriptors, k=2) if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    if len(good) < 4:
        return 0, len(good)
    src = a.points[[m.queryIdx for m in good]].reshape(-1, 1, 2)
    dst = b.points[[m.trainIdx for m in good]].reshape(-1, 1, 2)
    _, mask = cv2.findHomography(src, dst, cv2.RANSAC, ransac_px)
    return (0 if mask is None else int(mask.sum())), len(good)


class KeypointStore:
    """Features of images by content key, computed once and kept on disk."""

    def __init__(self, root: Path, method: str, n_features: int):
        if method not in METHODS:
            raise InvalidInputError(f"unknown keypoint method {method!r}; valid: {', '.join(METHODS)}")
        self.method, self.n_features = method, n_features
        tag = hashlib.sha256(f"{method}|{n_features}|{MAX_SIDE}|{MIN_SIDE}|v1".encode()).hexdigest()[:12]
        self.folder = Path(root) / f"keypoints-{method}-{tag}"
        self.computed = 0

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npz"

    def get(self, key: str, path: os.PathLike) -> Features:
        """The features of the image at ``path`` (content key ``key``), from disk or computed now."""
        target = self._path(key)
        try:
            with np.load(target) as z:
                return Features(z["points"], z["descriptors"])
        except (OSError, ValueError, KeyError):
            pass
        found = detect(Path(path).read_bytes(), self.method, self.n_features)
        buf = io.BytesIO()
        np.savez(buf, points=found.points, descriptors=found.descriptors)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, buf.getvalue())
        self.computed += 1
        return found


def verify_pairs(pairs: list[tuple[Features, Features]], method: str, ratio: float, ransac_px: float, threads: int | None = None,
                 on_progress=None) -> np.ndarray:
    """RANSAC inliers of every pair, verified in ``threads`` threads (default: the CPU count)."""
    out = np.zeros(len(pairs), np.int64)
    chunk = 64
    starts = list(range(0, len(pairs), chunk))

    def work(s):
        return s, [verify_pair(a, b, method, ratio, ransac_px)[0] for a, b in pairs[s : s + chunk]]

    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        for done, (s, values) in enumerate(pool.map(work, starts), 1):
            out[s : s + len(values)] = values
            if on_progress:
                on_progress(min(len(pairs), done * chunk), len(pairs))
    return out
