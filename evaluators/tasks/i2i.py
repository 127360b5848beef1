"""``--task i2i``: image queries (issue 26, *Beyond Vision*'s retrieval stage).

Queries are the images of the query split (``--split``, else the manifest's
``query_split`` — ``vgrc build-copies``: ``copies`` — else the main split); the gallery is
the images of ``--gallery-split`` (else the manifest's ``gallery_split``, else the query
split itself). A query's relevant gallery images are those whose ``id`` is its
``query_of`` (a copy's source), or, for rows without ``query_of``, its own ``id``.

Stage 1 ranks the gallery by the cosine of the image embeddings (cached as every image
embedding); ``--rerank orb|sift|orb+sift`` reorders the top ``--k`` by geometric
verification. Metrics: ``i2i_R@K`` and binary-relevance ``i2i_nDCG@K`` of the final lists,
the same with ``stage1_``, and the shortlist recall; ``per_query.parquet`` as for text
queries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgrc.evaluators.dataset import read_manifest, read_split
from vgrc.evaluators.encoders.setup import EncodingSetup
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage.search import cosine_topk
from vgrc.evaluators.metrics import first_relevant_rank, ndcg_at_k, recall_at_k
from vgrc.evaluators.rerankers.context import order_by_scores
from vgrc.evaluators.retrieval_data import default_split
from vgrc.evaluators.runs import RunResult, write_run

__all__ = ["run_i2i", "ImagePairs", "load_i2i"]

TOP = 10


@dataclass
class ImageSet:
    ids: list[str]
    paths: list[Path]
    query_of: list[str | None] = field(default_factory=list)


@dataclass
class ImagePairs:
    """What an image-pair reranker reads: both sides' paths and content keys, the cache
    folder, progress; :meth:`features` computes (or reads) keypoints in threads."""

    query_paths: list
    gallery_paths: list
    query_keys: list
    gallery_keys: list
    cache_root: Path
    progress: object
    computed: dict = field(default_factory=dict)

    def features(self, store, gallery_rows) -> dict:
        from concurrent.futures import ThreadPoolExecutor

        jobs = [(("q", q), k, p) for q, (k, p) in enumerate(zip(self.query_keys, self.query_paths))]
        jobs += [(("g", int(g)), self.gallery_keys[g], self.gallery_paths[g]) for g in gallery_rows]
        out = {}
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for done, (name, found) in enumerate(pool.map(lambda job: (job[0], store.get(job[1], job[2])), jobs), 1):
                out[name] = found
                if done % 64 == 0 or done == len(jobs):
                    self.progress(f"keypoints ({store.method})", done, len(jobs))
        return out


def _rows(data: Path, split: str) -> ImageSet:
    rows = read_split(data, split)
    base = data / split
    paths = [Path(r["file_name"]) if Path(r["file_name"]).is_absolute() else base / r["file_name"] for r in rows]
    return ImageSet([str(r["id"]) for r in rows], paths, [r.get("query_of") for r in rows])


def _query_files(where: Path) -> ImageSet:
    """``--queries``: every image under a folder, or the paths listed in a .txt file (one
    per line, relative to the file); ids are the file names' stems."""
    from vgrc.evaluators.user_files import IMAGE_EXTENSIONS

    if where.is_dir():
        paths = sorted(p for p in where.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    elif where.is_file() and where.suffix.lower() == ".txt":
        lines = [line.strip() for line in where.read_text(encoding="utf-8").splitlines() if line.strip()]
        paths = [Path(line) if Path(line).is_absolute() else where.parent / line for line in lines]
        missing = next((p for p in paths if not p.is_file()), None)
        if missing is not None:
            raise InvalidInputError(f"--queries {where}: {missing} is not a file")
    else:
        raise InvalidInputError(f"--queries {where}: expected a folder of images or a .txt file listing image paths")
    if not paths:
        raise InvalidInputError(f"--queries {where}: no images found")
    return ImageSet([p.stem for p in paths], paths, [None] * len(paths))


def load_i2i(config) -> tuple[ImageSet, ImageSet, list[np.ndarray], dict]:
    """Queries, gallery, each query's relevant gallery indices, and what was read."""
    data = Path(config.data)
    manifest = read_manifest(data)
    q_split = config.split or manifest.get("query_split") or default_split(manifest)
    g_split = config.gallery_split or manifest.get("gallery_split") or q_split
    for option, split in (("--split", q_split), ("--gallery-split", g_split)):
        if split not in manifest["splits"]:
            raise InvalidInputError(f"{option} {split!r}: {data} has no such split; its splits: {', '.join(manifest['splits'])}")
    queries, gallery = (_rows(data, q_split) if not config.queries else _query_files(Path(config.queries))), _rows(data, g_split)
    if config.queries:
        q_split = str(config.queries)
    if config.limit is not None and config.limit < len(queries.ids):
        import random

        keep = sorted(random.Random(config.seed).sample(range(len(queries.ids)), config.limit))
        queries = ImageSet([queries.ids[i] for i in keep], [queries.paths[i] for i in keep], [queries.query_of[i] for i in keep])
    where = {gid: i for i, gid in enumerate(gallery.ids)}
    relevant = [np.array([where[t]] if (t := (qo if qo is not None else qid)) in where else [], np.int64)
                for qid, qo in zip(queries.ids, queries.query_of)]
    if not any(len(r) for r in relevant):
        raise InvalidInputError(f"no query of split {q_split!r} has a relevant image in split {g_split!r} (by query_of, else by id)")
    info = {"dataset": manifest.get("dataset"), "query_split": q_split, "gallery_split": g_split, "queries": len(queries.ids),
            "gallery": len(gallery.ids), "relevance": "query_of" if any(q is not None for q in queries.query_of) else "same id"}
    return queries, gallery, relevant, info


def run_i2i(config, out: Path, progress, timer) -> dict:
    """Run the image-to-image evaluation and write ``out``; return the metrics."""
    with timer("load_data"):
        queries, gallery, relevant, info = load_i2i(config)
    setup = EncodingSetup(config)
    with timer("encode_images"):
        emb, failed, bad = setup.encode_images([*queries.paths, *gallery.paths], progress)
    if failed.any():
        raise InvalidInputError(f"--task i2i: {int(failed.sum())} image(s) could not be read (first: {bad[0] if bad else '?'})")
    q_emb, g_emb = emb[: len(queries.ids)], emb[len(queries.ids) :]
    stage1, diagnostics = config.component("stage1"), {}
    if stage1.own_gallery:  # --stage1 ensemble: every model's embeddings of both sides, fused exactly
        q_emb, g_emb, diagnostics["ensemble"] = _ensemble(config, queries, gallery, q_emb, g_emb, progress, timer)
    depth, k = max(config.k, TOP), min(config.k, len(gallery.ids))
    with timer("stage1"):
        topk, scores, rank1 = cosine_topk(q_emb, g_emb, min(depth, len(gallery.ids)), relevant, device=config.device,
                                          on_progress=lambda d, t: progress("stage-1 search", d, t))
    reranker = config.component("reranker")
    with timer("rerank"):
        shortlist = topk[:, :k]
        if reranker.reorders:
            from vgrc.evaluators.objects.regions import image_keys

            ctx = ImagePairs(queries.paths, gallery.paths, image_keys(setup, queries.paths), image_keys(setup, gallery.paths), setup.cache_root, progress)
            shortlist = order_by_scores(shortlist, reranker.score(ctx, shortlist, scores[:, :k], config.options_of("reranker")))
            diagnostics["keypoints_computed"] = ctx.computed
    final = np.concatenate([shortlist, topk[:, k:]], axis=1)
    pos = first_relevant_rank(shortlist, relevant)
    rank_final = np.where(pos >= 0, pos, rank1)
    metrics = _metrics(final, topk, rank1, rank_final, relevant, k, config.k, len(gallery.ids))
    result = RunResult(metrics=metrics, per_query=_frame(queries, gallery, rank1, rank_final, topk, final), title=f"{info['dataset']} · "
                       f"{config.model} · image queries · {config.stage1} + {config.rerank} (k={config.k})", notes=_notes(config, info),
                       lead={"stage1": config.stage1, "rerank": config.rerank}, dataset=info["dataset"], data_info=info, setup=setup,
                       diagnostics=diagnostics, recall=(rank1, rank_final, max(k, TOP), f"{config.model}: image queries, cosine + {config.rerank}"))
    return write_run(out, config, result, timer)


def _ensemble(config, queries: ImageSet, gallery: ImageSet, q_emb, g_emb, progress, timer):
    """Query and gallery vectors of the ensemble's z-score fusion (given or equal weights)."""
    from vgrc.evaluators.first_stage.components import ensemble_models, images_with
    from vgrc.evaluators.first_stage.ensemble import fusion_vectors, parse_weights

    options = config.options_of("stage1")
    models = ensemble_models(options)
    weights = parse_weights(options.weights, 1 + len(models)) or (1.0,) * (1 + len(models))
    qs, gs = [q_emb], [g_emb]
    with timer("encode_images"):
        for m in models:
            emb = images_with(config, m, [*queries.paths, *gallery.paths], progress)[1]
            qs.append(emb[: len(queries.ids)])
            gs.append(emb[len(queries.ids) :])
    q, g = fusion_vectors(qs, gs, weights)
    return q, g, {"models": [config.model, *models], "weights": list(weights), "normalisation": "z-score per query and model"}


def _metrics(final, topk, rank1, rank_final, relevant, k: int, k_option: int, n_gallery: int) -> dict:
    def binary(lists):
        return np.stack([np.isin(row, rel) for row, rel in zip(lists[:, :TOP], relevant)]).astype(float)

    metrics = {**recall_at_k(rank_final, prefix="i2i"), **ndcg_at_k(binary(final), prefix="i2i")}
    metrics[f"i2i_shortlist_recall@{k_option}"] = float(np.mean((rank1 >= 0) & (rank1 < k)))
    metrics.update({f"stage1_{n}": v for n, v in recall_at_k(rank1, prefix="i2i").items()})
    metrics.update({f"stage1_{n}": v for n, v in ndcg_at_k(binary(topk), prefix="i2i").items()})
    metrics["n_queries"], metrics["n_gallery"] = float(len(relevant)), float(n_gallery)
    return metrics


def _notes(config, info: dict) -> list[str]:
    notes = [f"image queries: split {info['query_split']!r} ({info['queries']:,}) against split {info['gallery_split']!r} ({info['gallery']:,}); "
             f"a query's relevant image is the gallery row named by its {info['relevance']}"]
    if config.rerank != "none":
        notes.append(f"--rerank {config.rerank}: the shortlist ordered by RANSAC inliers of ratio-test keypoint matches (Beyond Vision's "
                     "geometric re-ranking; OpenCV)" + (f", plus {config.geo_weight:g} × the stage-1 cosine" if config.geo_weight else ""))
    return notes


def _frame(queries: ImageSet, gallery: ImageSet, rank1, rank_final, topk, final):
    import pandas as pd

    return pd.DataFrame({
        "query_id": queries.ids, "query_of": queries.query_of, "rank_stage1": rank1, "rank_final": rank_final,
        "top1_stage1": [gallery.ids[i] for i in topk[:, 0]], "top1_final": [gallery.ids[i] for i in final[:, 0]],
        "top10_stage1": [[gallery.ids[i] for i in row] for row in topk[:, :TOP]],
        "top10_final": [[gallery.ids[i] for i in row] for row in final[:, :TOP]],
    })
