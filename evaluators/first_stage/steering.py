r"""Steering vectors (paper §6.3, App. E, I). The direction is the normalised difference
between the embeddings of a target and a source prompt, and a query that names the target
(not the source) is moved as :math:`q \leftarrow \mathrm{normalize}(q + \alpha d)`.
:func:`confusion_pairs` derives (source, target) pairs from the baseline (cosine) top-1
confusions on the fit rows with attributes held fixed: the App. E substitution analysis."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage.search import cosine_topk, normalize
from vgrc.evaluators.retrieval_data import RetrievalSet, object_phrase, object_tuples

if TYPE_CHECKING:
    from vgrc.evaluators.first_stage.ridge import RidgeMapper

__all__ = ["object_directions", "confusion_steering_pairs", "parse_steer_pairs", "confusion_pairs", "single_substitution", "check_steer_words", "Steering"]


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


def object_directions(unique: list[str], query_objects, phrase_emb: np.ndarray, embed_phrases) -> np.ndarray:
    """App. J steering direction of each phrase: normalize(e(phrase) − e(noun)), i.e. from
    the bare noun toward the object's attribute bundle; zero for objects without
    attributes. One extra all-zero row for padding."""
    noun_of = {object_phrase(o): o["noun"] for objs in query_objects for o in objs}
    nouns = sorted({noun_of[ph] for ph in unique if ph in noun_of and noun_of[ph] != ph})
    noun_emb = dict(zip(nouns, embed_phrases(nouns))) if nouns else {}
    out = np.zeros((len(unique) + 1, phrase_emb.shape[1]), np.float32)
    for i, ph in enumerate(unique):
        noun = noun_of.get(ph)
        if noun is not None and noun != ph:
            out[i] = normalize(phrase_emb[i] - noun_emb[noun])
    return out


def confusion_steering_pairs(steer_top: int, fit: RetrievalSet, fit_text: np.ndarray, fit_img: np.ndarray, diagnostics: dict) -> list[tuple[str, str]]:
    """App. E: steering pairs from the BASELINE (cosine) top-1 confusions on the fit rows,
    attributes (colour) held fixed."""
    top1 = cosine_topk(fit_text, fit_img, 1, fit.relevant)[0][:, 0]
    wrong = [i for i in range(len(fit)) if top1[i] not in fit.relevant[i]]
    found = confusion_pairs([fit.query_objects[i] for i in wrong], [fit.objects[top1[i]] for i in wrong], steer_top)
    diagnostics["confusions"] = {
        "source": "cosine top-1 on the fit rows, attributes held fixed (App. E)",
        "fit_rows": len(fit),
        "wrong_top1": len(wrong),
        "pairs": [{"source": s, "target": t, "count": c} for s, t, c in found],
    }
    return [(s, t) for s, t, _ in found]
