r"""App. I (Figs. 5–6): retrieval metrics against the steering strength α, and a grid of
what the top 5 look like at three strengths.

"We vary α and capture the retrieval metrics on three datasets: NAC, Synthetic Shapes and
Visual Genome."

Two modes, chosen by the dataset:

- **steering datasets** (a ``steering.jsonl``: NAC, Visual Genome) — exactly ``vgrc eval
  --task steering`` at every α: :math:`q' = \mathrm{normalize}(q + \alpha d)`,
  :math:`d = \mathrm{normalize}(e(\text{target}) - e(\text{source}))`; R@1/5/10, CAS@10
  (share of the top 10 carrying the target concept) and source@10 (share carrying only
  the source concept).
- **retrieval datasets** (Synthetic Shapes) — ``vgrc eval --stage1 ridge+steer`` at every
  α: the ridge mapper and the steering pairs (``--steer`` or App. E's confusions) fitted
  once on the held-out fit rows. R@1/5/10 over all queries and over the steered ones,
  CAS@10 = CAS-noun@10 of the top 10 (annotation-graded), source@10 = for the steered
  queries, the share of the top 10 showing a pair's *source* word that the query does
  not name (the confusion steering pushes away).

α = 0 is the unsteered baseline in both modes. The grid: the chosen query's top 5 at the
smallest, middle and largest α, relevant images framed in green.

Outputs: ``alpha_sweep.csv``, ``alpha_sweep.png``, ``alpha_grid.png``, ``alpha_sweep.md``,
``run.json``.
"""

from __future__ import annotations

import time

import numpy as np

from vgrc.evaluators.dataset import read_manifest
from vgrc.evaluators.diagnostics._common import markdown_table, new_figure, parse_grid, prepare
from vgrc.evaluators.runs import DiagnosticOutput
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage.ridge import RidgeMapper
from vgrc.evaluators.first_stage.steering import Steering, check_steer_words, confusion_steering_pairs, parse_steer_pairs
from vgrc.evaluators.metrics import annotation_list_metrics, recall_at_k
from vgrc.evaluators.retrieval_data import vocabulary
from vgrc.evaluators.tasks.steering import load_steering_rows, prepare_steering, steered_retrieval, steering_metrics


__all__ = ["run_alpha_sweep", "check_options", "FILES"]

FILES = ("alpha_sweep.csv", "alpha_sweep.png", "alpha_grid.png", "alpha_sweep.md", "run.json")
TOP = 10
GRID = 5


def check_options(config, *, steer_alphas="0,0.25,0.5,0.75,1,1.5,2", query=None) -> dict:
    grid = steer_alphas if isinstance(steer_alphas, list) else parse_grid("--steer-alpha", steer_alphas, low=0.0)
    return {"steer_alphas": grid, "query": query}


def _has_steering(config) -> bool:

    return bool(read_manifest(config.data).get("steering"))


def run_alpha_sweep(config, *, steer_alphas="0,0.25,0.5,0.75,1,1.5,2", query=None, progress=None) -> dict:
    opts = check_options(config, steer_alphas=steer_alphas, query=query)
    progress = progress or (lambda phase, done, total: None)
    if _has_steering(config):  # (prepare() is not used: the steering task's own loader)
        return _steering_mode(config, opts["steer_alphas"], opts["query"], progress)
    return _retrieval_mode(config, opts["steer_alphas"], opts["query"], progress)


def _steering_mode(config, alphas, query, progress) -> dict:


    started = time.perf_counter()
    if query is not None:  # before any encoding
        known = [str(r["id"]) for r in load_steering_rows(config.data)[: config.limit]]
        if query not in known:
            raise InvalidInputError(f"--query {query!r} is not a steering row id of {config.data} (first ids: {', '.join(known[:5])})")
    inputs = prepare_steering(config, progress)
    ids = [str(inputs.rows[i]["id"]) for i in inputs.sel]
    if query is not None and query not in ids:
        raise InvalidInputError(f"--query {query!r}: that steering row has no positive image left in the gallery; choose another")
    chosen = ids.index(query) if query is not None else 0
    sweep, grids = [], {}
    for n, alpha in enumerate(alphas):
        progress("steering α sweep", n, len(alphas))
        top, rank = steered_retrieval(inputs, alpha)
        m = steering_metrics(inputs, top, rank)
        sweep.append({"steer_alpha": alpha, **{key.removeprefix("t2i_"): v for key, v in m.items()}})
        grids[alpha] = top[chosen, :GRID]
    progress("steering α sweep", len(alphas), len(alphas))
    row = inputs.rows[inputs.sel[chosen]]
    positives = set(inputs.positives[inputs.sel[chosen]].tolist())
    title = f"{row['source_query']} → {row['target_query']}"
    return _write(config, "steering", sweep, inputs.data_info, inputs.setup, len(inputs.sel), grids, inputs.gallery.image_paths,
                  positives, str(row["id"]), title, {"steering_rows": len(inputs.rows)}, started)


def _retrieval_mode(config, alphas, query, progress) -> dict:

    if config.fit_fraction <= 0 and config.fit_split is None:
        raise InvalidInputError("--fit-fraction must be > 0 (or give --fit-split): the ridge mapper and the steering pairs are fitted on held-out rows")
    if query is not None:  # before any encoding
        from vgrc.evaluators.retrieval_data import load_retrieval

        rows = load_retrieval(config.data, config.split, fit_split=config.fit_split, fit_fraction=config.fit_fraction, limit=config.limit, seed=config.seed)[0]
        if query not in rows.ids:
            raise InvalidInputError(f"--query {query!r} is not an evaluated row id (first ids: {', '.join(rows.ids[:5])}; fit rows are held out)")
    prep = prepare(config, progress, objects=True, fit=True, needed_by="the steering sweep (it steers queries by the words of their objects)")
    ev, fit = prep.ev, prep.fit
    if config.steer:
        check_steer_words(parse_steer_pairs(config.steer), vocabulary(ev, fit))
    fit_img, failed, bad = prep.setup.encode_images(fit.image_paths, progress)
    if failed.any():
        raise InvalidInputError(f"{int(failed.sum())} fit images could not be read (first: {bad[0]})")
    fit_text = prep.embed_texts(fit.captions)
    mapper = RidgeMapper(ridge_lambda=config.ridge_lambda).fit(fit_text, fit_img)
    mapped = mapper.transform(prep.texts)
    details: dict = {}
    pairs = parse_steer_pairs(config.steer) or confusion_steering_pairs(config.steer_top, fit, fit_text, fit_img, details)
    if not pairs:
        raise InvalidInputError("no steering pair: the fit rows show no single-object confusion; pass --steer SOURCE:TARGET")
    sweep, grids, steered_any = [], {}, None
    for n, alpha in enumerate(alphas):
        progress("steering α sweep", n, len(alphas))
        queries, steered = Steering(pairs, alpha).fit(prep.embed_phrases, mapper).transform(mapped, ev.query_objects)
        steered_any = steered if steered_any is None else steered_any | steered
        top, _, rank = prep.cosine(TOP, queries)
        graded = annotation_list_metrics(top, ev.query_objects, ev.objects)
        rows = np.flatnonzero(steered)
        sweep.append({"steer_alpha": alpha, **{key.removeprefix("t2i_"): v for key, v in recall_at_k(rank).items()},
                      "R@10_steered": float(np.mean(rank[rows] < TOP)) if rows.size else float("nan"),
                      "CAS@10": graded["t2i_CAS-noun@10"], "source@10": _source_share(ev, top, rows, pairs), "steered": int(rows.size)})
        grids[alpha] = top
    progress("steering α sweep", len(alphas), len(alphas))
    if query is None:
        first = np.flatnonzero(steered_any) if steered_any is not None else []
        chosen = int(first[0]) if len(first) else 0
    else:
        chosen = ev.ids.index(query)
    grids = {a: t[chosen, :GRID] for a, t in grids.items()}
    return _write(config, "ridge+steer", sweep, prep.info, prep.setup, len(ev), grids, ev.image_paths, set(ev.relevant[chosen].tolist()),
                  ev.ids[chosen], ev.captions[chosen], {"pairs": [list(p) for p in pairs], **details, "ridge": mapper.distance_reduction(prep.texts, prep.images)}, prep.t0)


def _source_share(ev, top: np.ndarray, rows: np.ndarray, pairs) -> float:
    """Steered queries: share of their top 10 showing a pair's source word the query lacks."""
    if rows.size == 0:
        return float("nan")
    hits = []
    for q in rows:
        words = {o["noun"] for o in ev.query_objects[q]} | {a for o in ev.query_objects[q] for a in o.get("attributes", [])}
        sources = {s for s, t in pairs if t in words and s not in words}
        for g in top[q, :TOP]:
            image_words = {o["noun"] for o in ev.objects[g]} | {a for o in ev.objects[g] for a in o.get("attributes", [])}
            hits.append(bool(sources & image_words))
    return float(np.mean(hits))


def _write(config, mode, sweep, info, setup, n_queries, grids, image_paths, positives, query_id, title, extra, started) -> dict:
    from dataclasses import asdict

    summary = {"mode": mode, "queries": n_queries, "sweep": sweep, "grid_query": query_id, **extra}
    out = DiagnosticOutput(config.out, "alpha-sweep", FILES, config, config.overwrite)
    cols = [c for c in ("R@1", "R@5", "R@10", "R@10_steered", "CAS@10", "source@10", "nDCG@10") if c in sweep[0]]
    out.csv("alpha_sweep.csv", ["steer_alpha", *cols], [[r["steer_alpha"], *(r[c] for c in cols)] for r in sweep])
    fig, ax = new_figure(figsize=(5.5, 3.8), dpi=120)
    xs = [r["steer_alpha"] for r in sweep]
    for c in cols:
        if c != "nDCG@10":
            ax.plot(xs, [r[c] for r in sweep], marker="o", label=c)
    ax.set(xlabel="steering strength α", ylabel="score", title=f"{config.model}: {info.get('dataset')} ({mode})", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)
    out.figure("alpha_sweep.png", fig)
    _grid(out, grids, image_paths, positives, f"query {query_id}: {title}")
    out.text("alpha_sweep.md", "\n\n".join([
        f"# Steering strength sweep (App. I): {info.get('dataset')} · {config.model} · {mode}",
        f"{n_queries:,} queries; α = 0 is the unsteered baseline.",
        markdown_table(["α", *cols], [[f"{r['steer_alpha']:g}", *(r[c] for c in cols)] for r in sweep]),
        f"Qualitative grid (`alpha_grid.png`): query `{query_id}` — {title}",
    ]))
    out.finish(summary, None, started=started, data=info, encode={n: asdict(s) for n, s in setup.stats.items()})
    return summary


def _grid(out: DiagnosticOutput, grids: dict, image_paths, positives: set, title: str) -> None:
    from PIL import Image

    alphas = sorted(grids)
    shown = [alphas[0], alphas[len(alphas) // 2], alphas[-1]] if len(alphas) >= 3 else alphas
    shown = list(dict.fromkeys(shown))
    fig, axes = new_figure(len(shown), GRID, figsize=(1.6 * GRID, 1.8 * len(shown) + 0.4), dpi=110, squeeze=False)
    for r, alpha in enumerate(shown):
        for c in range(GRID):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(grids[alpha]):
                g = int(grids[alpha][c])
                try:
                    with Image.open(image_paths[g]) as im:
                        ax.imshow(im.convert("RGB"))
                except OSError:
                    ax.text(0.5, 0.5, "unreadable", ha="center", va="center")
                colour = "green" if g in positives else "lightgray"
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(3 if g in positives else 1)
                ax.set_xlabel("✓ correct" if g in positives else f"#{c + 1}", fontsize=7, color="green" if g in positives else "gray")
            if c == 0:
                ax.set_ylabel(f"α={alpha:g}")
    fig.suptitle(title[:110], fontsize=8)
    fig.text(0.5, 0.005, "top results per steering strength α; green frame and ✓: a correct image for this query", ha="center", fontsize=7)
    out.figure("alpha_grid.png", fig)
