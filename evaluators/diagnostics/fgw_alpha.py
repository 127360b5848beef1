r"""§4.4's trade-off: FGW reranking across α, from object features only to structure only.

.. math::

    \mathrm{FGW}_\alpha = \min_T (1-\alpha)\langle M, T\rangle + \alpha \sum (C^q_{ik} - C^c_{jl})^2 T_{ij}T_{kl}

"The Wasserstein term penalizes plans that assign dissimilar objects to each other. The
Gromov–Wasserstein term compares the internal geometry of the two object sets." The two
ends fail in opposite ways, and the sweep shows both:

- α = 0 — features only: a soft matching of object phrases, blind to how the objects
  relate (the structural channel of §4.2 is off);
- α = 1 — structure only: blind to *which* objects are matched; any candidate whose
  object set is isometric to the query's scores the same, so top-1 ties multiply.
  ``tied_top1`` = the share of queries whose best FGW score is shared by another
  candidate (within 1e-9) measures it.

For each α: the cosine shortlist (``--k``) reranked by FGW (same solver, costs and
per-object sets as ``vgrc eval --rerank fgw``), R@1/5/10, nDCG@10 and CAS-noun@10 of the
final top 10; cosine and Hungarian are listed beside it as references.

Outputs: ``fgw_alpha.csv``, ``fgw_alpha.md``, ``fgw_alpha.png``, ``run.json``.
"""

from __future__ import annotations

import numpy as np

from vgrc.evaluators.diagnostics._common import markdown_table, new_figure, parse_grid, prepare, prepare_rows
from vgrc.evaluators.runs import DiagnosticOutput
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.metrics import annotation_list_metrics, first_relevant_rank, recall_at_k
from vgrc.evaluators.rerankers.context import order_by_scores


__all__ = ["run_fgw_alpha", "check_options", "ranked_metrics", "FILES"]

FILES = ("fgw_alpha.csv", "fgw_alpha.md", "fgw_alpha.png", "run.json")
TOP = 10


def check_options(config, *, fgw_alphas="0,0.25,0.5,0.75,1") -> dict:

    if config.k < 1:
        raise InvalidInputError(f"--k must be ≥ 1, got {config.k}")
    grid = fgw_alphas if isinstance(fgw_alphas, list) else parse_grid("--fgw-alpha", fgw_alphas, low=0.0, high=1.0)
    return {"fgw_alphas": grid}


def ranked_metrics(prep, final_lists: np.ndarray, rank1: np.ndarray, k: int) -> tuple[dict, np.ndarray]:
    """R@1/5/10 (rank of the first relevant image; beyond the shortlist, the stage-1
    rank), nDCG@10 and CAS-noun@10 of the final lists; and the per-query ranks."""

    pos = first_relevant_rank(final_lists[:, :k], prep.ev.relevant)
    ranks = np.where(pos >= 0, pos, rank1)
    out = {key.removeprefix("t2i_"): v for key, v in recall_at_k(ranks).items()}
    graded = annotation_list_metrics(final_lists[:, :TOP], prep.ev.query_objects, prep.ev.objects)
    out["nDCG@10"], out["CAS-noun@10"] = graded["t2i_nDCG@10"], graded["t2i_CAS-noun@10"]
    return out, ranks


def _final(topk: np.ndarray, reranked: np.ndarray) -> np.ndarray:
    return np.concatenate([reranked, topk[:, reranked.shape[1]:]], axis=1)


def _best_alpha(config, prep, alphas, progress) -> tuple[str, float]:
    """The α of ``alphas`` with the best R@1 (then R@10; ties: the smaller α) on the fit rows,
    each fit row's query ranked over the fit rows' images: the choice never sees the
    evaluated queries."""

    fit = prepare_rows(config, progress, prep.fit, None, prep.info, needed_by="choosing α on the fit rows")
    topk, scores, rank1 = fit.cosine(max(config.k, TOP))
    k = min(config.k, topk.shape[1])
    results = []
    for alpha in alphas:
        s = fit.scores("fgw", topk[:, :k], scores[:, :k], fgw_alpha=alpha)
        m, _ = ranked_metrics(fit, _final(topk, order_by_scores(topk[:, :k], s)), rank1, k)
        results.append(((m["R@1"], m["R@10"], -alpha), alpha))
    return f"the {len(fit.ev)} fit rows ({prep.info.get('fit')})", max(results)[1]


def run_fgw_alpha(config, *, fgw_alphas="0,0.25,0.5,0.75,1", progress=None) -> dict:

    alphas = check_options(config, fgw_alphas=fgw_alphas)["fgw_alphas"]
    progress = progress or (lambda phase, done, total: None)
    fit = bool(config.fit_split) or config.fit_fraction > 0
    prep = prepare(config, progress, fit=fit, needed_by="the FGW trade-off sweep")
    topk, scores, rank1 = prep.cosine(max(config.k, TOP))
    k = min(config.k, topk.shape[1])
    shortlist, short_scores = topk[:, :k], scores[:, :k]
    references = {"cosine": ranked_metrics(prep, topk, rank1, k)[0]}
    hungarian = order_by_scores(shortlist, prep.scores("hungarian", shortlist, short_scores))
    references["hungarian"] = ranked_metrics(prep, _final(topk, hungarian), rank1, k)[0]
    sweep = []
    for i, alpha in enumerate(alphas):
        progress("FGW α sweep", i, len(alphas))
        s = prep.scores("fgw", shortlist, short_scores, fgw_alpha=alpha)
        best = s.max(axis=1, keepdims=True)
        tied = float(np.mean((np.abs(s - best) <= 1e-9).sum(axis=1) > 1))
        metrics, _ = ranked_metrics(prep, _final(topk, order_by_scores(shortlist, s)), rank1, k)
        sweep.append({"fgw_alpha": alpha, **metrics, "tied_top1": tied})
    progress("FGW α sweep", len(alphas), len(alphas))
    best_on, chosen = _best_alpha(config, prep, alphas, progress) if fit and prep.fit is not None and len(prep.fit) else (None, None)
    if chosen is None:  # no fit rows: picked on the evaluated queries themselves, and said so
        best = max(sweep, key=lambda r: (r["R@1"], r["R@10"]))
        best_on = f"the evaluated queries (optimistic: give --fit-fraction or --fit-split to choose α on held-out rows)"
    else:
        best = next(r for r in sweep if r["fgw_alpha"] == chosen)
    summary = {"queries": len(prep.ev), "k": k, "solver": config.solver, "sweep": sweep, "best": best, "best_chosen_on": best_on, "references": references,
               "hungarian_costs": {"unmatched_cost": config.unmatched_cost, "surplus_cost": config.surplus_cost, "from": config.costs_from}}

    out = DiagnosticOutput(config.out, "fgw-alpha", FILES, config, config.overwrite)
    cols = ["R@1", "R@5", "R@10", "nDCG@10", "CAS-noun@10"]
    out.csv("fgw_alpha.csv", ["method", "fgw_alpha", *cols, "tied_top1"],
            [["fgw", r["fgw_alpha"], *(r[c] for c in cols), r["tied_top1"]] for r in sweep]
            + [[name, "", *(m[c] for c in cols), ""] for name, m in references.items()])
    fig, ax = new_figure(figsize=(5.5, 3.8), dpi=120)
    xs = [r["fgw_alpha"] for r in sweep]
    for c in ("R@1", "R@10", "CAS-noun@10"):
        ax.plot(xs, [r[c] for r in sweep], marker="o", label=f"FGW {c}")
    for name, style in (("cosine", ":"), ("hungarian", "--")):
        ax.axhline(references[name]["R@1"], linestyle=style, color="gray", label=f"{name} R@1")
    ax.plot(xs, [r["tied_top1"] for r in sweep], color="black", linewidth=0.8, label="tied top-1 share")
    ax.set(xlabel="FGW α (0 = features only, 1 = structure only)", ylabel="score", title=f"{config.model}: FGW trade-off (k={k})", ylim=(0, 1.02))
    ax.legend(fontsize=7)
    out.figure("fgw_alpha.png", fig)
    out.text("fgw_alpha.md", "\n\n".join([
        f"# FGW trade-off (§4.4): {prep.info.get('dataset')} · {config.model} · k={k} · solver {config.solver}",
        f"{len(prep.ev):,} queries. α weights the structure term: 0 = object features only (structure-blind), "
        "1 = structure only (blind to which object is which: isometric object sets tie, see `tied top-1`).",
        markdown_table(["α", *cols, "tied top-1"], [[f"{r['fgw_alpha']:g}", *(r[c] for c in cols), r["tied_top1"]] for r in sweep]),
        "References on the same shortlist:",
        markdown_table(["method", *cols], [[name, *(m[c] for c in cols)] for name, m in references.items()]),
        f"Best α by R@1, chosen on {summary['best_chosen_on']}: **{best['fgw_alpha']:g}** (R@1 on the evaluated queries {best['R@1']:.3f}).",
    ]))
    out.finish(summary, prep)
    return summary
