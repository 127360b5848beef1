r"""``vgrc eval --task itm``: SugarCrepe's own image–text matching protocol (issue 10).

For each row (an image with a positive ``caption`` and a hard ``negative_caption``), the
match is correct when the positive caption scores STRICTLY above the negative one (a tie
is wrong).

- Stage 1 (``stage1_`` keys, or the final keys with ``--rerank none``): cosine of the
  image embedding with each caption's embedding.
- ``--rerank hungarian|fgw``: the reranker alone scores each caption's object set
  (``caption_objects`` / ``negative_caption_objects``) against the image's object set
  (``objects``), score = minus the cost, as in retrieval.

Metrics: ``itm_acc_<category>`` per category, ``itm_acc_add`` / ``_replace`` / ``_swap``
(mean of the group's category accuracies, as SugarCrepe reports them) and
``itm_acc_macro`` (mean over categories); ``itm_ties`` counts tied pairs (coarse
Hungarian costs tie often, §4.4). Rows without a ``category`` form one category ``all``.

Also vgrc's own image → text direction (the paper reports none; its Table 4 is SugarCrepe text → image retrieval), by cosine: ``i2t_R@1/5/10`` with every
distinct image as a query and ALL captions, positives and hard negatives, as the
gallery; an image's relevant captions are the positive captions of its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vgrc.evaluators.dataset import read_manifest, read_split
from vgrc.evaluators.encoders.setup import EncodingSetup
from vgrc.evaluators.errors import DatasetFolderError, InvalidInputError
from vgrc.evaluators.first_stage.search import cosine_topk
from vgrc.evaluators.metrics import recall_at_k
from vgrc.evaluators.rerankers.context import ObjectTable, RerankContext, rerank_scores_sharded
from vgrc.evaluators.retrieval_data import default_split, object_phrase
from vgrc.evaluators.runs import RunResult, skipped_images_note, write_run


__all__ = ["itm_accuracy", "run_itm_eval", "GROUPS"]

#: SugarCrepe's three groups of categories
GROUPS = {"add": ("add_att", "add_obj"), "replace": ("replace_att", "replace_obj", "replace_rel"), "swap": ("swap_att", "swap_obj")}


def itm_accuracy(positive: np.ndarray, negative: np.ndarray, categories: Sequence[str], prefix: str = "") -> dict[str, float]:
    """Accuracy (positive strictly above negative) per category, per group, macro; ties."""
    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    correct = positive > negative
    cats = np.asarray(categories)
    out: dict[str, float] = {}
    per = {}
    for c in dict.fromkeys(categories):
        per[c] = float(correct[cats == c].mean())
        out[f"{prefix}itm_acc_{c}"] = per[c]
    for group, members in GROUPS.items():
        present = [per[c] for c in members if c in per]
        if present:
            out[f"{prefix}itm_acc_{group}"] = float(np.mean(present))
    out[f"{prefix}itm_acc_macro"] = float(np.mean(list(per.values())))
    out[f"{prefix}itm_ties"] = float(np.sum(positive == negative))
    return out


def i2t_recall(image_keys: Sequence[str], images: np.ndarray, positive: np.ndarray, negative: np.ndarray, ks=(1, 5, 10)) -> dict[str, float]:
    """i2t R@K: each distinct image (by ``image_keys``) ranks all 2N captions by cosine;
    hit when one of its own positive captions is in the top K. Ties rank by caption order."""

    first = {}
    for i, key in enumerate(image_keys):
        first.setdefault(key, []).append(i)
    queries = np.stack([images[rows[0]] for rows in first.values()])
    gallery = np.concatenate([positive, negative])  # caption j < N is row j's positive
    relevant = [np.array(rows) for rows in first.values()]
    _, _, rank = cosine_topk(queries, gallery, max(ks), relevant)
    out = recall_at_k(rank, ks, prefix="i2t")
    out["i2t_n_images"] = float(len(queries))
    return out


def run_itm_eval(config, out: Path, progress, timer) -> dict:
    """Run the ITM evaluation (see the module documentation) and write ``out``."""
    import pandas as pd

    with timer("load_data"):
        data = Path(config.data)
        manifest = read_manifest(data)
        split = config.split or default_split(manifest)
        rows = read_split(data, split)
        missing = next((r for r in rows if not isinstance(r.get("negative_caption"), str)), None)
        if missing is not None:
            raise DatasetFolderError(
                f"row {missing.get('id')!r} of {data} has no negative_caption; --task itm needs positive/negative caption pairs "
                "(a dataset from `vgrc import sugarcrepe`)"
            )
        if config.limit is not None:
            rows = rows[: config.limit]
        base = data / split
        paths = [Path(r["file_name"]) if Path(r["file_name"]).is_absolute() else base / r["file_name"] for r in rows]
        categories = [str(r.get("category", "all")) for r in rows]
    setup = EncodingSetup(config)
    with timer("encode_images"):
        images, failed, bad = setup.encode_images(paths, progress)
    keep = np.flatnonzero(~failed)
    if keep.size == 0:
        raise InvalidInputError(f"no row is left: all {len(rows)} images were skipped (first: {bad[0] if bad else '?'})")
    rows, images, categories = [rows[i] for i in keep], images[keep], [categories[i] for i in keep]
    with timer("encode_texts"):
        pos = setup.encode_texts([r["caption"] for r in rows], progress)
        neg = setup.encode_texts([r["negative_caption"] for r in rows], progress)
    with timer("stage1"):
        s_pos, s_neg = (images * pos).sum(1), (images * neg).sum(1)
    f_pos, f_neg = s_pos, s_neg
    reranked = config.component("reranker").reorders
    if reranked:
        with timer("rerank"):
            f_pos, f_neg = _rerank_scores(config, rows, setup, progress)
    with timer("metrics"):
        metrics = itm_accuracy(f_pos, f_neg, categories)
        if reranked:
            metrics.update(itm_accuracy(s_pos, s_neg, categories, prefix="stage1_"))
        metrics.update(i2t_recall([str(paths[i]) for i in keep], images, pos, neg))
        metrics["n_pairs"] = float(len(rows))
    notes = ["ITM (SugarCrepe's protocol): correct when the positive caption scores strictly above the negative; ties count as wrong"]
    if reranked:
        notes.append(f"{config.rerank} scores each caption's object set against the image's objects ({manifest.get('objects_source', 'the annotations')})")
    if bad:
        notes.append(skipped_images_note(bad))
    frame = pd.DataFrame({
        "query_id": [str(r["id"]) for r in rows], "category": categories,
        "score_pos_stage1": s_pos, "score_neg_stage1": s_neg, "score_pos_final": f_pos, "score_neg_final": f_neg,
        "correct_stage1": s_pos > s_neg, "correct_final": np.asarray(f_pos) > np.asarray(f_neg),
    })
    data_info = {"dataset": manifest.get("dataset"), "split": split, "rows": len(rows), "objects_source": manifest.get("objects_source")}
    # under a launcher the ranks shared encoding and reranking; rank 0 alone writes the run
    return write_run(out, config, RunResult(
        metrics=metrics, per_query=frame, title=f"{manifest.get('dataset')} · {config.model} · ITM ({config.rerank})", notes=notes,
        lead={"task": "itm", "rerank": config.rerank}, dataset=manifest.get("dataset"), data_info=data_info, setup=setup, skipped={"images": bad}), timer)


def _rerank_scores(config, rows: list[dict], setup: EncodingSetup, progress) -> tuple[np.ndarray, np.ndarray]:
    """Minus the reranker's cost of (positive objects, image objects) and (negative objects, image objects)."""

    reranker = config.component("reranker")
    if not reranker.candidate_objects:
        raise InvalidInputError(f"--task itm reranks with a reranker that compares object sets (hungarian, fgw), not {config.rerank!r}")
    for key in ("caption_objects", "negative_caption_objects", "objects"):
        row = next((r for r in rows if not r.get(key)), None)
        if row is not None:
            raise InvalidInputError(f"row {row.get('id')!r} has no {key}, which --task itm --rerank {config.rerank} needs; rerun `vgrc import sugarcrepe` or use --rerank none")
    q_phr = [[object_phrase(o) for o in r["caption_objects"]] for r in rows] + [[object_phrase(o) for o in r["negative_caption_objects"]] for r in rows]
    g_phr = [[object_phrase(o) for o in r["objects"]] for r in rows]
    unique = sorted({p for rs in (q_phr, g_phr) for row in rs for p in row})
    phrases = setup.encode_phrases(unique, progress)
    index = {p: i for i, p in enumerate(unique)}
    n = len(rows)
    ctx = RerankContext(ObjectTable.build(q_phr, index, phrases), ObjectTable.build(g_phr, index, phrases), np.zeros((n, phrases.shape[1]), np.float32))
    shortlist = np.concatenate([np.arange(n), np.arange(n)])[:, None]  # each caption against its own image
    # by caption block under a launcher
    scores = rerank_scores_sharded(reranker, ctx, shortlist, np.zeros((2 * n, 1)), config.options_of("reranker"))[:, 0]
    return scores[:n], scores[n:]
