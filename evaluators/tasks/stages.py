"""The retrieval pipeline's stages, shared by ``vgrc eval`` and ``vgrc diagnose``:

    prepare (rows, splits, cache) → encode (images, captions, object phrases)
      → first stage (ridge / steering / object averages) → search (exact or an --index)
      → rerank (the --rerank component's scores) → relevance and metrics (tasks.retrieval)

Each stage reads and fills one :class:`RetrievalRun`; which branch a stage takes is
decided by the chosen components' flags (``needs_fit``, ``query_objects``,
``candidate_objects``, ``steered`` …), never by their names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vgrc.evaluators.encoders.setup import EncodingSetup
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage.ridge import RidgeMapper
from vgrc.evaluators.first_stage.search import cosine_topk, search_device
from vgrc.evaluators.first_stage.steering import check_steer_words, object_directions, parse_steer_pairs
from vgrc.evaluators.metrics import first_relevant_rank
from vgrc.evaluators.rerankers.context import ObjectTable, RerankContext, order_by_scores, rerank_scores_sharded
from vgrc.evaluators.retrieval_data import RetrievalSet, load_retrieval, object_phrase, require_objects, vocabulary

__all__ = ["TOP", "RetrievalRun", "prepare", "encode", "first_stage", "search", "rerank", "saved_plans"]

TOP = 10  # list depth for nDCG / CAS


@dataclass
class RetrievalRun:
    """The state one retrieval run passes from stage to stage."""

    config: object
    progress: object
    timer: object
    ev: RetrievalSet
    fit: RetrievalSet | None
    data_info: dict
    setup: EncodingSetup | None = None
    stage1: object = None
    reranker: object = None
    #: the --candidate-objects component, and the gallery's regions when they come from the pixels
    candidates: object = None
    regions: object = None
    ev_img: np.ndarray | None = None
    fit_img: np.ndarray | None = None
    bad: list = field(default_factory=list)
    skipped_ids: list = field(default_factory=list)
    q_text: np.ndarray | None = None
    fit_text: np.ndarray | None = None
    #: each query's object set: the annotations, or parsed from its caption (--query-objects)
    query_sets: list = field(default_factory=list)
    q_phrases: list = field(default_factory=list)
    g_phrases: list = field(default_factory=list)
    phrase_emb: np.ndarray | None = None
    phrase_index: dict = field(default_factory=dict)
    directions: np.ndarray | None = None
    queries: np.ndarray | None = None
    mapper: RidgeMapper | None = None
    steered: np.ndarray | None = None
    #: the gallery vectors stage 1 searches when they are not the image embeddings (--stage1 ensemble)
    search_gallery: np.ndarray | None = None
    diagnostics: dict = field(default_factory=dict)
    topk: np.ndarray | None = None
    topk_scores: np.ndarray | None = None
    rank1: np.ndarray | None = None
    k: int = 0
    final_lists: np.ndarray | None = None
    rank_final: np.ndarray | None = None
    #: ``--save-plans``: one record per saved (query, candidate) plan
    plans: list | None = None

    @property
    def per_object(self) -> bool:
        """Some stage reads the queries' per-object sets."""
        return self.reranker.query_objects or self.stage1.query_objects

    @property
    def steered_objects(self) -> bool:
        """Some stage steers per-object embeddings (App. J)."""
        return self.stage1.steered_objects or self.reranker.steered


def prepare(config, progress, timer) -> RetrievalRun:
    """Rows of the split (less the fit rows the first stage holds out), checked for the
    annotations the chosen components need, and the encoding set-up (cache, model)."""
    with timer("load_data"):
        ev, fit, data_info = load_retrieval(
            config.data, config.split, fit_split=config.fit_split, fit_fraction=config.held_out_fraction, limit=config.limit, seed=config.seed
        )
        run = RetrievalRun(config, progress, timer, ev, fit, data_info, stage1=config.component("stage1"), reranker=config.component("reranker"),
                           candidates=config.component("candidate_objects"))
        _require_annotations(run)
        if config.steer:
            check_steer_words(parse_steer_pairs(config.steer), vocabulary(ev, fit))
    run.setup = EncodingSetup(config)
    return run


def _require_annotations(run: RetrievalRun) -> None:
    """Per-object stages and rerankers need objects on every row; say which row lacks them."""
    config, ev = run.config, run.ev
    parsed = config.query_objects != "annotations"  # then the query sets come from the captions
    if run.stage1.query_objects and not parsed:
        require_objects(ev, "query", f"--stage1 {config.stage1} (or parse the captions: --query-objects rules)")
    if run.reranker.query_objects and not parsed:
        require_objects(ev, "query", f"--rerank {config.rerank} (or parse the captions: --query-objects rules)")
    if getattr(run.stage1, "steers_queries", False) and not parsed:
        require_objects(ev, "query", f"--stage1 {config.stage1} (it steers queries by the words of their objects)")
    if run.reranker.candidate_objects and run.candidates.needs_boxes:
        missing = next((ev.ids[i] for i, objs in enumerate(ev.objects) if not objs or any(o.get("bbox") is None for o in objs)), None)
        if missing is not None:
            raise InvalidInputError(f"--candidate-objects {config.candidate_objects} crops the annotated boxes, but row {missing!r} has objects without a "
                                    "bbox (or none); use --candidate-objects patches or grid, which need no annotations")
    if any(ev.query_objects) and not config.component("relevance").judged:  # graded metrics: all queries or none
        require_objects(ev, "query", "the graded metrics (nDCG@K, CAS@K)")


def encode(run: RetrievalRun) -> None:
    """Images (the fit rows' too when the first stage fits), then captions and the object
    phrases the per-object stages read; rows whose image is damaged leave (--skip-bad)."""
    timer, setup, progress = run.timer, run.setup, run.progress
    with timer("encode_images"):
        sets = [run.ev] + ([run.fit] if run.stage1.fits(run.config.options_of("stage1")) and run.fit is not None else [])
        paths = [p for s in sets for p in s.image_paths]
        img_emb, failed, run.bad = setup.encode_images(paths, progress)
        run.ev_img, run.fit_img = img_emb[: len(run.ev)], img_emb[len(run.ev) :]
    n_ev = len(run.ev)
    run.skipped_ids = [run.ev.ids[i] for i in np.flatnonzero(failed[:n_ev])]
    if run.skipped_ids:
        keep = np.flatnonzero(~failed[:n_ev])
        run.ev, run.ev_img = run.ev.subset(keep), run.ev_img[keep]
    if failed[n_ev:].any():
        keep = np.flatnonzero(~failed[n_ev:])
        run.fit, run.fit_img = run.fit.subset(keep), run.fit_img[keep]
    if len(run.ev) == 0:
        raise InvalidInputError(f"no evaluable rows are left: all {n_ev} images were skipped (first: {run.bad[0] if run.bad else '?'})")
    run.query_sets = query_sets(run.config, run.ev, setup.cache_root, progress)
    with timer("encode_texts"):
        ev = run.ev
        run.q_text = setup.encode_texts(ev.captions, progress)
        run.q_phrases = [[object_phrase(o) for o in objs] for objs in run.query_sets]
        run.g_phrases = [[object_phrase(o) for o in objs] for objs in ev.objects]
        annotated_candidates = run.reranker.candidate_objects and not run.candidates.from_pixels
        sides = (run.q_phrases, run.g_phrases if annotated_candidates else [])
        unique = sorted({ph for rows in sides for row in rows for ph in row}) if run.per_object else []
        run.phrase_emb = setup.encode_phrases(unique, progress) if unique else np.zeros((0, run.q_text.shape[1]), np.float32)
        run.phrase_index = {ph: i for i, ph in enumerate(unique)}
        if run.steered_objects:
            run.directions = object_directions(unique, run.query_sets, run.phrase_emb, lambda phrases: setup.encode_phrases(phrases, progress))
    if run.reranker.candidate_objects and run.candidates.from_pixels:
        with timer("encode_regions"):
            run.regions = run.candidates.sets(run, run.config.options_of("candidate_objects"))
            counts = run.regions.counts()
            run.diagnostics["candidate_regions"] = {"source": run.config.candidate_objects, "regions": int(counts.sum()),
                                                    "per_image_mean": float(counts.mean()) if len(counts) else 0.0,
                                                    "images_without_regions": int((counts == 0).sum())}


def query_sets(config, ev: RetrievalSet, cache_root, progress) -> list[list[dict]]:
    """Each query's object set: its annotations (``--query-objects annotations``, the
    paper's oracle) or its caption parsed by a registered object parser (rules, spacy, llm:
    any free-text query gets a set)."""
    if config.query_objects == "annotations":
        return ev.query_objects
    from vgrc.evaluators.objects.parsers import get_object_parser

    parse = get_object_parser(config.query_objects, config.parser_model, cache_dir=str(cache_root))
    out = []
    for i, caption in enumerate(ev.captions):
        out.append(parse(caption))
        progress("parsing queries", i + 1, len(ev.captions))
    return out


def first_stage(run: RetrievalRun) -> None:
    """The stage-1 query vectors (``run.queries``), by the ``--stage1`` component's
    ``queries(run, options)``: captions as they are, mapped by the ridge mapper (and
    steered), or averaged from the query's (steered) objects."""
    run.steered = np.zeros(len(run.ev), dtype=bool)
    run.queries = run.q_text
    run.stage1.queries(run, run.config.options_of("stage1"))


def search(run: RetrievalRun) -> None:
    """The stage-1 lists to depth max(k, 10) with exact search or the --index, and every
    query's exact stage-1 rank of its first relevant image."""
    config, progress = run.config, run.progress
    depth = max(config.k, TOP)
    if not config.component("index").faiss:
        gallery = run.ev_img if run.search_gallery is None else run.search_gallery
        run.topk, run.topk_scores, run.rank1 = cosine_topk(run.queries, gallery, depth, run.ev.relevant, device=config.device,
                                                           on_progress=lambda d, t: progress("stage-1 search", d, t))
        on = search_device(config.device, len(run.queries), len(run.ev_img))
        run.diagnostics["exact_search"] = {"k": depth, "on": f"{on} (torch)" if on != "cpu" else "cpu (numpy + numba)"}
    else:
        from vgrc.evaluators.index.faiss_index import faiss_search
        from vgrc.evaluators.sharding import rank_device

        progress("index search", 0, 1)
        run.topk, run.topk_scores, run.rank1, run.diagnostics["index"] = faiss_search(
            run.queries, run.ev_img, depth, run.ev.relevant, kind=config.index, store=run.setup.cache_root / "index", nprobe=config.nprobe,
            ef_search=config.ef_search, device=rank_device(config.device), seed=config.seed)
        progress("index search", 1, 1)
    run.k = min(config.k, len(run.ev))


def rerank(run: RetrievalRun) -> None:
    """The shortlist reordered by the reranker's scores; the final lists (the reranked
    shortlist, then the stage-1 order beyond it) and every query's final rank."""
    shortlist, short_scores = run.topk[:, : run.k], run.topk_scores[:, : run.k]
    if not run.reranker.reorders:
        reranked = shortlist
    else:
        q_table = ObjectTable.build(run.q_phrases, run.phrase_index, run.phrase_emb)
        if run.regions is not None:
            g_table = ObjectTable.from_regions(run.regions)
        else:
            g_sets = run.g_phrases if run.reranker.candidate_objects else [[] for _ in run.g_phrases]
            g_table = ObjectTable.build(g_sets, run.phrase_index, run.phrase_emb)
        ctx = RerankContext(q_table, g_table, run.ev_img,
                            map_query=None if run.mapper is None else run.mapper.transform, object_directions=run.directions)
        run.progress("reranking", 0, 1)
        scores = rerank_scores_sharded(run.reranker, ctx, shortlist, short_scores, run.config.options_of("reranker"))
        reranked = order_by_scores(shortlist, scores)
        run.progress("reranking", 1, 1)
        if run.config.save_plans:
            run.plans = saved_plans(run, ctx, shortlist, scores, reranked)
    run.final_lists = np.concatenate([reranked, run.topk[:, run.k :]], axis=1)
    pos = first_relevant_rank(reranked, run.ev.relevant)
    run.rank_final = np.where(pos >= 0, pos, run.rank1)


def saved_plans(run: RetrievalRun, ctx: RerankContext, shortlist: np.ndarray, scores: np.ndarray, reranked: np.ndarray) -> list[dict]:
    """``--save-plans N``: for each of the first N queries, the plans of its final top
    min(k, 10) candidates and of its first relevant shortlisted image (when it ranks
    below them), solved as the reranker solved them for its scores."""
    from vgrc.evaluators.rerankers.context import solve_plans

    options = run.config.options_of("reranker")
    depth = min(run.k, TOP)
    pairs = []
    for qi in range(min(run.config.save_plans, len(shortlist))):
        chosen = list(reranked[qi, :depth])
        first = next((int(g) for g in reranked[qi] if (run.ev.relevant[qi] == g).any()), None)
        if first is not None and first not in chosen:
            chosen.append(first)
        pairs += [(qi, int(g)) for g in chosen]
    if not pairs:
        return []
    qrows, grows = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    solved = solve_plans(ctx, qrows, grows, lambda M, C1, C2, p, q: run.reranker.solve_plans(M, C1, C2, p, q, options))
    boxes = _region_boxes(run, sorted({g for _, g in pairs}))
    records = []
    for (qi, g), plan in zip(pairs, solved):
        if plan is None:  # a candidate without objects: nothing was matched
            continue
        final_pos = int(np.flatnonzero(reranked[qi] == g)[0])
        stage1_pos = int(np.flatnonzero(shortlist[qi] == g)[0])
        labels = run.g_phrases[g] if run.regions is None else [f"region {j + 1}" for j in range(plan.plan.shape[1])]
        records.append({
            "query_id": run.ev.ids[qi], "gallery_id": run.ev.ids[g], "rank_final": final_pos, "rank_stage1": stage1_pos,
            "relevant": bool((run.ev.relevant[qi] == g).any()), "score": float(scores[qi, stage1_pos]), "cost": plan.cost,
            "n": plan.plan.shape[0], "m": plan.plan.shape[1],
            "query_objects": list(run.q_phrases[qi]), "candidate_objects": list(labels), "candidate_boxes": boxes.get(g, []),
            **{name: np.asarray(getattr(plan, name), np.float64).ravel().tolist() for name in ("M", "C1", "C2", "p", "q", "plan")},
        })
    return records


def _region_boxes(run: RetrievalRun, images: list[int]) -> dict[int, list[float]]:
    """Each image's region boxes as fractions of its width and height, flattened
    ``[l, t, r, b, …]`` (``--candidate-objects boxes / grid / detector``); none otherwise."""
    regions = run.regions
    if regions is None or regions.boxes is None:
        return {}
    from vgrc.evaluators.objects.crops import image_sizes

    sizes = image_sizes([run.ev.image_paths[g] for g in images])
    out = {}
    for g, (w, h) in zip(images, sizes):
        b = np.asarray(regions.boxes[regions.offsets[g] : regions.offsets[g + 1]], np.float64) / [w, h, w, h]
        out[g] = [round(float(v), 5) for v in b.ravel()]
    return out
