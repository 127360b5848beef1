r"""§4.2's structural diagnostics: how much geometry the text and image spaces share.

"the Pearson correlation between text-space and image-space pairwise distances is [ρ]
across all pairs, with highly non-uniform agreement across categories (triangles: …;
circles: …, meaning the within-shape color geometry is inverted). Post-hoc corrections
such as a ridge regression mapper from text to image space reduce cross-modal feature
distance by 85%, but leave structural alignment essentially unchanged
(Gromov–Wasserstein distance: …)." and "an optimal transport plan achieves a perfect
identity mapping on single-item pairs".

The items are the dataset's *primitives*: single-object rows (Synthetic Shapes: the 42
reference images, 6 shapes × 7 colours; elsewhere, every single-object row of the split),
one item per object phrase. For item i:

- text :math:`t_i` = the phrase's embedding, Eq. 3/7 (template-averaged, normalised);
- image :math:`v_i` = the normalised mean of its images' embeddings (one image on shapes).

Numbers (all cosine distances :math:`D = 1 - XX^\top`):

- ``pearson_all`` — Pearson r between :math:`D^t_{ij}` and :math:`D^v_{ij}` over all pairs
  :math:`i < j`; per category: over the pairs *within* one noun (``noun:triangle``: the
  within-shape colour geometry) and within one attribute (``attribute:red``).
- ``ridge`` — the ridge mapper (``--ridge-lambda``) fitted on the split's captions →
  images (the rows ``vgrc eval --stage1 ridge`` fits on), then on the items: mean
  :math:`\lVert t_i - v_i\rVert` before and :math:`\lVert W t_i - v_i\rVert` after,
  and the reduction 1 − after / before.
- ``gw_before`` / ``gw_after`` — the Gromov–Wasserstein distance between the two spaces'
  structures, :math:`\min_T \sum_{ijkl} (D^t_{ik} - D^v_{jl})^2 T_{ij}T_{kl}` with uniform
  marginals (POT's ``gromov_wasserstein2``, square loss; conditional gradient, a local
  optimum as in POT), with the text structure before and after mapping.
- ``ot_identity`` — the exact OT plan between texts and images with cost
  :math:`1 - \langle t_i, v_j\rangle` and uniform marginals: the share of items whose
  mass goes to their own image (1.0 = "a perfect identity mapping"), beside plain
  cosine top-1 identification.

Outputs: ``geometry.md``, ``geometry_correlations.csv``, ``geometry_items.csv``,
``distances.png`` (text vs image distance per pair, coloured within-noun), ``run.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vgrc.evaluators.dataset import read_manifest
from vgrc.evaluators.diagnostics._common import markdown_table, new_figure, prepare
from vgrc.evaluators.runs import DiagnosticOutput
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage.ridge import RidgeMapper
from vgrc.evaluators.first_stage.search import normalize
from vgrc.evaluators.retrieval_data import load_retrieval, object_phrase
from vgrc.evaluators.solvers import fgw_cost, fgw_solve


__all__ = ["cosine_distances", "distance_correlations", "gw_distance", "ot_identity", "run_geometry", "FILES"]

FILES = ("geometry.md", "geometry_correlations.csv", "geometry_items.csv", "distances.png", "run.json")


def cosine_distances(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    D = 1.0 - X @ X.T
    np.fill_diagonal(D, 0.0)
    return (D + D.T) / 2


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / np.sqrt((a @ a) * (b @ b)))


def distance_correlations(Dt: np.ndarray, Dv: np.ndarray, groups: dict[str, Sequence[Sequence[int]]] | None = None) -> list[dict]:
    """Pearson r of the upper-triangle distances: ``all``, then per group (pairs within it).

    ``groups`` maps a kind (``"noun"``) to ``{name: item indices}``; groups of fewer than
    3 items (one or no distance pair … or a constant) give NaN and are still listed.
    """
    iu = np.triu_indices(len(Dt), 1)
    rows = [{"category": "all", "items": len(Dt), "pairs": len(iu[0]), "pearson": _pearson(Dt[iu], Dv[iu])}]
    for kind, members in (groups or {}).items():
        for name, idx in members.items():
            idx = np.asarray(sorted(idx))
            sub = np.triu_indices(len(idx), 1)
            a, b = Dt[np.ix_(idx, idx)][sub], Dv[np.ix_(idx, idx)][sub]
            rows.append({"category": f"{kind}:{name}", "items": len(idx), "pairs": len(a), "pearson": _pearson(a, b)})
    return rows


def gw_distance(C1: np.ndarray, C2: np.ndarray) -> float:
    """Gromov–Wasserstein value (square loss, uniform marginals), as POT's
    ``ot.gromov.gromov_wasserstein2``: FGW with α = 1 on the batched exact-step solver."""

    n, m = len(C1), len(C2)
    return float(fgw_cost(np.zeros((1, n, m)), C1[None], C2[None], alpha=1.0, solver="cg")[0])


def ot_identity(text: np.ndarray, image: np.ndarray) -> dict:
    """Exact OT between paired items (cost 1 − cosine, uniform marginals): the share of
    each item's mass that lands on its own image, the items whose plan row peaks on it,
    and plain cosine top-1 identification for comparison."""

    n = len(text)
    M = 1.0 - np.asarray(text, np.float64) @ np.asarray(image, np.float64).T
    plan = np.asarray(fgw_solve(M[None], np.zeros((1, n, n)), np.zeros((1, n, n)), alpha=0.0).plan[0])
    return {
        "items": n,
        "ot_mass_on_identity": float(np.trace(plan) / plan.sum()),
        "ot_identity": float(np.mean(plan.argmax(axis=1) == np.arange(n))),
        "cosine_top1_identity": float(np.mean(M.argmin(axis=1) == np.arange(n))),
    }


def _primitive_split(config) -> str:

    splits = list(read_manifest(config.data)["splits"])
    for name in ("primitives", "reference"):
        if name in splits:
            return name
    return config.split or splits[0]


def _items(rows) -> tuple[list[str], list[dict], list[list[int]]]:

    by_phrase: dict[str, list[int]] = {}
    obj_of: dict[str, dict] = {}
    for r, objs in enumerate(rows.objects):
        if len(objs) == 1:
            ph = object_phrase(objs[0])
            by_phrase.setdefault(ph, []).append(r)
            obj_of[ph] = objs[0]
    phrases = sorted(by_phrase)
    return phrases, [obj_of[p] for p in phrases], [by_phrase[p] for p in phrases]


def run_geometry(config, *, progress=None) -> dict:
    """Compute §4.2's numbers on the dataset's primitives and write the outputs."""


    progress = progress or (lambda phase, done, total: None)
    prim_split = _primitive_split(config)
    prims, _, prim_info = load_retrieval(config.data, prim_split, fit_fraction=0.0, seed=config.seed)
    phrases, objects, members = _items(prims)
    if len(phrases) < 3:
        raise InvalidInputError(f"split {prim_split!r} of {config.data} has {len(phrases)} distinct single-object rows; "
                                "the geometry diagnostics need at least 3 (Synthetic Shapes has 42 in `primitives`)")
    # the mapper's fit rows: the main split's captions → images, as `vgrc eval --stage1 ridge`
    main = config.replace(split=None if config.split == prim_split else config.split)
    prep = prepare(main, progress, objects=False, fit=False, needed_by="the geometry diagnostics")
    prim_emb, failed, bad = prep.setup.encode_images(prims.image_paths, progress)
    if failed.any():
        raise InvalidInputError(f"{int(failed.sum())} primitive images could not be read (first: {bad[0]})")
    V = normalize(np.stack([prim_emb[idx].mean(axis=0) for idx in members]))
    T = prep.embed_phrases(phrases)
    Dt, Dv = cosine_distances(T), cosine_distances(V)
    groups = {"noun": {}, "attribute": {}}
    for i, o in enumerate(objects):
        groups["noun"].setdefault(o["noun"], []).append(i)
        for a in o.get("attributes", []):
            groups["attribute"].setdefault(a, []).append(i)
    correlations = distance_correlations(Dt, Dv, groups)

    mapper = RidgeMapper(ridge_lambda=config.ridge_lambda).fit(prep.texts, prep.images)
    ridge = {"fit_rows": len(prep.texts), "fit_split": prep.info["split"], "ridge_lambda": config.ridge_lambda,
             **mapper.distance_reduction(T, V), "fit_rows_reduction": 1 - mapper.distance_after_ / mapper.distance_before_}
    mapped = mapper.transform(T)
    progress("gromov-wasserstein", 0, 2)
    gw_before = gw_distance(Dt, Dv)
    progress("gromov-wasserstein", 1, 2)
    gw_after = gw_distance(cosine_distances(mapped), Dv)
    progress("gromov-wasserstein", 2, 2)
    identity = ot_identity(T, V)
    identity_mapped = ot_identity(mapped, V)

    summary = {
        "items": len(phrases), "item_split": prim_split, "pearson_all": correlations[0]["pearson"],
        "pearson_after_mapper": distance_correlations(cosine_distances(mapped), Dv)[0]["pearson"],
        "ridge": ridge, "gw_before": gw_before, "gw_after": gw_after,
        "ot_identity": identity, "ot_identity_after_mapper": identity_mapped,
    }
    out = DiagnosticOutput(config.out, "geometry", FILES, config, config.overwrite)
    out.csv("geometry_correlations.csv", ["category", "items", "pairs", "pearson"],
            [[r["category"], r["items"], r["pairs"], r["pearson"]] for r in correlations])
    out.csv("geometry_items.csv", ["phrase", "images", "text_image_cosine", "mapped_text_image_cosine"],
            [[p, len(m), float(T[i] @ V[i]), float(mapped[i] @ V[i])] for i, (p, m) in enumerate(zip(phrases, members))])
    _plot(out, Dt, Dv, objects, config.model)
    per_noun = [r for r in correlations if r["category"].startswith("noun:")]
    out.text("geometry.md", "\n\n".join([
        f"# Embedding geometry (§4.2): {prep.info.get('dataset')} · {config.model}",
        f"{len(phrases)} items: the single-object rows of split `{prim_split}`, one per phrase; distances are cosine distances.",
        "## Do the two spaces share their geometry?",
        f"Pearson r between text-space and image-space pairwise distances: **{summary['pearson_all']:.3f}** over all "
        f"{correlations[0]['pairs']} pairs (after the ridge mapper: {summary['pearson_after_mapper']:.3f}). Per noun (the within-noun "
        "attribute geometry; negative = inverted):",
        markdown_table(["category", "items", "pairs", "pearson"], [[r["category"], r["items"], r["pairs"], r["pearson"]] for r in per_noun]),
        "## The ridge mapper: a rotation, not a geometric correction",
        markdown_table(["", "value"], [
            ["mean ‖t − v‖ on the items, before", ridge["distance_before"]], ["after the mapper", ridge["distance_after"]],
            ["cross-modal distance reduction", ridge["reduction"]], [f"reduction on its {ridge['fit_rows']} fit rows", ridge["fit_rows_reduction"]],
            ["Gromov–Wasserstein distance, before", f"{gw_before:.4g}"], ["after the mapper", f"{gw_after:.4g}"],
        ]),
        "## Single items: does an OT plan recover the identity?",
        markdown_table(["", "raw text", "after mapper"], [
            ["share of items whose OT plan row peaks on its own image", identity["ot_identity"], identity_mapped["ot_identity"]],
            ["OT mass on the identity", identity["ot_mass_on_identity"], identity_mapped["ot_mass_on_identity"]],
            ["cosine top-1 identification", identity["cosine_top1_identity"], identity_mapped["cosine_top1_identity"]],
        ]),
    ]))
    out.finish(summary, prep, item_data=prim_info)
    return summary


def _plot(out: DiagnosticOutput, Dt, Dv, objects, model: str) -> None:
    iu = np.triu_indices(len(Dt), 1)
    same = np.array([objects[i]["noun"] == objects[j]["noun"] for i, j in zip(*iu)])
    fig, ax = new_figure(figsize=(5, 4.2), dpi=120)
    ax.scatter(Dt[iu][~same], Dv[iu][~same], s=8, alpha=0.5, label="different noun")
    ax.scatter(Dt[iu][same], Dv[iu][same], s=10, alpha=0.8, label="same noun (attribute geometry)")
    ax.set(xlabel="text-space cosine distance", ylabel="image-space cosine distance", title=f"{model}: pairwise distances")
    ax.legend(fontsize=7)
    out.figure("distances.png", fig)
