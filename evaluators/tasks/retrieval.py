"""``--task retrieval`` (the default): captions as queries, the dataset's images as the
gallery; first stage, reranking, metrics (paper §6.1, §6.2, App. A, J; Tables 1–4).

:func:`run_retrieval` composes the stages of :mod:`vgrc.evaluators.tasks.stages`, grades
the lists (annotations, or App. G's judges), and hands a
:class:`~vgrc.evaluators.runs.RunResult` to :func:`~vgrc.evaluators.runs.write_run`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vgrc.evaluators.metrics import recall_at_k
from vgrc.evaluators.retrieval_data import RetrievalSet, query_categories
from vgrc.evaluators.runs import RunResult, skipped_images_note, write_run
from vgrc.evaluators.tasks import grading, stages
from vgrc.evaluators.tasks.stages import TOP, RetrievalRun

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
    with timer("judge" if config.component("relevance").judged else "metrics"):
        grader = grading.grade(config, run.ev, run.topk, run.final_lists, run.setup, progress)
        if isinstance(grader, grading.JudgedGrader):
            run.diagnostics["vlm_relevance"] = grader.info
    with timer("metrics"):
        metrics = _metrics(run, grader)
        notes = _notes(run, grader)
    return write_run(out, config, _result(run, metrics, notes, grader), timer)


def _metrics(run: RetrievalRun, grader) -> dict[str, float]:
    """R@K, the shortlist recall, and the graded metrics (nDCG@K, CAS@K) of the final and
    the stage-1 lists."""
    config, topk, rank1, k = run.config, run.topk, run.rank1, run.k
    metrics: dict[str, float] = {}
    metrics.update(recall_at_k(run.rank_final))
    metrics.update(grader.metrics(run.final_lists, "t2i"))
    metrics[f"t2i_shortlist_recall@{config.k}"] = float(np.mean((rank1 >= 0) & (rank1 < k)))
    metrics.update({f"stage1_{n}": v for n, v in recall_at_k(rank1).items()})
    metrics.update({f"stage1_{n}": v for n, v in grader.metrics(topk, "t2i").items()})
    if "ridge" in run.diagnostics:
        metrics["ridge_distance_reduction"] = run.diagnostics["ridge"]["reduction"]
    if "index" in run.diagnostics:
        key = next(k for k in run.diagnostics["index"] if k.startswith("recall@"))
        metrics[f"stage1_index_{key.removesuffix('_vs_exact')}"] = run.diagnostics["index"][key]
    metrics["n_queries"] = float(len(run.ev))
    metrics["n_gallery"] = float(len(run.ev_img))
    return metrics


def _result(run: RetrievalRun, metrics: dict, notes: list[str], grader) -> RunResult:
    """The run's outputs: the metric tables' title, the per-query frame, the recall plot."""
    config, ev, topk, final_lists = run.config, run.ev, run.topk, run.final_lists
    extra_columns = grader.per_query(topk, final_lists)
    extra_columns["categories"] = query_categories(ev, from_nouns=run.data_info.get("query_categories") != "none")
    frame = _per_query_frame(ev, run.rank1, run.rank_final, topk, final_lists, run.steered, extra_columns)
    dataset = run.data_info.get("dataset")
    return RunResult(
        metrics=metrics, per_query=frame, title=f"{dataset} · {config.model} · {config.stage1} + {config.rerank} (k={config.k})", notes=notes,
        lead={"stage1": config.stage1, "rerank": config.rerank}, dataset=dataset, data_info=run.data_info, setup=run.setup,
        skipped={"images": run.bad, "query_ids": run.skipped_ids}, diagnostics=run.diagnostics,
        recall=(run.rank1, run.rank_final, max(run.k, 10), f"{config.model}: {config.stage1} + {config.rerank}"),
        plans=_plans_frame(run.plans) if run.plans is not None else None,
    )


def _plans_frame(records: list[dict]):
    """``plans.parquet``: one row per saved (query, candidate) plan; matrices row-major."""
    import pandas as pd

    columns = ["query_id", "gallery_id", "rank_final", "rank_stage1", "relevant", "score", "cost", "n", "m", "query_objects",
               "candidate_objects", "candidate_boxes", "M", "C1", "C2", "p", "q", "plan"]
    return pd.DataFrame(records, columns=columns)


def _notes(run: RetrievalRun, grader) -> list[str]:
    """Plain-language statements every output carries (metrics.md, run.json, report)."""
    config, data_info = run.config, run.data_info
    graded, judged = grader.graded, isinstance(grader, grading.JudgedGrader)
    notes = []
    regions = run.reranker.candidate_objects and run.candidates.from_pixels
    if (run.per_object and not (regions and config.query_objects != "annotations")) or graded:
        lead = OBJECTS_NOTE.replace("per-object sets", "the queries' per-object sets and the graded relevance") if regions else OBJECTS_NOTE
        notes.append(f"{lead}: {data_info.get('objects_source')}")
    if config.query_objects != "annotations" and run.per_object:
        notes.append(f"the queries' object sets are parsed from their captions by the {config.query_objects} parser, not taken from the "
                     "annotations (--query-objects); the graded relevance stays the annotations'")
    if regions:
        info = run.diagnostics.get("candidate_regions", {})
        notes.append(f"the candidates' object sets are regions cut from the pixels by --candidate-objects {config.candidate_objects} "
                     f"({run.candidates.help}; {info.get('per_image_mean', 0):.1f} regions per image): no candidate annotation is read"
                     + (" but the boxes" if run.candidates.needs_boxes else ""))
    if judged:
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
    if judged and "unparsable_note" in grader.info:
        notes.append(grader.info["unparsable_note"])
    if run.bad:
        notes.append(skipped_images_note(run.bad))
    if run.stage1.fits(config.options_of("stage1")) and data_info.get("fit"):
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
