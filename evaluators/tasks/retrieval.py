"""``--task retrieval`` (the default): captions as queries, the dataset's images as the
gallery; first stage, reranking, metrics (paper §6.1, §6.2, App. A, J; Tables 1–4).

:func:`run_retrieval` composes the stages of :mod:`vgrc.evaluators.tasks.stages`, grades
the lists (annotations, or App. G's judges), and hands a
:class:`~vgrc.evaluators.runs.RunResult` to :func:`~vgrc.evaluators.runs.write_run`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vgrc.evaluators.grade_kernels import AnnotationIndex
from vgrc.evaluators.judges.relevance import judge_identity, judge_pairs
from vgrc.evaluators.judges.vlm import CAS_PROMPT, QAS_PROMPT, QwenAppGJudge, prompt_hash
from vgrc.evaluators.metrics import annotation_grades, cas_at_k, graded_metrics, ndcg_at_k, ndcg_per_query, recall_at_k
from vgrc.evaluators.retrieval_data import RetrievalSet, query_categories
from vgrc.evaluators.runs import RunResult, skipped_images_note, write_run
from vgrc.evaluators.sharding import rank_device
from vgrc.evaluators.tasks import stages
from vgrc.evaluators.tasks.stages import RetrievalRun, TOP


__all__ = ["run_retrieval", "OBJECTS_NOTE", "TOP"]

#: where per-object sets come from, said in every output
OBJECTS_NOTE = "per-object sets come from the dataset's annotations (an oracle, as in the paper §4.3 / App. A), not from a detector"


def run_retrieval(config, out: Path, progress, timer) -> dict:
    """Run the retrieval evaluation and write ``out``; return the metrics."""
    if config.component("relevance").judged:  # the judge's weights, before any encoding (as build-nac's judge)
        from vgrc.evaluators.encoders.model_refs import require_model

        require_model("--judge-model", config.judge_model, "transformers", "judge model",
                      "or pass a local folder: --judge-model PATH, or use --relevance symbolic")
    run = stages.prepare(config, progress, timer)
    stages.encode(run)
    with timer("stage1"):
        stages.first_stage(run)
        stages.search(run)
    with timer("rerank"):
        stages.rerank(run)
    judged = None
    if config.component("relevance").judged:
        with timer("judge"):
            judged = _judge(config, run.ev, run.topk[:, :TOP], run.final_lists[:, :TOP], run.setup, progress)
            run.diagnostics["vlm_relevance"] = judged[1]
    with timer("metrics"):
        metrics, grades = _metrics(run, judged)
        notes = _notes(run, bool(grades) or judged is not None, judged)
    return write_run(out, config, _result(run, metrics, notes, grades, judged), timer)


def _metrics(run: RetrievalRun, judged) -> tuple[dict[str, float], dict]:
    """R@K, the shortlist recall, nDCG@K and CAS@K of the final and the stage-1 lists; and
    the annotation grades of the final lists (for the per-query columns)."""
    config, ev, topk, final_lists, rank1, k = run.config, run.ev, run.topk, run.final_lists, run.rank1, run.k
    graded = any(ev.query_objects) or judged is not None
    # CAS-noun is defined on annotated object tuples: with a VLM judge too, wherever both sides carry them
    annotated = all(ev.query_objects) and all(ev.objects)
    index = AnnotationIndex(ev.query_objects, ev.objects) if (graded and judged is None) or annotated else None
    annotations = (ev.query_objects, ev.objects, index) if annotated else None
    grades = {}
    metrics: dict[str, float] = {}
    metrics.update(recall_at_k(run.rank_final))
    if judged is not None:
        metrics.update(_judged_metrics(judged[0], final_lists[:, :TOP], "t2i", annotations))
    elif graded:
        grades["final"] = annotation_grades(final_lists[:, :TOP], ev.query_objects, ev.objects, index)
        metrics.update(graded_metrics(*grades["final"], prefix="t2i"))
    metrics[f"t2i_shortlist_recall@{config.k}"] = float(np.mean((rank1 >= 0) & (rank1 < k)))
    metrics.update({f"stage1_{n}": v for n, v in recall_at_k(rank1).items()})
    if judged is not None:
        metrics.update({f"stage1_{n}": v for n, v in _judged_metrics(judged[0], topk[:, :TOP], "t2i", annotations).items()})
    elif graded:
        stage1_grades = annotation_grades(topk[:, :TOP], ev.query_objects, ev.objects, index)
        metrics.update({f"stage1_{n}": v for n, v in graded_metrics(*stage1_grades, prefix="t2i").items()})
    if "ridge" in run.diagnostics:
        metrics["ridge_distance_reduction"] = run.diagnostics["ridge"]["reduction"]
    if "index" in run.diagnostics:
        key = next(k for k in run.diagnostics["index"] if k.startswith("recall@"))
        metrics[f"stage1_index_{key.removesuffix('_vs_exact')}"] = run.diagnostics["index"][key]
    metrics["n_queries"] = float(len(ev))
    metrics["n_gallery"] = float(len(run.ev_img))
    return metrics, grades


def _result(run: RetrievalRun, metrics: dict, notes: list[str], grades: dict, judged) -> RunResult:
    """The run's outputs: the metric tables' title, the per-query frame, the recall plot."""
    config, ev, topk, final_lists = run.config, run.ev, run.topk, run.final_lists
    extra_columns = {}
    if judged is not None:
        extra_columns = {"judged_grades_stage1": [list(r) for r in judged[0].matrices(topk[:, :TOP])[0]],
                         "judged_grades_final": [list(r) for r in judged[0].matrices(final_lists[:, :TOP])[0]]}
        extra_columns.update(_per_query_graded(*judged[0].matrices(final_lists[:, :TOP]), judged=True))
    elif grades:
        extra_columns.update(_per_query_graded(*grades["final"], judged=False))
    extra_columns["categories"] = query_categories(ev, from_nouns=run.data_info.get("query_categories") != "none")
    frame = _per_query_frame(ev, run.rank1, run.rank_final, topk, final_lists, run.steered, extra_columns)
    dataset = run.data_info.get("dataset")
    return RunResult(
        metrics=metrics, per_query=frame, title=f"{dataset} · {config.model} · {config.stage1} + {config.rerank} (k={config.k})", notes=notes,
        lead={"stage1": config.stage1, "rerank": config.rerank}, dataset=dataset, data_info=run.data_info, setup=run.setup,
        skipped={"images": run.bad, "query_ids": run.skipped_ids}, diagnostics=run.diagnostics,
        recall=(run.rank1, run.rank_final, max(run.k, 10), f"{config.model}: {config.stage1} + {config.rerank}"),
    )


def _judge(config, ev: RetrievalSet, stage1_lists: np.ndarray, final_lists: np.ndarray, setup, progress):
    """App. G judgements of every (query, image) pair in a reported top-K list."""

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

    return {"ndcg@10": ndcg_per_query(relevance, TOP), "cas_gen@10": np.asarray(gen)[:, :TOP].mean(1),
            "cas_noun@10": np.asarray(noun)[:, :TOP].mean(1)}


def _notes(run: RetrievalRun, graded: bool, judged) -> list[str]:
    """Plain-language statements every output carries (metrics.md, run.json, report)."""
    config, data_info = run.config, run.data_info
    notes = []
    if run.per_object or graded:
        notes.append(f"{OBJECTS_NOTE}: {data_info.get('objects_source')}")
    if judged is not None:
        notes.append(f"nDCG@K and CAS@K use VLM-judged relevance (App. G prompts, {config.judge_mode} scoring) by {config.judge_model}: "
                     "QAS grade 0–4 (the most likely integer) for nDCG, grade/4 for CAS-gen; CAS-noun from the annotations' object tuples "
                     "where both sides carry them (the paper's definition), the attribute–noun judge's own figure as CAS-noun-vlm")
    elif not graded:
        notes.append("nDCG@K and CAS@K are not reported: the dataset's rows carry no `objects` annotations to grade relevance")
    else:
        notes.append("nDCG@K and CAS@K use symbolic relevance from the annotations (App. H), not a VLM judge")
    component_info = {**data_info, "costs_from": config.costs_from}
    for kind in ("reranker", "index"):
        notes.extend(config.component(kind).notes(config.options_of(kind), component_info))
    if run.steered_objects:
        notes.append(f"per-object steering (App. J): each object moved along normalize(e(phrase) − e(noun)) with strength {config.steer_alpha:g}")
    if judged is not None and "unparsable_note" in judged[1]:
        notes.append(judged[1]["unparsable_note"])
    if run.bad:
        notes.append(skipped_images_note(run.bad))
    if run.stage1.needs_fit and data_info.get("fit"):
        notes.append(f"--stage1 {config.stage1} fits on {data_info['fit']}"
                     + (": those rows are left out of the queries and the gallery, which other first stages evaluate whole"
                        if not config.fit_split else ""))
    return notes


def _per_query_frame(ev: RetrievalSet, rank1, rank_final, topk, final_lists, steered, extra_columns: dict):
    import pandas as pd

    return pd.DataFrame(
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
            **extra_columns,
        }
    )
