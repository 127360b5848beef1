r"""Score-level fusion of several encoders (``--stage1 ensemble``; *Beyond Vision*'s BEIT-3 +
SigLIP2 ensemble, with open_clip models).

Each model m scores query q against gallery item g by its cosine :math:`s_m = q_m \cdot
g_m`. Scores are normalised per query and model over the whole gallery (z-scores:
:math:`(s_m - \mu_{qm}) / \sigma_{qm}`), then summed with weights :math:`w_m`. The fusion
needs no score matrix: with :math:`\bar g_m` the gallery mean and :math:`C_m` its
covariance, :math:`\mu_{qm} = q_m \cdot \bar g_m` and :math:`\sigma_{qm}^2 = q_m^\top C_m
q_m`, so

.. math:: \sum_m w_m \frac{s_m - \mu_{qm}}{\sigma_{qm}}
          = \Big[\tfrac{w_m}{\sigma_{qm}} q_m\Big]_m \cdot \big[g_m - \bar g_m\big]_m ,

one dot product of concatenated vectors: the exact search (and every index) runs on the
fused scores unchanged. :func:`zscore_fusion` is the direct computation, for tests.
"""

from __future__ import annotations

import itertools

import numpy as np

from vgrc.evaluators.errors import InvalidInputError

__all__ = ["zscore_fusion", "fusion_vectors", "fit_weights", "parse_weights"]


def zscore_fusion(scores: list[np.ndarray], weights) -> np.ndarray:
    """``Σ_m w_m · z_m`` with ``z_m`` each (Q, G) score matrix standardised per row."""
    out = np.zeros(scores[0].shape)
    for s, w in zip(scores, weights):
        s = np.asarray(s, np.float64)
        sd = s.std(axis=1, keepdims=True)
        out += w * (s - s.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    return out


def fusion_vectors(queries: list[np.ndarray], galleries: list[np.ndarray], weights) -> tuple[np.ndarray, np.ndarray]:
    """``(Q', G')`` with ``Q' G'ᵀ`` = :func:`zscore_fusion` of the models' cosine scores."""
    q_blocks, g_blocks = [], []
    for q, g, w in zip(queries, galleries, weights):
        q, g = np.asarray(q, np.float64), np.asarray(g, np.float64)
        centred = g - g.mean(axis=0)
        cov = centred.T @ centred / len(g)
        sd = np.sqrt(np.maximum(np.einsum("qd,de,qe->q", q, cov, q), 0.0))
        q_blocks.append(q * (w / np.where(sd > 0, sd, 1.0))[:, None])
        g_blocks.append(centred)
    return np.concatenate(q_blocks, axis=1).astype(np.float32), np.concatenate(g_blocks, axis=1).astype(np.float32)


def fit_weights(queries: list[np.ndarray], galleries: list[np.ndarray], relevant, step: float = 0.1) -> tuple[float, ...]:
    """The weights on the grid of the simplex (``step``) with the best R@1 of the fused
    search on these rows (ties: the most even weights, then the first found)."""
    from vgrc.evaluators.first_stage.search import cosine_topk

    n = len(queries)
    ticks = int(round(1 / step))
    best, best_key = None, None
    for combo in itertools.product(range(ticks + 1), repeat=n):
        if sum(combo) != ticks:
            continue
        w = tuple(c / ticks for c in combo)
        qf, gf = fusion_vectors(queries, galleries, w)
        rank = cosine_topk(qf, gf, 1, relevant)[2]
        key = (float(np.mean(rank == 0)), -float(np.std(w)))
        if best_key is None or key > best_key:
            best, best_key = w, key
    return best


def parse_weights(text: str | None, n: int) -> tuple[float, ...] | None:
    """``--weights``: n comma-separated non-negative numbers, not all 0 (None: equal; "fit": None too)."""
    if text is None or text == "fit":
        return None
    try:
        w = tuple(float(v) for v in text.split(","))
    except ValueError:
        w = ()
    if len(w) != n or any(not np.isfinite(v) or v < 0 for v in w) or not any(w):
        raise InvalidInputError(f"--weights {text!r}: expected {n} comma-separated weights ≥ 0 (one per model: --model, then --models), or 'fit'")
    return w
