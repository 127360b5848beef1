"""``--task retrieval`` (the default): captions as queries, the dataset's images as the
gallery; first stage, reranking, metrics (paper §6.1, §6.2, App. A, J; Tables 1–4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vgrc.evaluators.encoding import EncodingSetup
from vgrc.evaluators.grade_kernels import AnnotationIndex
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage import RidgeMapper, Steering, check_steer_words, confusion_pairs, cosine_topk, normalize, parse_steer_pairs, search_device
from vgrc.evaluators.metrics import annotation_grades, first_relevant_rank, graded_metrics, recall_at_k
from vgrc.evaluators.rerank import CANDIDATE_OBJECT_RERANKERS, PER_OBJECT_RERANKERS, ObjectTable, RerankContext, order_by_scores, rerank_scores_sharded, steer_objects
from vgrc.evaluators.registry import FIT_STAGES
from vgrc.evaluators.retrieval_data import RetrievalSet, load_retrieval, object_phrase, query_categories, require_objects, vocabulary
from vgrc.evaluators.runs import claim_eval_folder, plot_recall, skipped_images_note, write_metric_tables, write_per_query, write_run_json

__all__ = ["run_retrieval", "object_directions", "confusion_steering_pairs", "PER_OBJECT_STAGE1", "OBJECTS_NOTE", "TOP"]

TOP = 10  # list depth for nDCG / CAS
#: stages that read per-object query sets
PER_OBJECT_STAGE1 = ("objects-avg", "objects-steer-avg")
#: where per-object sets come from, said in every output
OBJECTS_NOTE = "per-object sets come from the dataset's annotations (an oracle, as in the paper §4.3 / App. A), not from a detector"


def run_retrieval(config, out: Path, progress, timer) -> dict:
    """Run the retrieval evaluation and write ``out``; return the metrics."""
    if config.relevance == "vlm":  # the judge's weights, before any encoding (as build-nac's judge)
        from vgrc.evaluators.model_refs import require_model

        require_model("--judge-model", config.judge_model, "transformers", "judge model",
                      "or pass a local folder: --judge-model PATH, or use --relevance symbolic")
    with timer("load_data"):
        ev, fit, data_info = load_retrieval(
            config.data, config.split, fit_split=config.fit_split, fit_fraction=config.held_out_fraction, limit=config.limit, seed=config.seed
        )
        _require_annotations(config, ev)
        if config.steer:
            check_steer_words(parse_steer_pairs(config.steer), vocabulary(ev, fit))
    setup = EncodingSetup(config)
    needs_fit = config.stage1 in FIT_STAGES  # ridge+steer's default pairs come from the fit rows too

    # ---------------------------------------------------------------- encode images
    with timer("encode_images"):
        sets = [ev] + ([fit] if needs_fit and fit is not None else [])
        paths = [p for s in sets for p in s.image_paths]
        img_emb, failed, bad = setup.encode_images(paths, progress)
        ev_img, fit_img = img_emb[: len(ev)], img_emb[len(ev) :]

    # drop rows whose image is damaged (only with --skip-bad), from queries and gallery
    n_ev = len(ev)
    skipped_ids = [ev.ids[i] for i in np.flatnonzero(failed[:n_ev])]
    if skipped_ids:
        keep = np.flatnonzero(~failed[:n_ev])
        ev, ev_img = ev.subset(keep), ev_img[keep]
    if failed[n_ev:].any():
        keep = np.flatnonzero(~failed[n_ev:])
        fit, fit_img = fit.subset(keep), fit_img[keep]
    if len(ev) == 0:
        raise InvalidInputError(f"no evaluable rows are left: all {n_ev} images were skipped (first: {bad[0] if bad else '?'})")

    # ---------------------------------------------------------------- encode texts
    def embed_texts(texts: list[str]) -> np.ndarray:
        return setup.encode_texts(texts, progress)

    def embed_phrases(phrases: list[str]) -> np.ndarray:
        return setup.encode_phrases(phrases, progress)

    per_object = config.rerank in PER_OBJECT_RERANKERS or config.stage1 in PER_OBJECT_STAGE1
    steered_objects = config.stage1 == "objects-steer-avg" or config.rerank.startswith("steer-")
    with timer("encode_texts"):
        q_text = embed_texts(ev.captions)
        q_phrases = [[object_phrase(o) for o in objs] for objs in ev.query_objects]
        g_phrases = [[object_phrase(o) for o in objs] for objs in ev.objects]
        unique = sorted({ph for rows in (q_phrases, g_phrases if config.rerank in CANDIDATE_OBJECT_RERANKERS else []) for row in rows for ph in row}) if per_object else []
        phrase_emb = embed_phrases(unique) if unique else np.zeros((0, q_text.shape[1]), np.float32)
        phrase_index = {ph: i for i, ph in enumerate(unique)}
        directions = None
        if steered_objects:
            directions = object_directions(unique, ev.query_objects, phrase_emb, embed_phrases)

    # ---------------------------------------------------------------- stage 1
    diagnostics: dict = {}
    steered = np.zeros(len(ev), dtype=bool)
    with timer("stage1"):
        queries = q_text
        mapper = None
        if needs_fit:
            fit_text = embed_texts(fit.captions)
            mapper = RidgeMapper(ridge_lambda=config.ridge_lambda).fit(fit_text, fit_img)
            queries = mapper.transform(q_text)
            diagnostics["ridge"] = {"fit_rows": len(fit), **mapper.distance_reduction(q_text, ev_img)}
        if config.stage1 == "ridge+steer":
            pairs = parse_steer_pairs(config.steer)
            if not pairs and config.steer_top > 0:
                pairs = confusion_steering_pairs(config, fit, fit_text, fit_img, diagnostics)
            steering = Steering(pairs, config.steer_alpha).fit(embed_phrases, mapper)
            queries, steered = steering.transform(queries, ev.query_objects)
            diagnostics["steering"] = {"pairs": [list(p) for p in pairs], "steer_alpha": config.steer_alpha, "queries_steered": int(steered.sum())}
        elif config.stage1 in PER_OBJECT_STAGE1:
            table = ObjectTable.build(q_phrases, phrase_index, phrase_emb)
            objs = table.emb()
            if config.stage1 == "objects-steer-avg":
                objs = steer_objects(objs, directions[table.index], config.steer_alpha)
                steered[:] = True
            queries = normalize((objs * (table.weight > 0)[..., None]).sum(1))
        depth = max(config.k, TOP)
        if config.index == "exact":
            topk, topk_scores, rank1 = cosine_topk(queries, ev_img, depth, ev.relevant, device=config.device, on_progress=lambda d, t: progress("stage-1 search", d, t))
            on = search_device(config.device, len(queries), len(ev_img))
            diagnostics["exact_search"] = {"k": depth, "on": f"{on} (torch)" if on != "cpu" else "cpu (numpy + numba)"}
        else:
            from vgrc.evaluators.index.faiss_index import faiss_search
            from vgrc.evaluators.sharding import rank_device

            progress("index search", 0, 1)
            topk, topk_scores, rank1, diagnostics["index"] = faiss_search(
                queries, ev_img, depth, ev.relevant, kind=config.index, store=setup.cache_root / "index", nprobe=config.nprobe,
                ef_search=config.ef_search, device=rank_device(config.device), seed=config.seed)
            progress("index search", 1, 1)
        k = min(config.k, len(ev))
        shortlist, short_scores = topk[:, :k], topk_scores[:, :k]

    # ---------------------------------------------------------------- stage 2
    with timer("rerank"):
        if config.rerank == "none":
            reranked = shortlist
        else:
            q_table = ObjectTable.build(q_phrases, phrase_index, phrase_emb)
            g_table = ObjectTable.build(g_phrases if config.rerank in CANDIDATE_OBJECT_RERANKERS else [[] for _ in g_phrases], phrase_index, phrase_emb)
            ctx = RerankContext(
                q_table, g_table, ev_img, map_query=None if mapper is None else mapper.transform, fgw_alpha=config.fgw_alpha,
                solver=config.solver, epsilon=config.epsilon, tau=config.tau, unmatched_cost=config.unmatched_cost,
                surplus_cost=config.surplus_cost, object_directions=directions, steer_alpha=config.steer_alpha,
            )
            progress("reranking", 0, 1)
            reranked = order_by_scores(shortlist, rerank_scores_sharded(config.rerank, ctx, shortlist, short_scores))
            progress("reranking", 1, 1)
        final_lists = np.concatenate([reranked, topk[:, k:]], axis=1)
        pos = first_relevant_rank(reranked, ev.relevant)
        rank_final = np.where(pos >= 0, pos, rank1)

    # ---------------------------------------------------------------- metrics
    judged = None
    if config.relevance == "vlm":
        with timer("judge"):
            judged = _judge(config, ev, topk[:, :TOP], final_lists[:, :TOP], setup, progress)
            diagnostics["vlm_relevance"] = judged[1]
    with timer("metrics"):
        graded = any(ev.query_objects) or judged is not None
        # CAS-noun is defined on annotated object tuples: with a VLM judge too, wherever both sides carry them
        annotated = all(ev.query_objects) and all(ev.objects)
        index = AnnotationIndex(ev.query_objects, ev.objects) if (graded and judged is None) or annotated else None
        annotations = (ev.query_objects, ev.objects, index) if annotated else None
        metrics: dict[str, float] = {}
        metrics.update(recall_at_k(rank_final))
        if judged is not None:
            metrics.update(_judged_metrics(judged[0], final_lists[:, :TOP], "t2i", annotations))
        elif graded:
            final_grades = annotation_grades(final_lists[:, :TOP], ev.query_objects, ev.objects, index)
            metrics.update(graded_metrics(*final_grades, prefix="t2i"))
        metrics[f"t2i_shortlist_recall@{config.k}"] = float(np.mean((rank1 >= 0) & (rank1 < k)))
        metrics.update({f"stage1_{n}": v for n, v in recall_at_k(rank1).items()})
        if judged is not None:
            metrics.update({f"stage1_{n}": v for n, v in _judged_metrics(judged[0], topk[:, :TOP], "t2i", annotations).items()})
        elif graded:
            stage1_grades = annotation_grades(topk[:, :TOP], ev.query_objects, ev.objects, index)
            metrics.update({f"stage1_{n}": v for n, v in graded_metrics(*stage1_grades, prefix="t2i").items()})
        if "ridge" in diagnostics:
            metrics["ridge_distance_reduction"] = diagnostics["ridge"]["reduction"]
        if "index" in diagnostics:
            key = next(k for k in diagnostics["index"] if k.startswith("recall@"))
            metrics[f"stage1_index_{key.removesuffix('_vs_exact')}"] = diagnostics["index"][key]
        metrics["n_queries"] = float(len(ev))
        metrics["n_gallery"] = float(len(ev_img))
        notes = _notes(config, data_info, graded, per_object)
        if judged is not None and "unparsable_note" in judged[1]:
            notes.append(judged[1]["unparsable_note"])
        if bad:
            notes.append(skipped_images_note(bad))
        if needs_fit and data_info.get("fit"):
            notes.append(f"--stage1 {config.stage1} fits on {data_info['fit']}"
                         + (": those rows are left out of the queries and the gallery, which other first stages evaluate whole"
                            if not config.fit_split else ""))

    # ---------------------------------------------------------------- outputs
    from vgrc.evaluators import sharding

    if not sharding.is_main():  # under a launcher, rank 0 alone writes the run
        return metrics
    with timer("write"):
        claim_eval_folder(out, config)
        extra_columns = {}
        if judged is not None:
            extra_columns = {"judged_grades_stage1": [list(r) for r in judged[0].matrices(topk[:, :TOP])[0]],
                             "judged_grades_final": [list(r) for r in judged[0].matrices(final_lists[:, :TOP])[0]]}
        if judged is not None:
            extra_columns.update(_per_query_graded(*judged[0].matrices(final_lists[:, :TOP]), judged=True))
        elif graded:
            extra_columns.update(_per_query_graded(*final_grades, judged=False))
        extra_columns["categories"] = query_categories(ev, from_nouns=data_info.get("query_categories") != "none")
        _write_outputs(out, config, metrics, ev, rank1, rank_final, topk, final_lists, steered, k, notes, data_info.get("dataset"), extra_columns)
        write_run_json(out, config, setup, data_info, {"images": bad, "query_ids": skipped_ids}, {**diagnostics, "notes": notes}, timer)
    return metrics




def _judge(config, ev: RetrievalSet, stage1_lists: np.ndarray, final_lists: np.ndarray, setup, progress):
    """App. G judgements of every (query, image) pair in a reported top-K list."""
    from vgrc.evaluators.sharding import rank_device
    from vgrc.evaluators.vlm_judges import CAS_PROMPT, QAS_PROMPT, QwenAppGJudge, prompt_hash
    from vgrc.evaluators.vlm_relevance import judge_identity, judge_pairs

    pairs = sorted({(q, int(g)) for lists in (stage1_lists, final_lists) for q, row in enumerate(lists) for g in row})
    judge_id = judge_identity(config.judge_model, config.judge_mode)
    judged = judge_pairs(
        pairs, ev.captions, ev.query_objects, ev.image_paths,
        judge_factory=lambda: QwenAppGJudge(config.judge_model, device=rank_device(config.device), batch_size=config.judge_batch_size),
        judge_id=judge_id, mode=config.judge_mode, store_root=setup.cache_root, batch_size=config.judge_batch_size,
        on_progress=lambda d, t: progress("judging", d, t),
    )
    info = {"judge_model": config.judge_model, "judge_id": judge_id, "mode": config.judge_mode,
            "prompt_hashes": {"qas": prompt_hash(QAS_PROMPT), "attribute_noun": prompt_hash(CAS_PROMPT)},
            "pairs": len(pairs), "judgements": judged.distinct, "judgements_made": judged.made, "judgements_reused": judged.reused,
            "unparsable_answers": judged.unparsable, "model_seconds": judged.model_seconds, "judging_seconds": judged.total_seconds}
    if judged.unparsable:
        from vgrc.evaluators.errors import warn

        info["unparsable_note"] = (f"{judged.unparsable} of {judged.distinct} judge answers could not be parsed ({config.judge_mode} mode); "
                                   "a query with one in its top 10 is left out of nDCG, CAS-gen and CAS-noun-vlm (t2i_judged_queries "
                                   "counts the queries judged in full), and a metric with none is not reported")
        warn(info["unparsable_note"])
    return judged, info


def _judged_metrics(judged, lists: np.ndarray, prefix: str, annotations: tuple | None = None) -> dict[str, float]:
    """nDCG@K from the QAS grades (App. H) and CAS-gen@K from the judge. CAS-noun@K is the
    paper's, from the annotations' object tuples (App. J, §5) when ``annotations`` =
    (query objects, gallery objects, index) is given; the VLM's attribute-noun judgement of
    it is reported apart, as CAS-noun-vlm@K (App. G's prompt; docs/FIDELITY.md row 19)."""
    from vgrc.evaluators.metrics import cas_at_k, ndcg_at_k

    grade, gen, noun = judged.matrices(lists, unparsable=np.nan)
    # a query with an unparsable judgement in its list is left out of the judge's averages (not
    # scored 0); a metric with no query judged in full is missing, not 0
    qas_ok, noun_ok = ~np.isnan(grade).any(axis=1), ~np.isnan(noun).any(axis=1)
    out = {}
    if qas_ok.any():
        out.update(ndcg_at_k(grade[qas_ok], prefix=prefix))
        out.update({n: v for n, v in cas_at_k(gen[qas_ok], gen[qas_ok], prefix=prefix).items() if "CAS-gen" in n})
    if noun_ok.any():
        out.update({n.replace("CAS-noun@", "CAS-noun-vlm@"): v for n, v in cas_at_k(noun[noun_ok], noun[noun_ok], prefix=prefix).items() if "CAS-noun@" in n})
    out[f"{prefix}_judged_queries"] = float(qas_ok.sum())
    if annotations is not None:
        annotated_noun = annotation_grades(lists, *annotations)[2]
        out.update({n: v for n, v in cas_at_k(annotated_noun, annotated_noun, prefix=prefix).items() if "CAS-noun@" in n})
    return out


def _per_query_graded(relevance, gen, noun, judged: bool) -> dict[str, np.ndarray]:
    """Per-query nDCG@10, CAS-gen@10 and CAS-noun@10 of the final lists (for ``vgrc
    report --bootstrap`` and per-category breakdowns); their means are the run's metrics."""
    from vgrc.evaluators.metrics import ndcg_per_query

    return {"ndcg@10": ndcg_per_query(relevance, TOP), "cas_gen@10": np.asarray(gen)[:, :TOP].mean(1),
            "cas_noun@10": np.asarray(noun)[:, :TOP].mean(1)}


def _require_annotations(config, ev: RetrievalSet) -> None:
    """Per-object stages and rerankers need objects on every row; say which row lacks them."""
    if config.stage1 in PER_OBJECT_STAGE1:
        require_objects(ev, "query", f"--stage1 {config.stage1}")
    if config.rerank in PER_OBJECT_RERANKERS:
        require_objects(ev, "query", f"--rerank {config.rerank}")
    if config.stage1 == "ridge+steer":
        require_objects(ev, "query", "--stage1 ridge+steer (it steers queries by the words of their objects)")
    if any(ev.query_objects) and config.relevance == "symbolic":  # graded metrics: all queries or none
        require_objects(ev, "query", "the graded metrics (nDCG@K, CAS@K)")


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


def confusion_steering_pairs(config, fit: RetrievalSet, fit_text: np.ndarray, fit_img: np.ndarray, diagnostics: dict) -> list[tuple[str, str]]:
    """App. E: steering pairs from the BASELINE (cosine) top-1 confusions on the fit rows,
    attributes (colour) held fixed."""
    top1 = cosine_topk(fit_text, fit_img, 1, fit.relevant)[0][:, 0]
    wrong = [i for i in range(len(fit)) if top1[i] not in fit.relevant[i]]
    found = confusion_pairs([fit.query_objects[i] for i in wrong], [fit.objects[top1[i]] for i in wrong], config.steer_top)
    diagnostics["confusions"] = {
        "source": "cosine top-1 on the fit rows, attributes held fixed (App. E)",
        "fit_rows": len(fit),
        "wrong_top1": len(wrong),
        "pairs": [{"source": s, "target": t, "count": c} for s, t, c in found],
    }
    return [(s, t) for s, t, _ in found]


def hungarian_costs_note(config, recommended: dict) -> str:
    """Hungarian's two costs and where each came from, and the dataset's recommendation
    when the run departs from it."""
    sources = config.costs_from or {}
    note = (f"hungarian: unmatched query object costs {config.unmatched_cost:g} ({sources.get('unmatched_cost', 'given')}), "
            f"surplus candidate object {config.surplus_cost:g} ({sources.get('surplus_cost', 'given')})")
    if recommended and (recommended.get("surplus_cost"), recommended.get("unmatched_cost")) != (config.surplus_cost, config.unmatched_cost):
        note += f"; this dataset recommends --unmatched-cost {recommended.get('unmatched_cost'):g} --surplus-cost {recommended.get('surplus_cost'):g}"
    return note


def _notes(config, data_info: dict, graded: bool, per_object: bool) -> list[str]:
    """Plain-language statements every output carries (metrics.md, run.json, report)."""
    notes = []
    if per_object or graded:
        notes.append(f"{OBJECTS_NOTE}: {data_info.get('objects_source')}")
    if config.relevance == "vlm":
        notes.append(f"nDCG@K and CAS@K use VLM-judged relevance (App. G prompts, {config.judge_mode} scoring) by {config.judge_model}: "
                     "QAS grade 0–4 (the most likely integer) for nDCG, grade/4 for CAS-gen; CAS-noun from the annotations' object tuples "
                     "where both sides carry them (the paper's definition), the attribute–noun judge's own figure as CAS-noun-vlm")
    elif not graded:
        notes.append("nDCG@K and CAS@K are not reported: the dataset's rows carry no `objects` annotations to grade relevance")
    else:
        notes.append("nDCG@K and CAS@K use symbolic relevance from the annotations (App. H), not a VLM judge")
    if config.rerank == "hungarian":
        notes.append(hungarian_costs_note(config, data_info.get("recommended") or {}))
    if config.index != "exact":
        notes.append(f"stage 1 searched a FAISS {config.index} index; its shortlist recall against exact search is in "
                     "stage1_index_recall@K (a sample of queries); relevant images beyond the index's top-K count as not retrieved")
    if config.rerank == "fgw" and config.solver == "sinkhorn":
        notes.append(f"fgw linear step: Sinkhorn, epsilon {config.epsilon:g} (the paper's variant)")
    if config.stage1 == "objects-steer-avg" or config.rerank.startswith("steer-"):
        notes.append(f"per-object steering (App. J): each object moved along normalize(e(phrase) − e(noun)) with strength {config.steer_alpha:g}")
    return notes


def _write_outputs(out: Path, config, metrics: dict, ev: RetrievalSet, rank1, rank_final, topk, final_lists, steered, k, notes, dataset, extra_columns=None) -> None:
    import pandas as pd

    title = f"{dataset} · {config.model} · {config.stage1} + {config.rerank} (k={config.k})"
    write_metric_tables(out, config, metrics, title, notes, {"stage1": config.stage1, "rerank": config.rerank}, dataset)
    frame = pd.DataFrame(
        {
            "query_id": ev.ids,
            "caption": ev.captions,
            "rank_stage1": rank1,
            "rank_final": rank_final,
            "top1_stage1": [ev.ids[i] for i in topk[:, 0]],
            "top1_final": [ev.ids[i] for i in final_lists[:, 0]],
            # the reported lists themselves (ids), so every list metric can be recomputed from the outputs
            "top10_stage1": [[ev.ids[i] for i in row] for row in topk[:, :TOP]],
            "top10_final": [[ev.ids[i] for i in row] for row in final_lists[:, :TOP]],
            "steered": steered,
            **(extra_columns or {}),
        }
    )
    write_per_query(out, frame)
    plot_recall(out / "recall_curve.png", rank1, rank_final, max(k, 10), f"{config.model}: {config.stage1} + {config.rerank}")
