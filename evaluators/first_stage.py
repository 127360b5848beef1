r"""First-stage retrieval (paper §4.1 Eq. 1, §4.2, §6.3, App. E, I).

- :func:`cosine_topk` — the shortlist by cosine similarity, plus the exact rank of
  every query's first relevant image in the full gallery order.
- :class:`RidgeMapper` — closed-form ridge regression from text to image space:
  :math:`W = (T^\top T + \lambda I)^{-1} T^\top V`, queries mapped as
  :math:`\hat q = \mathrm{normalize}(q W)`.
- :class:`Steering` — steering vectors. The direction is the normalised difference
  between the embeddings of a target and a source prompt, and a query that names the
  target (not the source) is moved as :math:`q \leftarrow \mathrm{normalize}(q + \alpha d)`.
  :func:`confusion_pairs` derives (source, target) pairs from the baseline (cosine)
  top-1 confusions on the fit rows with attributes held fixed: the App. E substitution
  analysis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.retrieval_data import object_tuples

__all__ = ["normalize", "cosine_topk", "search_device", "topk_by_scores", "RidgeMapper", "Steering", "confusion_pairs", "single_substitution", "check_steer_words", "parse_steer_pairs"]


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(n > 0, n, 1)).astype(np.float32)


#: with ``--device cuda``, the exact search runs on the GPU from this many scores (queries ×
#: gallery) on: 10,000 queries × 1,000,000 images take ~70 s on 2 CPU cores (BENCHMARKS.md),
#: while importing torch and starting CUDA cost seconds that a smaller search does not
#: repay; a fully cached run below it stays torch-free
DEVICE_SEARCH_MIN_SCORES = 10**10


def search_device(device: str, n_queries: int, n_gallery: int) -> str:
    """Where :func:`cosine_topk` searches: ``device`` when it is CUDA and the search has at
    least ``DEVICE_SEARCH_MIN_SCORES`` scores, else ``"cpu"``. By size alone, so the same
    command on the same data searches in the same place on every run."""
    big = n_queries * n_gallery >= DEVICE_SEARCH_MIN_SCORES
    return str(device) if str(device).startswith("cuda") and big else "cpu"


def cosine_topk(queries: np.ndarray, gallery: np.ndarray, k: int, relevant: Sequence[np.ndarray], chunk: int = 1024,
                device: str = "cpu", on_progress: Callable[[int, int], None] | None = None):
    """Top-k gallery indices per query and the full-gallery rank of the first relevant one.

    Ties are ordered by gallery index, so results are deterministic. On ``device="cuda"``
    (or ``cuda:N``), a search of at least ``DEVICE_SEARCH_MIN_SCORES`` scores runs there, in
    torch (:func:`~vgrc.evaluators.index.device_exact.device_exact_topk`); others on the
    CPU (:func:`search_device`). ``on_progress(queries done, queries)`` after each chunk.

    Returns
    -------
    topk : int array (Q, k)
    scores : float32 array (Q, k)
    rank : int array (Q,) — 0-based rank in the full ranking (-1: no relevant image)
    """
    if search_device(device, len(queries), len(gallery)) != "cpu":
        from vgrc.evaluators.index.device_exact import device_exact_topk
        from vgrc.evaluators.sharding import rank_device

        return device_exact_topk(queries, gallery, k, relevant, device=rank_device(device), on_progress=on_progress)
    from vgrc.evaluators.index.exact import exact_topk

    return exact_topk(queries, gallery, k, relevant, query_chunk=chunk, on_progress=on_progress)


def topk_by_scores(score_rows, Q: int, G: int, k: int, relevant: Sequence[np.ndarray], chunk: int = 1024):
    """:func:`cosine_topk` for any score: ``score_rows(start, stop)`` gives the (stop −
    start, G) scores of those queries (higher = better), so only one chunk is in memory."""
    from vgrc.evaluators.index.exact import topk_over_chunks

    return topk_over_chunks(lambda s, e: [(0, score_rows(s, e))], Q, G, k, relevant, chunk)


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


def parse_steer_pairs(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``["pentagon:hexagon"]`` -> ``[("pentagon", "hexagon")]`` (source:target)."""
    pairs = []
    for spec in specs:
        source, sep, target = spec.partition(":")
        if not sep or not source.strip() or not target.strip():
            raise InvalidInputError(f"--steer {spec!r}: expected SOURCE:TARGET, e.g. pentagon:hexagon")
        pairs.append((source.strip(), target.strip()))
    return pairs


def confusion_pairs(
    query_objects: Sequence[list[dict]], retrieved_objects: Sequence[list[dict]], top: int, *, attributes_fixed: bool = True
) -> list[tuple[str, str, int]]:
    """Most frequent single-object substitutions between queries and wrong top-1 images.

    App. E: "Each entry records how often a query containing shape a retrieves an image
    with shape b instead, with color held fixed so that the matrix isolates shape-level
    confusion." For each query whose top-1 image differs from it in exactly one object,
    the substitution counts when it is a noun swap with the attributes held fixed. It
    counts as (source = what was retrieved, target = what the query asked for). With
    ``attributes_fixed=False``, single attribute swaps (noun held fixed) count too.
    Returns ``(source, target, count)``, most frequent first; ties by name, so the result
    is deterministic.
    """
    counts: Counter = Counter()
    for q, r in zip(query_objects, retrieved_objects):
        found = single_substitution(q, r, attributes_fixed=attributes_fixed)
        if found is not None:
            counts[found] += 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(s, t, c) for (s, t), c in ranked[:top]]


def single_substitution(query: list[dict], retrieved: list[dict], *, attributes_fixed: bool = True) -> tuple[str, str] | None:
    """``(retrieved word, query word)`` when the retrieved image differs from the query in
    exactly one object by a noun swap with the attributes held fixed (or, with
    ``attributes_fixed=False``, a single-attribute swap on the same noun); else None."""
    qt, rt = object_tuples(query), object_tuples(retrieved)
    missing, extra = list((qt - rt).elements()), list((rt - qt).elements())
    if len(missing) != 1 or len(extra) != 1:
        return None
    (qn, qa), (rn, ra) = missing[0], extra[0]
    if qa == ra and qn != rn:
        return rn, qn
    if not attributes_fixed and qn == rn and len(qa) == len(ra) == 1 and qa != ra:
        return ra[0], qa[0]
    return None


def check_steer_words(pairs: Sequence[tuple[str, str]], vocabulary: set[str]) -> None:
    """Every word of every --steer pair must occur in the dataset's objects, or it steers nothing."""
    for source, target in pairs:
        for word in (source, target):
            if word not in vocabulary:
                near = sorted(w for w in vocabulary if w[:3] == word[:3])[:5]
                hint = f" (similar: {', '.join(near)})" if near else ""
                raise InvalidInputError(f"--steer {source}:{target}: {word!r} is not a noun or attribute of this dataset's objects{hint}")


class Steering:
    """Steering vectors applied to the queries that name the target (and not the source).

    Parameters
    ----------
    pairs : list of (source, target)
        Words (nouns or attributes) as they appear in ``objects``.
    steer_alpha : float
        Steering strength α (``--steer-alpha``).

    Attributes
    ----------
    directions_ : array (len(pairs), d) — unit directions in the query space.
    """

    def __init__(self, pairs: Sequence[tuple[str, str]], steer_alpha: float = 0.5):
        self.pairs = list(pairs)
        self.steer_alpha = steer_alpha

    def fit(self, embed: Callable[[list[str]], np.ndarray], mapper: RidgeMapper | None = None) -> "Steering":
        """``embed(words)`` gives templated text embeddings; ``mapper`` maps them to image space."""
        if not self.pairs:
            self.directions_ = np.zeros((0, 1), np.float32)
            return self
        words = [w for pair in self.pairs for w in pair]
        emb = embed(words)
        if mapper is not None:
            emb = mapper.transform(emb)
        self.directions_ = normalize(emb[1::2] - emb[0::2])
        return self

    def transform(self, queries: np.ndarray, query_objects: Sequence[list[dict]]) -> tuple[np.ndarray, np.ndarray]:
        """Steered queries, and a boolean mask of the queries that were changed."""
        out = queries.copy()
        changed = np.zeros(len(queries), dtype=bool)
        for i, objs in enumerate(query_objects):
            words = {o["noun"] for o in objs} | {a for o in objs for a in o.get("attributes", [])}
            delta = sum(
                (self.steer_alpha * d for (s, t), d in zip(self.pairs, self.directions_) if t in words and s not in words),
                np.zeros(queries.shape[1], np.float32),
            )
            if np.any(delta):
                out[i] = normalize(out[i] + delta)
                changed[i] = True
        return out, changed
