"""Names and one-line descriptions of every choice ``vgrc eval`` offers, importable without
numpy or torch, so the CLI's choices and ``--help`` come from one place and stay instant.

The implementations register under the same names (``pipeline.STAGE1``,
``rerank.RERANKERS``, ``solvers.list_fgw_solvers()``); a test checks that they agree.
"""

from __future__ import annotations

import difflib

__all__ = ["STAGE1", "FIT_STAGES", "RERANKERS", "FGW_SOLVERS", "TASKS", "DEFAULT_TEMPLATES", "RELEVANCE", "check_choice", "load_entry"]

#: first stages (registry order = report order)
STAGE1: dict[str, str] = {
    "cosine": "cosine similarity of the caption and image embeddings (Eq. 1)",
    "ridge": "caption mapped by a text→image ridge mapper fitted on disjoint rows (§4.2)",
    "ridge+steer": "ridge, then steering vectors toward the query's words (§6.3, App. E, I)",
    "objects-avg": "average of the query's per-object embeddings, unsteered (App. A)",
    "objects-steer-avg": "average of the query's per-object embeddings, each steered along its attribute direction (App. J)",
}
#: first stages fitted on held-out rows of the split (``--fit-fraction``) or on ``--fit-split``;
#: every other first stage evaluates the whole split
FIT_STAGES = ("ridge", "ridge+steer")
#: second stages
RERANKERS: dict[str, str] = {
    "none": "stage-1 order",
    "hungarian": "one-to-one object matching cost (padded square problem)",
    "fgw": "Fused Gromov–Wasserstein over the object sets (Eq. 4)",
    "min": "minimum over query objects of their cosine with the image (App. A, unsteered)",
    "softmin": "soft minimum of the same (App. A, unsteered)",
    "steer-min": "min over per-object steered query vectors (App. J)",
    "steer-softmin": "softmin over per-object steered query vectors (App. J)",
}
#: FGW solvers
FGW_SOLVERS: dict[str, str] = {
    "cg": "conditional gradient with exact linear steps, POT-identical (default)",
    "global": "exact global minimum for equal sets of ≤ 7 objects, cg otherwise",
    "pot": "POT's own per-problem solver (cross-check)",
    "sinkhorn": "conditional gradient with an entropic (Sinkhorn) linear step: the paper's variant",
}
#: "retrieval": captions as queries (paper §6.1, App. J); "steering": steering.jsonl rows (App. H, I);
#: "itm": SugarCrepe's protocol, positive vs negative caption per image
TASKS = ("retrieval", "steering", "itm")
DEFAULT_TEMPLATES = ("a photo of a {}.", "a {}.", "an image of a {}.")
#: where graded relevance (nDCG@K, CAS@K) comes from: the annotations, or App. G's VLM judges
RELEVANCE = ("symbolic", "vlm")


def load_entry(option: str, name: str, entries: dict[str, str]):
    """The function a lazy registry (``name -> "module:function"``) names, imported now;
    an unknown name gets :func:`check_choice`'s one line."""
    from importlib import import_module

    check_choice(option, name, entries)
    module, _, attr = entries[name].partition(":")
    return getattr(import_module(module), attr)


def check_choice(option: str, value: str, valid) -> None:
    """One line naming the option, the bad value, the closest valid name and all of them."""
    from vgrc.evaluators.errors import InvalidInputError

    valid = list(valid)
    if value not in valid:
        close = difflib.get_close_matches(value, valid, n=1)
        near = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidInputError(f"unknown {option} {value!r}{near}; valid: {', '.join(valid)}")
