r"""The ridge mapper (paper §4.2): closed-form ridge regression from text to image space,
:math:`W = (T^\top T + \lambda I)^{-1} T^\top V`, queries mapped as :math:`\hat q = \mathrm{normalize}(q W)`."""

from __future__ import annotations

import numpy as np

from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage.search import normalize

__all__ = ["RidgeMapper"]


class RidgeMapper:
    """Ridge regression from text embeddings to image embeddings (scikit-learn style).

    Parameters
    ----------
    ridge_lambda : float
        L2 penalty λ (``--ridge-lambda``).

    Attributes
    ----------
    W_ : array (d_text, d_image)
        The fitted map.
    distance_before_, distance_after_ : float
        Mean Euclidean distance between paired unit text and image embeddings of the fit
        rows, before and after mapping.
    """

    def __init__(self, ridge_lambda: float = 1.0):
        self.ridge_lambda = ridge_lambda

    def fit(self, text: np.ndarray, image: np.ndarray) -> "RidgeMapper":
        if len(text) != len(image) or len(text) == 0:
            raise InvalidInputError(f"ridge needs paired, non-empty fit embeddings; got {len(text)} texts and {len(image)} images")
        if self.ridge_lambda < 0:
            raise InvalidInputError(f"--ridge-lambda must be ≥ 0, got {self.ridge_lambda}")
        T, V = text.astype(np.float64), image.astype(np.float64)
        self.W_ = np.linalg.solve(T.T @ T + self.ridge_lambda * np.eye(T.shape[1]), T.T @ V)
        self.distance_before_ = float(np.linalg.norm(text - image, axis=1).mean())
        self.distance_after_ = float(np.linalg.norm(self.transform(text) - image, axis=1).mean())
        return self

    def transform(self, text: np.ndarray) -> np.ndarray:
        """Mapped and re-normalised embeddings."""
        return normalize(text.astype(np.float64) @ self.W_)

    def distance_reduction(self, text: np.ndarray, image: np.ndarray) -> dict[str, float]:
        """Cross-modal feature distance on paired rows, before/after mapping (paper §4.2)."""
        before = float(np.linalg.norm(text - image, axis=1).mean())
        after = float(np.linalg.norm(self.transform(text) - image, axis=1).mean())
        return {"distance_before": before, "distance_after": after, "reduction": 1 - after / before if before else 0.0}
