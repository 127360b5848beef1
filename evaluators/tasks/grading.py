"""The relevance stage of the retrieval pipeline: graded relevance of the reported top-10
lists, and the graded metrics (nDCG@K, CAS@K) of the stage-1 and final lists.

One grader per relevance source, chosen once by :func:`grade` (the ``--relevance``
component's ``judged`` flag), each answering the same two questions:
``metrics(lists, prefix)`` and ``per_query(stage1_lists, final_lists)``.

- :class:`AnnotationGrader` — App. H's symbolic relevance from the rows' object tuples.
- :class:`JudgedGrader` — App. G's VLM judges on every (query, image) pair of a reported
  list (cached); CAS-noun stays the annotations' where both sides carry them.
- :class:`Ungraded` — rows without object annotations: no graded metric is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vgrc.evaluators.errors import warn
from vgrc.evaluators.grade_kernels import AnnotationIndex
from vgrc.evaluators.judges.relevance import judge_identity, judge_pairs
from vgrc.evaluators.judges.vlm import CAS_PROMPT, QAS_PROMPT, QwenAppGJudge, prompt_hash
from vgrc.evaluators.metrics import annotation_grades, cas_at_k, graded_metrics, ndcg_at_k, ndcg_per_query
from vgrc.evaluators.retrieval_data import RetrievalSet
from vgrc.evaluators.sharding import rank_device
from vgrc.evaluators.tasks.stages import TOP

__all__ = ["TOP", "grade", "Ungraded", "AnnotationGrader", "JudgedGrader", "per_query_graded"]




class Ungraded:
    """No graded relevance: the rows carry no object annotations."""

    graded = False
    info: dict = {}

    def metrics(self, lists: np.ndarray, prefix: str) -> dict[str, float]:
        return {}

    def per_query(self, stage1_lists: np.ndarray, final_lists: np.ndarray) -> dict:
        return {}


class AnnotationGrader(Ungraded):
    """App. H: grades from the rows' (noun, attributes) tuples."""

    graded = True

    def __init__(self, ev: RetrievalSet):
        self.ev = ev
        self.index = AnnotationIndex(ev.query_objects, ev.objects)

    def grades(self, lists: np.ndarray):
        return annotation_grades(lists[:, :TOP], self.ev.query_objects, self.ev.objects, self.index)

    def metrics(self, lists, prefix):
        return graded_metrics(*self.grades(lists), prefix=prefix)

    def per_query(self, stage1_lists, final_lists):
        return per_query_graded(*self.grades(final_lists))


@dataclass
class JudgedGrader(Ungraded):
    """App. G's judges: nDCG@K from the QAS grades, CAS-gen@K and CAS-noun-vlm@K from the
    judge, CAS-noun@K from the annotations (``annotations`` = query objects, gallery
    objects, index) when both sides carry them (docs/FIDELITY.md row 19)."""

    judged: object
    annotations: tuple | None
    info: dict = field(default_factory=dict)
    graded = True

    def metrics(self, lists, prefix):
        lists = lists[:, :TOP]
        grade, gen, noun = self.judged.matrices(lists, unparsable=np.nan)
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
        if self.annotations is not None:
            annotated_noun = annotation_grades(lists, *self.annotations)[2]
            out.update({n: v for n, v in cas_at_k(annotated_noun, annotated_noun, prefix=prefix).items() if "CAS-noun@" in n})
        return out

    def per_query(self, stage1_lists, final_lists):
        columns = {"judged_grades_stage1": [list(r) for r in self.judged.matrices(stage1_lists[:, :TOP])[0]],
                   "judged_grades_final": [list(r) for r in self.judged.matrices(final_lists[:, :TOP])[0]]}
        columns.update(per_query_graded(*self.judged.matrices(final_lists[:, :TOP])))
        return columns


def grade(config, ev: RetrievalSet, stage1_lists: np.ndarray, final_lists: np.ndarray, setup, progress):
    """The grader of this run's relevance source (judging the reported lists' pairs first
    when the source is a VLM judge)."""
    if not config.component("relevance").judged:
        return AnnotationGrader(ev) if any(ev.query_objects) else Ungraded()
    # CAS-noun is defined on annotated object tuples: with a VLM judge too, wherever both sides carry them
    annotated = all(ev.query_objects) and all(ev.objects)
    annotations = (ev.query_objects, ev.objects, AnnotationIndex(ev.query_objects, ev.objects)) if annotated else None
    judged, info = _judge(config, ev, stage1_lists[:, :TOP], final_lists[:, :TOP], setup, progress)
    return JudgedGrader(judged, annotations, info)


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
        info["unparsable_note"] = (f"{judged.unparsable} of {judged.distinct} judge answers could not be parsed ({config.judge_mode} mode); "
                                   "a query with one in its top 10 is left out of nDCG, CAS-gen and CAS-noun-vlm (t2i_judged_queries "
                                   "counts the queries judged in full), and a metric with none is not reported")
        warn(info["unparsable_note"])
    return judged, info


def per_query_graded(relevance, gen, noun) -> dict[str, np.ndarray]:
    """Per-query nDCG@10, CAS-gen@10 and CAS-noun@10 of the final lists (for ``vgrc
    report --bootstrap`` and per-category breakdowns); their means are the run's metrics."""
    return {"ndcg@10": ndcg_per_query(relevance, TOP), "cas_gen@10": np.asarray(gen)[:, :TOP].mean(1),
            "cas_noun@10": np.asarray(noun)[:, :TOP].mean(1)}
