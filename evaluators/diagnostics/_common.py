"""What every analysis of ``vgrc diagnose`` shares: the prepared evaluation (rows,
cached embeddings, per-object tables — the same code ``vgrc eval`` runs) and the output
folder writer (CSV / Markdown / PNG, ``run.json`` with vgrc's run marker).

An analysis is ``run_NAME(config, *, progress, **options) -> summary``. It calls
:func:`prepare` for the data and embeddings, computes its numbers with the batched
solvers, and writes through one :class:`DiagnosticOutput`. The output folder is claimed
(and its ``run.json`` written, listing every file the analysis may write) *before* the
first output, so an interrupted analysis leaves a folder that ``--overwrite`` may clear.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from vgrc.evaluators import registry
from vgrc.evaluators.encoders.setup import EncodingSetup
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage.search import cosine_topk
from vgrc.evaluators.registry import option_fields
from vgrc.evaluators.rerankers.context import ObjectTable, RerankContext, rerank_scores
from vgrc.evaluators.retrieval_data import load_retrieval, object_phrase, require_objects


__all__ = ["Prepared", "prepare", "shared_preparation", "parse_grid", "markdown_table", "new_figure", "ATTRIBUTE_CATEGORIES", "attribute_category"]

#: attribute word -> category, for the per-attribute breakdowns (App. J: colour, shape, size,
#: material). Words not listed fall in "other"; a dataset's manifest may add its own
#: mapping under ``attribute_categories``.
ATTRIBUTE_CATEGORIES: dict[str, str] = {
    **{w: "color" for w in ("red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray", "grey",
                            "cyan", "magenta", "silver", "gold", "golden", "beige", "tan", "violet", "navy", "teal", "maroon", "dark", "light")},
    **{w: "size" for w in ("small", "large", "big", "tiny", "huge", "little", "tall", "short", "long", "giant", "medium")},
    **{w: "material" for w in ("rubber", "metal", "metallic", "matte", "shiny", "wooden", "wood", "plastic", "glass", "stone", "brick",
                               "concrete", "leather", "cloth", "paper", "steel")},
}


def attribute_category(word: str, extra: dict[str, str] | None = None) -> str:
    """The category of an attribute word (``extra`` first, then :data:`ATTRIBUTE_CATEGORIES`)."""
    if extra and word in extra:
        return extra[word]
    return ATTRIBUTE_CATEGORIES.get(word, "other")


def parse_grid(option: str, text: str, *, low: float | None = None, high: float | None = None, integer: bool = False) -> list:
    """``"0,0.25,0.5"`` -> ``[0.0, 0.25, 0.5]``: sorted, unique, each in [low, high]."""
    values = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part) if integer else float(part)
        except ValueError:
            kind = "integers" if integer else "numbers"
            raise InvalidInputError(f"{option} {text!r}: {part!r} is not a number; give comma-separated {kind}, e.g. {'5,10,50' if integer else '0,0.5,1'}") from None
        if (low is not None and value < low) or (high is not None and value > high) or value != value:
            bounds = f"outside [{low:g}, {high:g}]" if high is not None else f"below the minimum {low:g}"
            raise InvalidInputError(f"{option} {text!r}: {part} is {bounds}")
        values.append(value)
    if not values:
        raise InvalidInputError(f"{option} {text!r}: give at least one value")
    return sorted(set(values))


def markdown_table(head: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "—" if v != v else f"{v:.3f}"  # NaN: nothing to measure there, not a number to read
        return str(v)

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def new_figure(*args, **kwargs):
    """A matplotlib figure on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


@dataclass
class Prepared:
    """An evaluation prepared as ``vgrc eval`` prepares it, for the analyses to share.

    ``images`` / ``texts``: the evaluation rows' image and caption embeddings; ``phrases``
    the unique object phrases of queries and gallery with their Eq. 3/7 embeddings
    ``phrase_emb``; ``q_table`` / ``g_table`` the per-row object tables.
    """

    config: object
    ev: object
    fit: object
    info: dict
    setup: object
    images: np.ndarray
    texts: np.ndarray
    progress: Callable
    phrases: list[str] = field(default_factory=list)
    phrase_emb: np.ndarray | None = None
    q_table: object = None
    g_table: object = None
    t0: float = field(default_factory=time.perf_counter)
    _first_stage: dict = field(default_factory=dict)

    def embed_phrases(self, phrases: list[str]) -> np.ndarray:
        return self.setup.encode_phrases(phrases, self.progress)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self.setup.encode_texts(texts, self.progress)

    def cosine(self, depth: int, queries: np.ndarray | None = None):
        """``(topk, scores, rank1)`` of cosine retrieval over the gallery (the captions by
        default), depth clipped to the gallery size; cached per depth for the captions."""

        depth = min(depth, len(self.images))
        if queries is not None:
            return cosine_topk(queries, self.images, depth, self.ev.relevant)
        if depth not in self._first_stage:
            self._first_stage[depth] = cosine_topk(self.texts, self.images, depth, self.ev.relevant)
        return self._first_stage[depth]

    def options(self, reranker: str, **overrides):
        """The reranker's ``Options`` from the config; ``overrides`` (e.g. ``fgw_alpha``) win
        where the reranker declares them."""

        component = registry.get("reranker", reranker)
        values = {f.name: overrides.get(f.name, getattr(self.config, f.name)) for f in option_fields(component.Options)}
        return component.Options(**values)

    def scores(self, reranker: str, shortlist: np.ndarray, stage1_scores: np.ndarray, *, rows: np.ndarray | None = None,
               directions: np.ndarray | None = None, **overrides) -> np.ndarray:
        """The reranker's scores (Q, k) of the shortlist, for every query or only ``rows``,
        with the config's options (``overrides`` win) and App. J's ``directions`` if given."""

        q = self.q_table if rows is None else ObjectTable(self.q_table.index[rows], self.q_table.weight[rows], self.q_table.phrases)
        ctx = RerankContext(q, self.g_table, self.images, object_directions=directions)
        return rerank_scores(reranker, ctx, shortlist, stage1_scores, self.options(reranker, **overrides))


_SHARED: dict | None = None


@contextmanager
def shared_preparation():
    """Within this block, :func:`prepare` returns the same :class:`Prepared` for the same
    rows, model and encoding options (``vgrc diagnose all``: one load for every analysis)."""
    global _SHARED
    previous, _SHARED = _SHARED, {}
    try:
        yield
    finally:
        _SHARED = previous


def _prepare_key(config, objects: bool, fit: bool) -> tuple:
    return (config.data, config.split, config.fit_split, config.fit_fraction if fit else 0.0, config.limit, config.seed, config.model,
            config.pretrained, tuple(config.templates), config.device, config.precision, config.cache_dir, config.skip_bad, getattr(config, "preprocess", "exact"), objects, fit)


def prepare(config, progress, *, objects: bool = True, fit: bool = False, needed_by: str = "this analysis") -> Prepared:
    """Load rows (``config.split`` / ``--limit``), encode images and captions through the
    embedding cache, and (``objects``) the per-object phrases of queries and gallery."""
    if _SHARED is not None:
        key = _prepare_key(config, objects, fit)
        if key not in _SHARED:
            _SHARED[key] = _prepare(config, progress, objects=objects, fit=fit, needed_by=needed_by)
        prep = _SHARED[key]
        prep.config, prep.progress, prep.t0 = config, progress, time.perf_counter()
        return prep
    return _prepare(config, progress, objects=objects, fit=fit, needed_by=needed_by)


def _prepare(config, progress, *, objects: bool, fit: bool, needed_by: str) -> Prepared:
    t0 = time.perf_counter()

    if config.unmatched_cost is None or config.surplus_cost is None:  # called as a library, without check()
        from vgrc.evaluators.dataset import read_manifest

        config.resolve_costs(read_manifest(config.data))
    ev, fit_rows, info = load_retrieval(config.data, config.split, fit_split=config.fit_split,
                                        fit_fraction=config.fit_fraction if fit else 0.0, limit=config.limit, seed=config.seed)
    return prepare_rows(config, progress, ev, fit_rows, info, objects=objects, needed_by=needed_by, t0=t0)


def prepare_rows(config, progress, ev, fit_rows, info: dict, *, objects: bool = True, needed_by: str = "this analysis", t0: float | None = None) -> Prepared:
    """:func:`prepare` for given rows ``ev`` (queries and gallery): encode them through the
    embedding cache and build their object tables. Used for the fit rows too (an analysis
    that chooses a setting on them, then reports it on the evaluated rows)."""

    t0 = time.perf_counter() if t0 is None else t0
    if objects:
        require_objects(ev, "query", needed_by)
        require_objects(ev, "image", needed_by)
    setup = EncodingSetup(config)
    images, failed, bad = setup.encode_images(ev.image_paths, progress)
    if failed.any():
        raise InvalidInputError(f"{int(failed.sum())} images could not be read (first: {bad[0]}); {needed_by} needs every image")
    texts = setup.encode_texts(ev.captions, progress)
    prep = Prepared(config, ev, fit_rows, info, setup, images, texts, progress, t0=t0)
    if objects:
        q_phrases = [[object_phrase(o) for o in objs] for objs in ev.query_objects]
        g_phrases = [[object_phrase(o) for o in objs] for objs in ev.objects]
        prep.phrases = sorted({ph for rows in (q_phrases, g_phrases) for row in rows for ph in row})
        prep.phrase_emb = prep.embed_phrases(prep.phrases)
        index = {ph: i for i, ph in enumerate(prep.phrases)}
        prep.q_table = ObjectTable.build(q_phrases, index, prep.phrase_emb)
        prep.g_table = ObjectTable.build(g_phrases, index, prep.phrase_emb)
    return prep
