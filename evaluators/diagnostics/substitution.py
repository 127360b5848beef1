r"""App. E's substitution matrix: which shape a query's wrong top-K images show instead.

"Each entry records how often a query containing shape a retrieves an image with shape b
instead, with color held fixed so that the matrix isolates shape-level confusion."

For every query and each of its top-K retrieved images that is NOT relevant, the pair
counts as a substitution a → b when the image differs from the query in exactly one
object, and that object has the query's attributes (colour) but another noun
(:func:`~vgrc.evaluators.first_stage.steering.single_substitution`). Rows are the query's shape a,
columns the retrieved shape b.

- ``counts[a, b]`` — substitutions a → b;
- ``rates[a, b]`` — ``counts[a, b]`` / (queries containing a × K): the share of a's
  retrieval slots lost to b.

Outputs: ``substitution_counts.csv``, ``substitution_rates.csv``, ``substitution.png``
(heat map of the rates), ``substitution.md`` (the matrix and the top confusions; the
paper reports pentagon–hexagon, star–triangle and square–hexagon), ``run.json``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from vgrc.evaluators.diagnostics._common import new_figure, prepare
from vgrc.evaluators.runs import DiagnosticOutput
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage.steering import single_substitution


__all__ = ["substitution_matrix", "run_substitution", "FILES"]

FILES = ("substitution_counts.csv", "substitution_rates.csv", "substitution.md", "substitution.png", "run.json")


def substitution_matrix(query_objects: Sequence[list[dict]], retrieved: Sequence[Sequence[list[dict]]], relevant: Sequence[Sequence[bool]], k: int):
    """``(nouns, counts (S, S), rates (S, S))`` from each query's top lists.

    ``retrieved[q]`` holds the objects of query q's ranked images, ``relevant[q]`` whether
    each is relevant; only the first ``k`` positions count, and relevant images never do.
    """
    nouns = sorted({o["noun"] for objs in query_objects for o in objs} | {o["noun"] for lists in retrieved for objs in lists[:k] for o in objs})
    index = {n: i for i, n in enumerate(nouns)}
    counts = np.zeros((len(nouns), len(nouns)), dtype=np.int64)
    containing = Counter()
    for q, objs in enumerate(query_objects):
        for noun in {o["noun"] for o in objs}:
            containing[noun] += 1
        for objs_r, rel in zip(retrieved[q][:k], relevant[q][:k]):
            if rel:
                continue
            found = single_substitution(objs, objs_r)
            if found is not None:
                source, target = found  # retrieved b, asked a
                counts[index[target], index[source]] += 1
    denom = np.array([containing[n] * k for n in nouns], dtype=float)
    rates = counts / np.where(denom > 0, denom, 1)[:, None]
    return nouns, counts, rates


def _csv(nouns, matrix, fmt) -> str:
    lines = ["query_shape," + ",".join(nouns)]
    lines += [n + "," + ",".join(fmt(v) for v in row) for n, row in zip(nouns, matrix)]
    return "\n".join(lines) + "\n"


def _heatmap(out, nouns, rates, title: str) -> None:
    fig, ax = new_figure(figsize=(1.0 + 0.6 * len(nouns), 0.8 + 0.55 * len(nouns)), dpi=120)
    im = ax.imshow(rates, cmap="Reds", vmin=0)
    ax.set_xticks(range(len(nouns)), nouns, rotation=45, ha="right")
    ax.set_yticks(range(len(nouns)), nouns)
    ax.set(xlabel="retrieved instead", ylabel="query shape", title=title)
    for i in range(len(nouns)):
        for j in range(len(nouns)):
            if rates[i, j] > 0:  # a non-zero rate never reads "0.00"
                ax.text(j, i, f"{rates[i, j]:.2f}" if rates[i, j] >= 0.005 else "<0.01", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046)
    out.figure("substitution.png", fig)


def run_substitution(config, *, top_k: int = 1, progress=None) -> dict:
    """Encode (cached), retrieve by cosine, count substitutions, write the outputs.

    ``config`` is an :class:`~vgrc.evaluators.pipeline.EvalConfig` (model, data, split,
    limit, cache, device…); ``config.out`` is the output folder.
    """

    if top_k < 1:
        raise InvalidInputError(f"--top-k must be ≥ 1, got {top_k}")
    progress = progress or (lambda phase, done, total: None)
    prep = prepare(config, progress, objects=True, needed_by="the substitution matrix")
    ev = prep.ev
    top, _, _ = prep.cosine(top_k)
    retrieved = [[ev.objects[g] for g in row] for row in top]
    relevant = [[g in set(ev.relevant[q].tolist()) for g in row] for q, row in enumerate(top)]
    nouns, counts, rates = substitution_matrix(ev.query_objects, retrieved, relevant, top_k)
    out = DiagnosticOutput(config.out, "substitution", FILES, config, config.overwrite)
    out.text("substitution_counts.csv", _csv(nouns, counts, str))
    out.text("substitution_rates.csv", _csv(nouns, rates, lambda v: f"{v:.6f}"))
    pairs = sorted(((int(counts[i, j]), nouns[i], nouns[j]) for i in range(len(nouns)) for j in range(len(nouns)) if counts[i, j]), reverse=True)
    table = "| query shape | " + " | ".join(nouns) + " |\n|" + "---|" * (len(nouns) + 1) + "\n"
    table += "\n".join(f"| {n} | " + " | ".join(f"{rates[i, j]:.3f}" if counts[i, j] else "·" for j in range(len(nouns))) + " |" for i, n in enumerate(nouns))
    top_lines = "\n".join(f"{r}. {a} → {b}: {c} ({rates[nouns.index(a), nouns.index(b)]:.3f})" for r, (c, a, b) in enumerate(pairs[:10], 1)) or "none"
    out.text("substitution.md", (
        f"# Substitution matrix (App. E): {prep.info.get('dataset')} · {config.model} · top-{top_k}\n\n"
        f"Rows: the query's shape; columns: the shape retrieved instead (colour held fixed). Rates: substitutions / "
        f"(queries with that shape × {top_k}). {len(ev):,} queries.\n\n{table}\n\n## Top confusions\n\n{top_lines}\n"
    ))
    _heatmap(out, nouns, rates, f"{config.model}: substitutions in the top-{top_k}")
    summary = {"queries": len(ev), "top_k": top_k, "substitutions": int(counts.sum()),
               "top_confusions": [{"query": a, "retrieved": b, "count": c} for c, a, b in pairs[:10]]}
    out.finish(summary, prep)
    return summary
