r"""``vgrc eval --task steering``: steering for concept control (paper §6.3, App. H, I).

For each row of the dataset's ``steering.jsonl`` (written by ``vgrc build-vg``):

.. math::

    q = e(\text{source\_query}),\quad
    d = \mathrm{normalize}\big(e(\text{target\_query}) - e(\text{source\_query})\big),\quad
    q' = \mathrm{normalize}(q + \alpha d)

and the gallery (every image of the dataset) is ranked by cosine similarity to ``q``
(stage 1: unsteered) and to ``q'`` (final: steered, α = ``--steer-alpha``).

Positives are synonym-aware: every image whose noun carries ANY word of the target pole
(App. F.1). Metrics (``stage1_`` prefix for the unsteered query):

- ``t2i_R@K`` — a positive is among the top K;
- ``t2i_nDCG@K`` — relevance 4 for a positive, 0 otherwise (App. H normalisation);
- ``t2i_CAS@10`` — share of the top 10 that carries the target concept: a positive
  (annotation-based concept attribution);
- ``t2i_source@10`` — share of the top 10 that carries only the source concept (a
  negative): steering should push it down.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgrc.evaluators.dataset import read_manifest
from vgrc.evaluators.encoders.setup import EncodingSetup
from vgrc.evaluators.errors import DatasetFolderError, InvalidInputError
from vgrc.evaluators.first_stage.search import cosine_topk, normalize
from vgrc.evaluators.judges.relevance import judge_identity, judge_pairs
from vgrc.evaluators.judges.vlm import QwenAppGJudge
from vgrc.evaluators.metrics import ndcg_at_k, recall_at_k
from vgrc.evaluators.retrieval_data import load_retrieval
from vgrc.evaluators.runs import RunResult, skipped_images_note, write_run
from vgrc.evaluators.sharding import rank_device


__all__ = ["run_steering_eval", "load_steering_rows", "prepare_steering", "steered_retrieval", "steering_metrics", "SteeringInputs"]

TOP = 10


def load_steering_rows(data: str | Path) -> list[dict]:
    """Rows of the dataset's steering file, checked for the fields the evaluation needs."""
    data = Path(data)
    manifest = read_manifest(data)
    name = manifest.get("steering")
    path = data / (name or "steering.jsonl")
    if not name or not path.is_file():
        raise DatasetFolderError(f"{data} has no steering.jsonl; --task steering needs a dataset built by `vgrc build-vg` or `vgrc build-nac`")
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetFolderError(f"{path}: cannot be read ({exc})") from exc
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetFolderError(f"{path}:{n}: not valid JSON ({exc.msg} at column {exc.colno}); the file is damaged or truncated: rebuild the dataset") from None
        if not isinstance(row, dict):
            raise DatasetFolderError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in ("id", "source_query", "target_query", "positives", "negatives") if k not in row]
        if missing:
            raise DatasetFolderError(f"{path}:{n}: missing field(s) {', '.join(missing)}")
        for key in ("positives", "negatives"):
            if not isinstance(row[key], list):
                raise DatasetFolderError(f"{path}:{n}: {key!r} must be a list of image ids")
        for key in ("source_query", "target_query"):
            if not isinstance(row[key], str):
                raise DatasetFolderError(f"{path}:{n}: {key!r} must be a string")
        rows.append(row)
    if not rows:
        # the builder recorded which of its options decides what qualifies (build-vg: --min-images; build-nac: --min-samples, --min-confidence)
        hint = manifest.get("steering_thresholds") or "lower thresholds"
        raise DatasetFolderError(f"{path} is empty: no contrast qualified when the dataset was built; rebuild it with {hint}")
    return rows


@dataclass
class SteeringInputs:
    """Everything a steering evaluation reads: the usable rows ``sel`` (a positive image is
    in the gallery), the gallery's image embeddings and the rows' source/target query
    embeddings, positives and negatives as gallery indices."""

    rows: list[dict]
    gallery: object
    data_info: dict
    setup: object
    images: np.ndarray
    source: np.ndarray
    target: np.ndarray
    positives: list[np.ndarray]
    negatives: list[np.ndarray]
    usable: np.ndarray
    sel: np.ndarray
    bad: list[str]


def prepare_steering(config, progress, timer=None) -> SteeringInputs:
    """Load the steering rows and the gallery, encode both through the embedding cache."""
    from contextlib import nullcontext

    span = timer or (lambda name: nullcontext())
    with span("load_data"):
        gallery, _, data_info = load_retrieval(config.data, config.split, fit_fraction=0.0, seed=config.seed, drop_uncaptioned=False)
        rows = load_steering_rows(config.data)
        if config.limit is not None:
            rows = rows[: config.limit]
    setup = EncodingSetup(config)
    with span("encode_images"):
        images, failed, bad = setup.encode_images(gallery.image_paths, progress)
    keep = np.flatnonzero(~failed)
    index = {gallery.ids[g]: k for k, g in enumerate(keep)}
    images = images[keep]
    with span("encode_texts"):
        texts = [t for r in rows for t in (r["source_query"], r["target_query"])]
        emb = setup.encode_texts(texts, progress)
    positives = [np.array([index[i] for i in r["positives"] if i in index], dtype=np.int64) for r in rows]
    negatives = [np.array([index[i] for i in r["negatives"] if i in index], dtype=np.int64) for r in rows]
    usable = np.array([p.size > 0 for p in positives])
    sel = np.flatnonzero(usable)
    if sel.size == 0:
        why = f"{len(bad)} of {len(gallery)} images were skipped" if bad else "their positives are not in the gallery"
        raise InvalidInputError(f"no steering row has a positive image left to retrieve ({why}); check the images or the dataset")
    kept_gallery = gallery.subset(keep) if len(keep) < len(gallery) else gallery
    return SteeringInputs(rows, kept_gallery, data_info, setup, images, emb[0::2], emb[1::2], positives, negatives, usable, sel, bad)


def steered_retrieval(inputs: SteeringInputs, steer_alpha: float, depth: int = TOP):
    """``(top, rank)`` of the usable rows' queries steered with strength ``steer_alpha``
    (0 = the unsteered source query)."""
    sel = inputs.sel
    if steer_alpha == 0:
        steered = inputs.source
    else:
        steered = normalize(inputs.source + steer_alpha * normalize(inputs.target - inputs.source))
    top, _, rank = cosine_topk(steered[sel], inputs.images, depth, [inputs.positives[i] for i in sel], device=inputs.setup.config.device)
    return top, rank


def steering_metrics(inputs: SteeringInputs, top: np.ndarray, rank: np.ndarray, prefix: str = "") -> dict[str, float]:
    """R@K, nDCG@K, CAS@10 and source@10 of the usable rows' ranked lists."""
    hit = np.array([np.isin(t[:TOP], inputs.positives[i]) for t, i in zip(top, inputs.sel)], dtype=float)
    src = np.array([np.isin(t[:TOP], inputs.negatives[i]) for t, i in zip(top, inputs.sel)], dtype=float)
    metrics = {prefix + k: v for k, v in recall_at_k(rank).items()}
    metrics.update({prefix + k: v for k, v in ndcg_at_k(4.0 * hit).items()})
    metrics[f"{prefix}t2i_CAS@{TOP}"] = float(hit.mean()) if len(hit) else 0.0
    metrics[f"{prefix}t2i_source@{TOP}"] = float(src.mean()) if len(src) else 0.0
    return metrics


def _judge_steering(config, inputs: SteeringInputs, lists: list[np.ndarray], progress):
    """App. H's steering CAS with App. G's attribute-noun judge: every (steered query,
    image) pair of the reported top-10 lists is asked whether the image shows the row's
    noun with its TARGET attribute (a steering row is a query whose one object is
    ``{noun, target attribute}``; the judge's QAS of the target query is asked too and kept
    in the store). Returns the judgements and their run record."""

    rows = [inputs.rows[i] for i in inputs.sel]
    captions = [r["target_query"] for r in rows]
    objects = [[{"noun": str(r.get("noun") or r["target_query"]), "attributes": [str((r.get("target") or [""])[0])]}] for r in rows]
    pairs = sorted({(q, int(g)) for top in lists for q, row in enumerate(top) for g in row})
    judge_id = judge_identity(config.judge_model, config.judge_mode)
    judged = judge_pairs(
        pairs, captions, objects, inputs.gallery.image_paths,
        judge_factory=lambda: QwenAppGJudge(config.judge_model, device=rank_device(config.device), batch_size=config.judge_batch_size),
        judge_id=judge_id, mode=config.judge_mode, store_root=inputs.setup.cache_root, batch_size=config.judge_batch_size,
        on_progress=lambda d, t: progress("judging", d, t),
    )
    info = {"judge_model": config.judge_model, "judge_id": judge_id, "mode": config.judge_mode, "pairs": len(pairs),
            "judgements": judged.distinct, "judgements_made": judged.made, "judgements_reused": judged.reused,
            "unparsable_answers": judged.unparsable}
    return judged, info


def steering_cas_vlm(judged, top: np.ndarray, prefix: str = "") -> dict[str, float]:
    """CAS-vlm@10: the attribute-noun judge's confidence, averaged over each query's top 10
    and over the queries whose ten answers all parsed (none: missing, not 0)."""
    _, _, noun = judged.matrices(top[:, :TOP], unparsable=np.nan)
    ok = ~np.isnan(noun).any(axis=1)
    return {f"{prefix}t2i_CAS-vlm@{TOP}": float(noun[ok].mean())} if ok.any() else {}


def run_steering_eval(config, out: Path, progress, timer) -> dict:
    """Run the steering evaluation (see the module documentation) and write ``out``."""
    judged_relevance = config.component("relevance").judged
    if judged_relevance:  # the judge's weights, before any encoding
        from vgrc.evaluators.encoders.model_refs import require_model

        require_model("--judge-model", config.judge_model, "transformers", "judge model",
                      "or pass a local folder: --judge-model PATH, or use --relevance symbolic")
    inputs = prepare_steering(config, progress, timer)
    rows, sel, setup, data_info, bad = inputs.rows, inputs.sel, inputs.setup, inputs.data_info, inputs.bad
    positives, usable, images = inputs.positives, inputs.usable, inputs.images
    with timer("retrieve"):
        top0, rank0 = steered_retrieval(inputs, 0.0)
        top1, rank1 = steered_retrieval(inputs, config.steer_alpha)

    with timer("metrics"):
        metrics: dict[str, float] = {}
        metrics.update(steering_metrics(inputs, top1, rank1))
        metrics.update(steering_metrics(inputs, top0, rank0, "stage1_"))
        metrics["steer_alpha"] = float(config.steer_alpha)
        metrics["n_queries"] = float(len(sel))
        metrics["n_gallery"] = float(len(images))
    diagnostics: dict = {}
    if judged_relevance:
        with timer("judge"):
            judged, diagnostics["vlm_relevance"] = _judge_steering(config, inputs, [top0[:, :TOP], top1[:, :TOP]], progress)
        metrics.update(steering_cas_vlm(judged, top1))
        metrics.update(steering_cas_vlm(judged, top0, "stage1_"))

    import pandas as pd

    notes = ["relevance is annotation-based: positives carry the target concept (synonym-aware, App. F.1); not VLM-judged",
             f"steering: q' = normalize(q + {config.steer_alpha:g}·d), d = normalize(e(target_query) − e(source_query))"]
    if bad:
        notes.append(skipped_images_note(bad))
    if judged_relevance:
        notes.append(f"CAS-vlm@10 (App. H, steering): App. G's attribute–noun judge ({config.judge_model}, {config.judge_mode}) asked "
                     "whether each top-10 image shows the row's noun with its target attribute, confidence averaged; "
                     "R@K, nDCG and CAS@10 stay annotation-based")
        if diagnostics["vlm_relevance"]["unparsable_answers"]:
            notes.append(f"{diagnostics['vlm_relevance']['unparsable_answers']} judge answers could not be parsed; their queries are left out of CAS-vlm")
    frame = pd.DataFrame(
        {
            "query_id": [rows[i]["id"] for i in sel],
            "source_query": [rows[i]["source_query"] for i in sel],
            "target_query": [rows[i]["target_query"] for i in sel],
            "n_positives": [int(positives[i].size) for i in sel],
            "rank_stage1": rank0,
            "rank_final": rank1,
            "categories": [[str(rows[i]["category"])] if rows[i].get("category") else [] for i in sel],
        }
    )
    skipped = {"images": bad, "steering_rows_without_positives": [rows[i]["id"] for i in np.flatnonzero(~usable)]}
    # under a launcher the ranks shared the encoding; rank 0 alone writes the run
    return write_run(out, config, RunResult(
        metrics=metrics, per_query=frame, title=f"{config.model} · steering (steer_alpha={config.steer_alpha:g})", notes=notes,
        lead={"task": "steering"}, dataset=data_info.get("dataset"), data_info={**data_info, "steering_rows": len(rows)}, setup=setup,
        skipped=skipped, diagnostics=diagnostics, recall=(rank0, rank1, TOP, f"{config.model}: steering α={config.steer_alpha:g}")), timer)
