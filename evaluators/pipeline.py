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

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vgrc.evaluators import __version__
from vgrc.evaluators.dataset import atomic_write_bytes, atomic_write_text
from vgrc.evaluators.embedding_cache import EmbeddingCache, EncodeStats, content_key, default_cache_dir, encode_cached
from vgrc.evaluators.encoders import BadImageError, ClipEncoder, resolve_model
from vgrc.evaluators.errors import InvalidInputError, OutputError
from vgrc.evaluators.first_stage import RidgeMapper, Steering, confusion_pairs, cosine_topk, normalize, parse_steer_pairs
from vgrc.evaluators.metrics import cas_at_k, ndcg_at_k, recall_at_k
from vgrc.evaluators.rerank import RERANKERS, ObjectTable, RerankContext, rerank
from vgrc.evaluators.retrieval_data import RetrievalSet, load_retrieval, object_phrase, object_tuples
from vgrc.evaluators.solvers import list_fgw_solvers

__all__ = ["EvalConfig", "EncodingSetup", "STAGE1", "TASKS", "list_stage1", "plot_recall", "run_eval", "write_run_json"]

#: first stages; "objects-avg" is App. J's merge of per-object embeddings by average
STAGE1 = ("cosine", "ridge", "ridge+steer", "objects-avg")
#: "retrieval": captions as queries (paper §6.1, App. J); "steering": steering.jsonl rows (App. H, I)
TASKS = ("retrieval", "steering")
DEFAULT_TEMPLATES = ("a photo of a {}.", "a {}.", "an image of a {}.")
TOP = 10  # list depth for nDCG / CAS


def list_stage1() -> list[str]:
    return list(STAGE1)


@dataclass
class EvalConfig:
    """All options of ``vgrc eval`` (see ``vgrc eval --help`` for their meaning)."""

    data: str
    out: str
    model: str = "clip"
    pretrained: str | None = None
    stage1: str = "cosine"
    rerank: str = "none"
    k: int = 50
    alpha: float = 0.5
    solver: str = "cg"
    tau: float = 0.05
    split: str | None = None
    fit_split: str | None = None
    fit_fraction: float = 0.2
    ridge_alpha: float = 1.0
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

    def check(self) -> None:
        """Validate every option before any work is done (``check_inputs`` style)."""
        if self.task not in TASKS:
            raise InvalidInputError(f"unknown --task {self.task!r}; valid: {', '.join(TASKS)}")
        if self.task == "steering" and (self.stage1 != "cosine" or self.rerank != "none"):
            raise InvalidInputError("--task steering scores steered queries by cosine: use it without --stage1 / --rerank")
        if self.stage1 not in STAGE1:
            raise InvalidInputError(f"unknown --stage1 {self.stage1!r}; valid: {', '.join(STAGE1)}")
        if self.rerank not in RERANKERS:
            raise InvalidInputError(f"unknown --rerank {self.rerank!r}; valid: {', '.join(RERANKERS)}")
        if self.solver not in list_fgw_solvers():
            raise InvalidInputError(f"unknown --solver {self.solver!r}; valid: {', '.join(list_fgw_solvers())}")
        if self.k < 1:
            raise InvalidInputError(f"--k must be ≥ 1, got {self.k}")
        if not 0.0 <= self.alpha <= 1.0:
            raise InvalidInputError(f"--alpha must be in [0, 1], got {self.alpha}")
        if self.tau <= 0:
            raise InvalidInputError(f"--tau must be > 0, got {self.tau}")
        if not self.templates or any("{}" not in t for t in self.templates):
            raise InvalidInputError("every --template must contain '{}' where the object phrase goes, e.g. 'a photo of a {}.'")
        if self.stage1 in ("ridge", "ridge+steer") and self.fit_fraction <= 0 and not self.fit_split:
            raise InvalidInputError(f"--stage1 {self.stage1} needs fit rows: give --fit-split or a --fit-fraction > 0")
        if self.steer and self.stage1 != "ridge+steer":
            raise InvalidInputError("--steer applies to --stage1 ridge+steer only")
        if self.steer_top < 0:
            raise InvalidInputError(f"--steer-top must be ≥ 0, got {self.steer_top}")
        parse_steer_pairs(self.steer)


class _Timer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Span:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[name] = timer.seconds.get(name, 0.0) + time.perf_counter() - self.t0

        return _Span()


def _read_images(paths: Sequence[Path], skip_bad: bool) -> tuple[list[bytes | None], list[str]]:
    data, bad = [], []
    for p in paths:
        try:
            data.append(Path(p).read_bytes())
        except OSError as exc:
            if not skip_bad:
                raise BadImageError(str(p), f"cannot read image {p}: {exc.strerror or exc}; pass --skip-bad to skip it") from exc
            data.append(None)
            bad.append(str(p))
    return data, bad


def _encode_images_tolerant(encoder: ClipEncoder, items: list[tuple[str, bytes]], skip_bad: bool) -> np.ndarray:
    try:
        return encoder.encode_image_bytes(items)
    except BadImageError:
        if not skip_bad:
            raise
    out = []
    for item in items:  # find the damaged ones; they come back as NaN rows
        try:
            out.append(encoder.encode_image_bytes([item])[0])
        except BadImageError:
            out.append(np.full(encoder.dim, np.nan, np.float32))
    return np.stack(out)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "vgrc": __version__}
    for pkg in ("torch", "open_clip_torch", "numpy", "numba", "pot", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _lists_metrics(lists: np.ndarray, ev: RetrievalSet, prefix: str) -> dict[str, float]:
    """nDCG@K and CAS@K from the top-10 lists, using the object annotations.

    Per-row annotation forms are built once; the per-pair values equal
    :func:`~vgrc.evaluators.metrics.symbolic_relevance`, ``concept_coverage`` and
    ``object_binding`` (tested against them).
    """
    if not any(ev.objects):
        return {}
    tuples = [object_tuples(objs) for objs in ev.objects]
    sizes = [sum(t.values()) for t in tuples]
    tsets = [set(t) for t in tuples]
    concepts = [{o["noun"] for o in objs} | {a for o in objs for a in o.get("attributes", [])} for objs in ev.objects]
    rel = np.zeros(lists.shape)
    gen = np.zeros(lists.shape)
    noun = np.zeros(lists.shape)
    for q, row in enumerate(lists):
        if not sizes[q]:
            continue
        for j, g in enumerate(row):
            rel[q, j] = 4.0 * sum((tuples[q] & tuples[g]).values()) / sizes[q]
            gen[q, j] = len(concepts[q] & concepts[g]) / len(concepts[q])
            noun[q, j] = len(tsets[q] & tsets[g]) / len(tsets[q])
    out = ndcg_at_k(rel, prefix=prefix)
    out.update(cas_at_k(gen, noun, prefix=prefix))
    return out


def plot_recall(path: Path, stage1_rank: np.ndarray, final_rank: np.ndarray, k: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = np.arange(1, k + 1)
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    for ranks, label in ((stage1_rank, "stage 1"), (final_rank, "final")):
        ax.plot(ks, [np.mean((ranks >= 0) & (ranks < kk)) for kk in ks], label=label)
    ax.set(xlabel="K", ylabel="t2i R@K", title=title, ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


class EncodingSetup:
    """The encoder with its two embedding caches, and encoding with statistics."""

    def __init__(self, config: EvalConfig):
        self.config = config
        self.spec = resolve_model(config.model, config.pretrained, seed=config.seed)
        self.encoder = ClipEncoder(self.spec, device=config.device, precision=config.precision, batch_size=config.batch_size)
        self.cache_root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        self.key = self.encoder.cache_key
        self.image_cache = EmbeddingCache(self.cache_root, f"{self.key}-image")
        self.text_cache = EmbeddingCache(self.cache_root, f"{self.key}-text")
        self.stats = {"images": EncodeStats(), "texts": EncodeStats()}

    def encode_images(self, paths: Sequence[Path], progress) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Embeddings (NaN rows for skipped images), the skipped mask, the skipped paths."""
        skip_bad = self.config.skip_bad
        data, bad = _read_images(paths, skip_bad)
        keys = [content_key(d) if d is not None else f"missing:{p}" for d, p in zip(data, paths)]
        items = [(str(p), d) for p, d in zip(paths, data)]
        encoder = self.encoder

        def encode_items(batch):
            good = [it for it in batch if it[1] is not None]
            emb = _encode_images_tolerant(encoder, good, skip_bad) if good else np.zeros((0, 1), np.float32)
            rows, j = [], 0
            for it in batch:
                if it[1] is None:
                    rows.append(None)
                else:
                    rows.append(emb[j])
                    j += 1
            dim = emb.shape[1] if len(emb) else encoder.load().dim
            return np.stack([r if r is not None else np.full(dim, np.nan, np.float32) for r in rows])

        emb, st = encode_cached(keys, lambda i: items[i], encode_items, self.image_cache, chunk=max(256, self.config.batch_size * 4), on_progress=lambda d, t: progress("encoding images", d, t))
        self.stats["images"] += st
        failed = ~np.isfinite(emb).all(axis=1)
        return emb, failed, sorted(set(bad) | {str(paths[i]) for i in np.flatnonzero(failed)})

    def encode_texts(self, texts: list[str], progress) -> np.ndarray:
        emb, st = encode_cached([content_key(t) for t in texts], lambda i: texts[i], self.encoder.encode_texts, self.text_cache, chunk=1024, on_progress=lambda d, t: progress("encoding texts", d, t))
        self.stats["texts"] += st
        return emb


def run_eval(config: EvalConfig, *, on_progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run one evaluation and write its output folder; return the metrics dict.

    ``on_progress(phase, done, total)`` reports long phases (encoding, reranking).
    """
    config.check()
    timer = _Timer()
    progress = on_progress or (lambda phase, done, total: None)
    out = Path(config.out)
    check_output_folder(out)
    if config.task == "steering":
        from vgrc.evaluators.steering_eval import run_steering_eval

        return run_steering_eval(config, out, progress, timer)

    with timer("load_data"):
        ev, fit, data_info = load_retrieval(
            config.data, config.split, fit_split=config.fit_split, fit_fraction=config.fit_fraction, limit=config.limit, seed=config.seed
        )
    setup = EncodingSetup(config)
    needs_fit = config.stage1 in ("ridge", "ridge+steer")

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
        raise InvalidInputError("no evaluable rows are left (every image was skipped)")

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

    with timer("encode_texts"):
        q_text = embed_texts(ev.captions)
        ev_phrases = [[object_phrase(o) for o in objs] for objs in ev.objects]
        unique = sorted({ph for row in ev_phrases for ph in row})
        phrase_emb = embed_phrases(unique)
        phrase_index = {ph: i for i, ph in enumerate(unique)}

    # ---------------------------------------------------------------- stage 1
    diagnostics: dict = {}
    steered = np.zeros(len(ev), dtype=bool)
    with timer("stage1"):
        queries = q_text
        mapper = None
        if needs_fit:
            fit_text = embed_texts(fit.captions)
            mapper = RidgeMapper(alpha=config.ridge_alpha).fit(fit_text, fit_img)
            queries = mapper.transform(q_text)
            diagnostics["ridge"] = {"fit_rows": len(fit), **mapper.distance_reduction(q_text, ev_img)}
        if config.stage1 == "ridge+steer":
            pairs = parse_steer_pairs(config.steer)
            if not pairs and config.steer_top > 0:  # derive from the fit split's confusions
                top1 = cosine_topk(mapper.transform(fit_text), fit_img, 1, fit.relevant)[0][:, 0]
                wrong = [i for i in range(len(fit)) if top1[i] not in fit.relevant[i]]
                found = confusion_pairs([fit.objects[i] for i in wrong], [fit.objects[top1[i]] for i in wrong], config.steer_top)
                pairs = [(s, t) for s, t, _ in found]
                diagnostics["confusions"] = [{"source": s, "target": t, "count": c} for s, t, c in found]
            steering = Steering(pairs, config.steer_alpha).fit(embed_phrases, mapper)
            queries, steered = steering.transform(queries, ev.objects)
            diagnostics["steering"] = {"pairs": [list(p) for p in pairs], "alpha": config.steer_alpha, "queries_steered": int(steered.sum())}
        elif config.stage1 == "objects-avg":
            table = ObjectTable.build(ev_phrases, phrase_index, phrase_emb)
            queries = normalize((table.emb * (table.weight > 0)[..., None]).sum(1))
        depth = max(config.k, TOP)
        topk, topk_scores, rank1 = cosine_topk(queries, ev_img, depth, ev.relevant)
        k = min(config.k, len(ev))
        shortlist, short_scores = topk[:, :k], topk_scores[:, :k]

    # ---------------------------------------------------------------- stage 2
    with timer("rerank"):
        q_table = ObjectTable.build(ev_phrases, phrase_index, phrase_emb)
        g_table = ObjectTable.build(ev_phrases, phrase_index, phrase_emb)  # the gallery is the same rows
        mapped = q_table.emb if mapper is None else mapper.transform(q_table.emb.reshape(-1, q_table.emb.shape[-1])).reshape(q_table.emb.shape)
        ctx = RerankContext(q_table, g_table, ev_img, mapped * (q_table.weight > 0)[..., None], alpha=config.alpha, solver=config.solver, tau=config.tau)
        progress("reranking", 0, 1)
        reranked = rerank(config.rerank, ctx, shortlist, short_scores)
        progress("reranking", 1, 1)
        final_lists = np.concatenate([reranked, topk[:, k:]], axis=1)
        pos = np.full(len(ev), -1, dtype=np.int64)
        for q in range(len(ev)):
            hits = np.flatnonzero(np.isin(reranked[q], ev.relevant[q]))
            pos[q] = hits[0] if hits.size else -1
        rank_final = np.where(pos >= 0, pos, rank1)

    # ---------------------------------------------------------------- metrics
    with timer("metrics"):
        metrics: dict[str, float] = {}
        metrics.update(recall_at_k(rank_final))
        metrics.update(_lists_metrics(final_lists[:, :TOP], ev, "t2i"))
        metrics[f"t2i_shortlist_recall@{k}"] = float(np.mean((rank1 >= 0) & (rank1 < k)))
        metrics.update({f"stage1_{n}": v for n, v in recall_at_k(rank1).items()})
        metrics.update({f"stage1_{n}": v for n, v in _lists_metrics(topk[:, :TOP], ev, "t2i").items()})
        if "ridge" in diagnostics:
            metrics["ridge_distance_reduction"] = diagnostics["ridge"]["reduction"]
        metrics["n_queries"] = float(len(ev))
        metrics["n_gallery"] = float(len(ev_img))

    # ---------------------------------------------------------------- outputs
    with timer("write"):
        make_output_folder(out)
        _write_outputs(out, config, metrics, ev, rank1, rank_final, topk, final_lists, steered, k)
        write_run_json(out, config, setup, data_info, {"images": bad, "query_ids": skipped_ids}, diagnostics, timer)
    return metrics


def check_output_folder(out: Path) -> None:
    """Fail early when ``out`` cannot be created or written; create nothing yet, so a run
    that fails on its inputs leaves no empty folder behind."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} exists and is not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OutputError(f"cannot create --out {out}: {parent} is not a writable folder")


def make_output_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create --out {out}: {exc.strerror or exc}") from exc


def write_run_json(out: Path, config: EvalConfig, setup: "EncodingSetup", data_info: dict, skipped: dict, diagnostics: dict, timer: _Timer) -> None:
    run = {
        "config": asdict(config),
        "model": {"spec": asdict(setup.spec), "cache_key": setup.key, "cache_dir": str(setup.cache_root)},
        "data": data_info,
        "versions": _versions(),
        "git_commit": _git_commit(),
        "seed": config.seed,
        "encode": {name: asdict(s) for name, s in setup.stats.items()},
        "skipped": skipped,
        "diagnostics": diagnostics,
        "timings_seconds": timer.seconds,
    }
    atomic_write_text(out / "run.json", json.dumps(run, indent=2, default=str) + "\n")


def _fmt(v: float) -> str:
    return f"{v:.4f}" if isinstance(v, float) and not float(v).is_integer() else f"{v:g}"


def _write_outputs(out: Path, config: EvalConfig, metrics: dict, ev: RetrievalSet, rank1, rank_final, topk, final_lists, steered, k) -> None:
    import pandas as pd

    cfg = {"data": config.data, "model": config.model, "stage1": config.stage1, "rerank": config.rerank, "k": config.k, "alpha": config.alpha, "solver": config.solver, "seed": config.seed}
    atomic_write_text(out / "metrics.json", json.dumps({**metrics, "config": cfg}, indent=2) + "\n")
    names = list(metrics)
    atomic_write_text(out / "metrics.csv", ",".join(["stage1", "rerank", *names]) + "\n" + ",".join([config.stage1, config.rerank, *(repr(float(metrics[n])) for n in names)]) + "\n")
    rows = "\n".join(f"| {n} | {_fmt(metrics[n])} |" for n in names)
    atomic_write_text(out / "metrics.md", f"# {config.model} · {config.stage1} + {config.rerank} (k={config.k})\n\n| metric | value |\n|---|---|\n{rows}\n")
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
