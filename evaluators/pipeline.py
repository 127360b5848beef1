"""``vgrc eval``: the whole evaluation pipeline as one importable function.

:func:`run_eval` loads the dataset, encodes it with caching, runs the first stage and the
reranker, computes the metrics at both stages, and writes the output folder:

``metrics.json``
    flat name -> value (final ranking: ``t2i_R@1``…; first stage: ``stage1_t2i_R@1``…), plus
    ``config``.
``metrics.csv`` / ``metrics.md``
    the same metrics as a one-row table.
``per_query.parquet``
    ``query_id``, ``caption``, ``rank_stage1``, ``rank_final`` (0-based rank of the first
    relevant image in the full ranking; -1 when no relevant image is in the gallery),
    ``top1_stage1``, ``top1_final``, ``steered``.
``run.json``
    full config, package versions, git commit, seed, timings, encode statistics,
    skipped items, data partition, ridge/steering diagnostics.
``recall_curve.png``
    R@K for K = 1…k, before and after reranking.

The final ranking is the reranked shortlist followed by the stage-1 order beyond it, so a
query whose relevant image is not shortlisted keeps its stage-1 rank.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgrc.evaluators.dataset import read_manifest
from vgrc.evaluators.encoding import EncodingSetup
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage import RidgeMapper, Steering, check_steer_words, confusion_pairs, cosine_topk, normalize, parse_steer_pairs
from vgrc.evaluators.metrics import annotation_list_metrics, first_relevant_rank, recall_at_k
from vgrc.evaluators.ownership import check_run_folder, claim_run_folder
from vgrc.evaluators.rerank import CANDIDATE_OBJECT_RERANKERS, PER_OBJECT_RERANKERS, RERANKERS, ObjectTable, RerankContext, rerank, steer_objects
from vgrc.evaluators.registry import DEFAULT_TEMPLATES, STAGE1, TASKS, check_choice
from vgrc.evaluators.runs import Timer, plot_recall, write_metric_tables, write_run_json
from vgrc.evaluators.retrieval_data import RetrievalSet, load_retrieval, object_phrase, require_objects, vocabulary

__all__ = ["EvalConfig", "STAGE1", "TASKS", "DEFAULT_TEMPLATES", "list_stage1", "run_eval", "default_run_folder"]

TOP = 10  # list depth for nDCG / CAS
#: stages that read per-object query sets
PER_OBJECT_STAGE1 = ("objects-avg", "objects-steer-avg")
#: where per-object sets come from, said in every output
OBJECTS_NOTE = "per-object sets come from the dataset's annotations (an oracle, as in the paper §4.3 / App. A), not from a detector"


def list_stage1() -> list[str]:
    return list(STAGE1)


@dataclass
class EvalConfig:
    """All options of ``vgrc eval`` (see ``vgrc eval --help`` for their meaning).

    Names carry one meaning each: ``fgw_alpha`` is FGW's feature/structure trade-off,
    ``ridge_lambda`` the ridge mapper's L2 penalty, ``steer_alpha`` the steering strength.
    """

    data: str | None = None
    out: str | None = None
    model: str = "clip"
    pretrained: str | None = None
    stage1: str = "cosine"
    rerank: str = "none"
    k: int = 50
    fgw_alpha: float = 0.5
    solver: str = "cg"
    epsilon: float = 0.01
    tau: float = 0.05
    unmatched_cost: float = 1.0
    surplus_cost: float = 0.0
    split: str | None = None
    fit_split: str | None = None
    fit_fraction: float = 0.2
    ridge_lambda: float = 1.0
    steer: list[str] = field(default_factory=list)
    steer_alpha: float = 0.5
    steer_top: int = 3
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))
    limit: int | None = None
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 64
    precision: str = "fp32"
    cache_dir: str | None = None
    skip_bad: bool = False
    task: str = "retrieval"
    overwrite: bool = False

    def check(self) -> None:
        """Validate every option before any work or heavy import (``check_inputs`` style).

        Writes nothing. Model names are checked against open_clip's shipped configs without
        importing torch; the dataset's manifest is read; the output folder is checked.
        """
        self.check_options()
        if self.data is None:
            raise InvalidInputError("--data is required here (the CLI builds Synthetic Shapes when it is left out)")
        manifest = read_manifest(self.data)
        if self.split is not None and self.split not in manifest["splits"]:
            raise InvalidInputError(f"--split {self.split!r}: {self.data} has no such split; its splits: {', '.join(manifest['splits'])}")
        if self.fit_split is not None and self.fit_split not in manifest["splits"]:
            raise InvalidInputError(f"--fit-split {self.fit_split!r}: {self.data} has no such split; its splits: {', '.join(manifest['splits'])}")
        if self.out is None:
            self.out = str(default_run_folder(self, manifest))
        check_run_folder(self.out, self.overwrite)

    def check_options(self) -> None:
        """Every check that needs neither the dataset nor the output folder."""
        import math

        from vgrc.evaluators.encoders import PRECISIONS
        from vgrc.evaluators.model_refs import check_clip_model
        from vgrc.evaluators.solvers import list_fgw_solvers

        check_choice("--task", self.task, TASKS)
        check_choice("--stage1", self.stage1, STAGE1)
        check_choice("--rerank", self.rerank, RERANKERS)
        check_choice("--solver", self.solver, list_fgw_solvers())
        check_choice("--precision", self.precision, PRECISIONS)
        if self.task == "steering" and (self.stage1 != "cosine" or self.rerank != "none"):
            raise InvalidInputError("--task steering scores steered queries by cosine: use it without --stage1 / --rerank")
        if self.task == "itm" and (self.stage1 != "cosine" or self.rerank not in ("none", "hungarian", "fgw")):
            raise InvalidInputError(f"--task itm compares two captions per image by cosine, or by --rerank hungarian / fgw; not --stage1 {self.stage1} --rerank {self.rerank}")
        check_clip_model("--model", self.model, self.pretrained)
        dev = self.device
        if not (dev == "cpu" or dev == "mps" or dev == "cuda" or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise InvalidInputError(f"--device {dev!r}: expected cpu, cuda, cuda:N or mps")
        for option, value in (("--k", self.k), ("--batch-size", self.batch_size)):
            if value < 1:
                raise InvalidInputError(f"{option} must be ≥ 1, got {value}")
        if self.limit is not None and self.limit < 1:
            raise InvalidInputError(f"--limit must be ≥ 1, got {self.limit}")
        for option, value, lo, hi in (("--fgw-alpha", self.fgw_alpha, 0.0, 1.0), ("--fit-fraction", self.fit_fraction, 0.0, 0.999999)):
            if not (math.isfinite(value) and lo <= value <= hi):
                raise InvalidInputError(f"{option} must be in [{lo:g}, {1 if hi < 1 else hi:g}{')' if hi < 1 else ']'}, got {value}")
        for option, value in (("--tau", self.tau), ("--epsilon", self.epsilon)):
            if not (math.isfinite(value) and value > 0):
                raise InvalidInputError(f"{option} must be > 0, got {value}")
        for option, value in (("--unmatched-cost", self.unmatched_cost), ("--surplus-cost", self.surplus_cost), ("--ridge-lambda", self.ridge_lambda), ("--steer-alpha", self.steer_alpha)):
            if not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(f"{option} must be ≥ 0, got {value}")
        if self.steer_top < 0:
            raise InvalidInputError(f"--steer-top must be ≥ 0, got {self.steer_top}")
        if not self.templates or any("{}" not in t for t in self.templates):
            bad = next((t for t in self.templates if "{}" not in t), "")
            raise InvalidInputError(f"--template {bad!r} has no '{{}}' where the object phrase goes, e.g. 'a photo of a {{}}.'")
        if self.stage1 in ("ridge", "ridge+steer") and self.fit_fraction <= 0 and not self.fit_split:
            raise InvalidInputError(f"--stage1 {self.stage1} needs fit rows: give --fit-split or a --fit-fraction > 0")
        if self.steer and self.stage1 != "ridge+steer":
            raise InvalidInputError("--steer applies to --stage1 ridge+steer only")
        parse_steer_pairs(self.steer)
        if self.cache_dir is not None and Path(self.cache_dir).exists() and not Path(self.cache_dir).is_dir():
            raise InvalidInputError(f"--cache-dir {self.cache_dir} exists and is not a folder")

    def run_name(self, dataset: str) -> str:
        """``shapes-clip-cosine-fgw``: names the default output folder."""
        model = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.model)
        if self.task == "steering":
            return f"{dataset}-{model}-steering-a{self.steer_alpha:g}"
        if self.task == "itm":
            return f"{dataset}-{model}-itm-{self.rerank}"
        return f"{dataset}-{model}-{self.stage1.replace('+', '-')}-{self.rerank}"


def default_run_folder(config: EvalConfig, manifest: dict) -> Path:
    """``results/<dataset>-<model>-<stage1>-<rerank>`` in the working folder."""
    return Path("results") / config.run_name(str(manifest.get("dataset") or Path(config.data).name))


def run_eval(config: EvalConfig, *, on_progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run one evaluation and write its output folder; return the metrics dict.

    ``on_progress(phase, done, total)`` reports long phases (encoding, reranking). Nothing
    is written before every check has passed and the metrics exist: the output folder is
    created (or a previous run in it cleared, with ``overwrite``) only at the end.
    """
    config.check()
    timer = Timer()
    progress = on_progress or (lambda phase, done, total: None)
    out = Path(config.out)
    if config.task == "steering":
        from vgrc.evaluators.steering_eval import run_steering_eval

        return run_steering_eval(config, out, progress, timer)
    if config.task == "itm":
        from vgrc.evaluators.itm_eval import run_itm_eval

        return run_itm_eval(config, out, progress, timer)

    with timer("load_data"):
        ev, fit, data_info = load_retrieval(
            config.data, config.split, fit_split=config.fit_split, fit_fraction=config.fit_fraction, limit=config.limit, seed=config.seed
        )
        _require_annotations(config, ev)
        if config.steer:
            check_steer_words(parse_steer_pairs(config.steer), vocabulary(ev, fit))
    setup = EncodingSetup(config)
    needs_fit = config.stage1 in ("ridge", "ridge+steer")  # ridge+steer's default pairs come from the fit rows too

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
        """Templated, averaged, normalised phrase embeddings (paper Eq. 3/7)."""
        if not phrases:
            return np.zeros((0, 1), np.float32)
        filled = [t.format(ph) for ph in phrases for t in config.templates]
        emb = embed_texts(filled).reshape(len(phrases), len(config.templates), -1)
        return normalize(normalize(emb).mean(axis=1))

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
            directions = _object_directions(unique, ev.query_objects, phrase_emb, embed_phrases)

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
                pairs = _confusion_steering_pairs(config, fit, fit_text, fit_img, diagnostics)
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
        topk, topk_scores, rank1 = cosine_topk(queries, ev_img, depth, ev.relevant)
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
            reranked = rerank(config.rerank, ctx, shortlist, short_scores)
            progress("reranking", 1, 1)
        final_lists = np.concatenate([reranked, topk[:, k:]], axis=1)
        pos = first_relevant_rank(reranked, ev.relevant)
        rank_final = np.where(pos >= 0, pos, rank1)

    # ---------------------------------------------------------------- metrics
    with timer("metrics"):
        graded = any(ev.query_objects)
        metrics: dict[str, float] = {}
        metrics.update(recall_at_k(rank_final))
        if graded:
            metrics.update(annotation_list_metrics(final_lists[:, :TOP], ev.query_objects, ev.objects, "t2i"))
        metrics[f"t2i_shortlist_recall@{config.k}"] = float(np.mean((rank1 >= 0) & (rank1 < k)))
        metrics.update({f"stage1_{n}": v for n, v in recall_at_k(rank1).items()})
        if graded:
            metrics.update({f"stage1_{n}": v for n, v in annotation_list_metrics(topk[:, :TOP], ev.query_objects, ev.objects, "t2i").items()})
        if "ridge" in diagnostics:
            metrics["ridge_distance_reduction"] = diagnostics["ridge"]["reduction"]
        metrics["n_queries"] = float(len(ev))
        metrics["n_gallery"] = float(len(ev_img))
        notes = _notes(config, data_info, graded, per_object)

    # ---------------------------------------------------------------- outputs
    with timer("write"):
        claim_run_folder(out, config.overwrite)
        _write_outputs(out, config, metrics, ev, rank1, rank_final, topk, final_lists, steered, k, notes, data_info.get("dataset"))
        write_run_json(out, config, setup, data_info, {"images": bad, "query_ids": skipped_ids}, {**diagnostics, "notes": notes}, timer)
    return metrics


def _require_annotations(config: EvalConfig, ev: RetrievalSet) -> None:
    """Per-object stages and rerankers need objects on every row; say which row lacks them."""
    if config.stage1 in PER_OBJECT_STAGE1:
        require_objects(ev, "query", f"--stage1 {config.stage1}")
    if config.rerank in PER_OBJECT_RERANKERS:
        require_objects(ev, "query", f"--rerank {config.rerank}")
    if config.stage1 == "ridge+steer":
        require_objects(ev, "query", "--stage1 ridge+steer (it steers queries by the words of their objects)")
    if any(ev.query_objects):  # graded metrics: all queries or none
        require_objects(ev, "query", "the graded metrics (nDCG@K, CAS@K)")


def _object_directions(unique: list[str], query_objects, phrase_emb: np.ndarray, embed_phrases) -> np.ndarray:
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


def _confusion_steering_pairs(config: EvalConfig, fit: RetrievalSet, fit_text: np.ndarray, fit_img: np.ndarray, diagnostics: dict) -> list[tuple[str, str]]:
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


def _notes(config: EvalConfig, data_info: dict, graded: bool, per_object: bool) -> list[str]:
    """Plain-language statements every output carries (metrics.md, run.json, report)."""
    notes = []
    if per_object or graded:
        notes.append(f"{OBJECTS_NOTE}: {data_info.get('objects_source')}")
    if not graded:
        notes.append("nDCG@K and CAS@K are not reported: the dataset's rows carry no `objects` annotations to grade relevance")
    else:
        notes.append("nDCG@K and CAS@K use symbolic relevance from the annotations (App. H), not a VLM judge")
    if config.rerank == "hungarian":
        rec = data_info.get("recommended") or {}
        notes.append(f"hungarian: unmatched query object costs {config.unmatched_cost:g}, surplus candidate object {config.surplus_cost:g}")
        if rec and (rec.get("surplus_cost"), rec.get("unmatched_cost")) != (config.surplus_cost, config.unmatched_cost):
            notes.append(f"this dataset recommends --unmatched-cost {rec.get('unmatched_cost'):g} --surplus-cost {rec.get('surplus_cost'):g}")
    if config.rerank == "fgw" and config.solver == "sinkhorn":
        notes.append(f"fgw linear step: Sinkhorn, epsilon {config.epsilon:g} (the paper's variant)")
    if config.stage1 == "objects-steer-avg" or config.rerank.startswith("steer-"):
        notes.append(f"per-object steering (App. J): each object moved along normalize(e(phrase) − e(noun)) with strength {config.steer_alpha:g}")
    return notes


def _write_outputs(out: Path, config: EvalConfig, metrics: dict, ev: RetrievalSet, rank1, rank_final, topk, final_lists, steered, k, notes, dataset) -> None:
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
            "steered": steered,
        }
    )
    tmp = out / f"per_query.parquet.vgrc-tmp-{os.getpid()}"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, out / "per_query.parquet")
    plot_recall(out / "recall_curve.png", rank1, rank_final, max(k, 10), f"{config.model}: {config.stage1} + {config.rerank}")
