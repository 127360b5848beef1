r"""App. D (Figs. 2–3): Hungarian vs FGW on the queries where they disagree, across the
shortlist size k.

"we analyze Synthetic Shapes queries for which Hungarian reranking achieves R@1 while FGW
does not. For this disagreement subset, we sweep only the cosine neighborhood size k,
while keeping the FGW tradeoff parameter fixed to the best value from the main FGW run."

1. The main run: the cosine top-``--k`` reranked by Hungarian and by FGW (``--fgw-alpha``),
   the same solvers, costs and per-object sets as ``vgrc eval``.
2. The disagreement subset D: queries whose ground truth is at rank 0 under Hungarian and
   not under FGW (the reverse subset's size is reported too).
3. For each k of ``--k-values``: both rerankers on the top-k of the same cosine ranking;
   the *recovery rate* of each is the share of D whose ground truth is at rank 0, and the
   per-query ground-truth rank under each is recorded (beyond the shortlist: its cosine
   rank, as in ``vgrc eval``).

A (query, candidate) score does not depend on the rest of the shortlist, so every pair of
the largest shortlist is solved once and every smaller k reorders a prefix of it
(:func:`~vgrc.evaluators.rerankers.context.rerank_scores`); this equals re-running each k (tested).

Outputs: ``k_sweep.csv`` (k, recovery rates, R@1 over all queries), ``trajectories.csv``
(query, k, ground-truth rank under each), ``k_sweep.png`` (Fig. 2),
``trajectories.png`` (Fig. 3), ``k_sweep.md``, ``run.json``.
"""

from __future__ import annotations

import numpy as np

from vgrc.evaluators.diagnostics._common import markdown_table, new_figure, parse_grid, prepare
from vgrc.evaluators.runs import DiagnosticOutput
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.metrics import first_relevant_rank
from vgrc.evaluators.rerankers.context import order_by_scores


__all__ = ["run_k_sweep", "check_options", "ground_truth_ranks", "disagreement_sweep", "FILES"]

FILES = ("k_sweep.csv", "trajectories.csv", "k_sweep.png", "trajectories.png", "k_sweep.md", "run.json")


#: App. D fixes FGW's α "to the best value from the main FGW run": the grid it is chosen from
ALPHA_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


def check_options(config, *, k_values="5,10,20,30,40,50,75,100", trajectories: int = 8, best_alpha: bool = False) -> dict:

    if config.k < 1:
        raise InvalidInputError(f"--k must be ≥ 1, got {config.k}")
    if trajectories < 0:
        raise InvalidInputError(f"--trajectories must be ≥ 0, got {trajectories}")
    ks = k_values if isinstance(k_values, list) else parse_grid("--k-values", k_values, low=1, integer=True)
    return {"k_values": ks, "trajectories": trajectories, "best_alpha": best_alpha}


def ground_truth_ranks(topk: np.ndarray, scores: np.ndarray, k: int, relevant, rank1: np.ndarray) -> np.ndarray:
    """Ground-truth rank after reranking the top-``k`` prefix by ``scores`` (Q, ≥k);
    queries whose ground truth is outside the prefix keep their cosine rank."""

    pos = first_relevant_rank(order_by_scores(topk[:, :k], scores[:, :k]), relevant)
    return np.where(pos >= 0, pos, rank1)


def disagreement_sweep(topk, rank1, relevant, main_k: int, ks, H_main, F_main, sweep_scores) -> dict:
    """The core of App. D on score matrices.

    ``H_main`` / ``F_main`` (Q, main_k): Hungarian / FGW scores of every query's top
    ``main_k``; ``sweep_scores(D) -> (HD, FD)``: their scores over the whole ``topk``
    (len(D), kmax) for the subset ``D``. Returns the subset, recovery rates per k and the
    per-query trajectories ``(query index, k, hungarian rank, fgw rank)``.
    """
    h_main = ground_truth_ranks(topk, H_main, main_k, relevant, rank1)
    f_main = ground_truth_ranks(topk, F_main, main_k, relevant, rank1)
    D = np.flatnonzero((h_main == 0) & (f_main != 0))
    rows, traj = [], []
    if D.size:
        HD, FD = sweep_scores(D)
        sub_top, sub_rel, sub_rank1 = topk[D], [relevant[q] for q in D], rank1[D]
        for k in ks:
            h = ground_truth_ranks(sub_top, HD, k, sub_rel, sub_rank1)
            f = ground_truth_ranks(sub_top, FD, k, sub_rel, sub_rank1)
            rows.append({"k": k, "hungarian_recovery": float(np.mean(h == 0)), "fgw_recovery": float(np.mean(f == 0)),
                         "in_shortlist": float(np.mean(sub_rank1 < k))})
            traj += [(int(q), k, int(hr), int(fr)) for q, hr, fr in zip(D, h, f)]
    else:
        rows = [{"k": k, "hungarian_recovery": float("nan"), "fgw_recovery": float("nan"), "in_shortlist": float("nan")} for k in ks]
    return {"subset": D, "sweep": rows, "trajectories": traj, "hungarian_main": h_main, "fgw_main": f_main,
            "fgw_only_r1": int(np.sum((f_main == 0) & (h_main != 0)))}


def run_k_sweep(config, *, k_values="5,10,20,30,40,50,75,100", trajectories: int = 8, best_alpha: bool = False, progress=None) -> dict:
    opts = check_options(config, k_values=k_values, trajectories=trajectories, best_alpha=best_alpha)
    progress = progress or (lambda phase, done, total: None)
    prep = prepare(config, progress, needed_by="the k sweep")
    n_gallery = len(prep.images)
    ks = sorted({min(k, n_gallery) for k in opts["k_values"]})
    main_k = min(config.k, n_gallery)
    kmax = max(ks + [main_k])
    topk, cos_scores, rank1 = prep.cosine(kmax)
    relevant = prep.ev.relevant
    # the main run: every query, shortlist --k; FGW's α given, or App. D's: the main run's best R@1 over ALPHA_GRID
    alphas = ALPHA_GRID if opts["best_alpha"] else (config.fgw_alpha,)
    progress("main run (hungarian, fgw)", 0, 1 + len(alphas))
    H = prep.scores("hungarian", topk[:, :main_k], cos_scores[:, :main_k])
    runs = []
    for i, alpha in enumerate(alphas, 2):
        scores = prep.scores("fgw", topk[:, :main_k], cos_scores[:, :main_k], fgw_alpha=alpha)
        runs.append((float(np.mean(ground_truth_ranks(topk, scores, main_k, relevant, rank1) == 0)), -alpha, alpha, scores))
        progress("main run (hungarian, fgw)", i, 1 + len(alphas))
    _, _, alpha, F = max(runs, key=lambda r: (r[0], r[1]))  # ties: the smaller α
    alpha_from = f"the main FGW run's best R@1 over α ∈ {{{', '.join(f'{a:g}' for a in ALPHA_GRID)}}} (App. D)" if opts["best_alpha"] else "given"

    def sweep_scores(D):  # the disagreement subset only; every candidate of the largest shortlist solved once
        progress("k sweep (disagreement subset)", 0, 2)
        HD = prep.scores("hungarian", topk[D], cos_scores[D], rows=D)
        progress("k sweep (disagreement subset)", 1, 2)
        FD = prep.scores("fgw", topk[D], cos_scores[D], rows=D, fgw_alpha=alpha)
        progress("k sweep (disagreement subset)", 2, 2)
        return HD, FD

    result = disagreement_sweep(topk, rank1, relevant, main_k, ks, H, F, sweep_scores)
    D, rows = result["subset"], result["sweep"]
    h_main, f_main, reverse = result["hungarian_main"], result["fgw_main"], result["fgw_only_r1"]
    traj = [(prep.ev.ids[q], k, hr, fr) for q, k, hr, fr in result["trajectories"]]
    drawn = [prep.ev.ids[q] for q in np.random.default_rng(config.seed).permutation(D)[: opts["trajectories"]]] if D.size else []
    summary = {"queries": len(prep.ev), "k": main_k, "fgw_alpha": alpha, "fgw_alpha_from": alpha_from, "disagreements": int(D.size),
               "fgw_only_r1": reverse, "hungarian_R@1": float(np.mean(h_main == 0)), "fgw_R@1": float(np.mean(f_main == 0)),
               "sweep": rows, "trajectory_queries": drawn}

    out = DiagnosticOutput(config.out, "k-sweep", FILES, config, config.overwrite)
    out.csv("k_sweep.csv", ["k", "hungarian_recovery", "fgw_recovery", "ground_truth_in_shortlist"],
            [[r["k"], r["hungarian_recovery"], r["fgw_recovery"], r["in_shortlist"]] for r in rows])
    out.csv("trajectories.csv", ["query_id", "k", "hungarian_rank", "fgw_rank"], traj)
    none = (f"no query disagrees: at k={main_k} every query that Hungarian ranks first FGW ranks first too, "
            "so there is nothing to sweep")
    fig, ax = new_figure(figsize=(5.5, 3.6), dpi=120)
    if D.size:
        ax.plot([r["k"] for r in rows], [r["hungarian_recovery"] for r in rows], marker="o", label="Hungarian")
        ax.plot([r["k"] for r in rows], [r["fgw_recovery"] for r in rows], marker="s", label=f"FGW (α={alpha:g})")
        ax.legend()
    else:  # an empty plot would show an axis of -0.04…0.04 and no line: say why instead
        ax.text(0.5, 0.5, none.replace(": ", ":\n", 1), ha="center", va="center", wrap=True, fontsize=9, transform=ax.transAxes)
    ax.set(xlabel="cosine shortlist size k", ylabel="recovery rate (GT at rank 0)", ylim=(-0.02, 1.02),
           title=f"{config.model}: {D.size} disagreement queries")
    out.figure("k_sweep.png", fig)
    fig, ax = new_figure(figsize=(5.5, 3.6), dpi=120)
    for qid in drawn:
        pts = [(k, fr) for q, k, _, fr in traj if q == qid]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=str(qid)[:18])
    ax.set(xlabel="cosine shortlist size k", ylabel="ground-truth rank under FGW", title="per-query trajectories")
    if drawn:
        ax.legend(fontsize=6)
    out.figure("trajectories.png", fig)
    out.text("k_sweep.md", "\n\n".join([
        f"# Hungarian vs FGW across k (App. D): {prep.info.get('dataset')} · {config.model} · FGW α={alpha:g} ({alpha_from})",
        f"Main run at k={main_k}: Hungarian R@1 {summary['hungarian_R@1']:.3f}, FGW R@1 {summary['fgw_R@1']:.3f}. "
        f"**{D.size}** of {len(prep.ev):,} queries are at rank 0 under Hungarian and not under FGW "
        f"({reverse} the other way round).",
        markdown_table(["k", "Hungarian recovery", "FGW recovery", "GT in the shortlist"],
                       [[r["k"], r["hungarian_recovery"], r["fgw_recovery"], r["in_shortlist"]] for r in rows]) if D.size else none + ".",
        "Per-query ground-truth ranks for every k: `trajectories.csv`; drawn in `trajectories.png`.",
    ]))
    out.finish(summary, prep)
    return summary
