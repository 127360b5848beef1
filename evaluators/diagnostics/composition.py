r"""App. A and J: per-object embeddings are precise alone and fail when merged.

Every number is computed from the dataset's annotations and the same per-object phrase
embeddings as ``vgrc eval`` (Eq. 3/7). "Slots" are a query object's noun (labelled
``shape`` on Synthetic Shapes and CLEVR-HOPE, where the noun is the shape) and each of its
attributes, labelled by category (colour, size, material, other; see
:data:`~vgrc.evaluators.diagnostics._common.ATTRIBUTE_CATEGORIES`).

1. **Per-object retrieval** (App. A: "individual object embeddings support near-perfect
   fine-grained attribute retrieval"): each distinct query object's phrase alone retrieves
   over the gallery; hit@K when one of the top K images *grounds* it (an object with the
   same noun and a superset of its attributes, CAS-noun's rule).
2. **Merged baselines** (App. A: "merging … using averaging, min-pooling, or softmin
   aggregation"): over the whole gallery, the caption (CLIP), the normalised mean of the
   object vectors (``avg``), and the per-image minimum / soft minimum
   :math:`-\tau\log\sum_o e^{-s_o/\tau}` of the objects' cosines with the image.
3. **Pairing errors** (App. J) in the CLIP top 10: *target* (a relevant image),
   *pairing error* (every query concept — noun and attribute — is in the image, but some
   query object is not grounded: "the right attributes on the wrong objects"),
   *all grounded* (every query object grounded, yet not the target scene) and *miss*.
   For each ungrounded object of a pairing error, the image object sharing most of its
   slots (first in the image on ties) is its mispairing; the query slots it lacks are the
   *mispaired slots*, counted by category.
4. **Targeted steering** of mispaired attribute slots (App. J: "we construct an attribute
   steering vector … and apply it only to the affected object representation"): for a
   slot whose mispaired image object has value w where the query has v (same category),
   :math:`x' = \mathrm{normalize}(e(\text{image object}) + \alpha\,\mathrm{normalize}(\bar e(v) - \bar e(w)))`.
   *Corrected* when, among that object's phrases with the slot set to each value of the
   category seen in the dataset, the nearest to :math:`x'` carries v. Noun (shape) slots
   are not steerable ("shape is entangled with noun identity"). The query-level effect:
   the same vector added to the query's own object, objects average-merged, R@10.
5. **Interference** under average-merged steering (App. J): every query object steered
   along its App. J direction normalize(e(phrase) − e(noun)) (``objects-steer-avg``),
   against the unsteered average merge (``objects-avg``). A slot's score in a top-10 list
   is the share of the images that carry it (the noun on some object; an attribute on an
   object with the slot's noun); it *improves* / *degrades* when the steered list's score
   is higher / lower. Reported per α: queries degrading on ≥ 1 slot; among queries with
   an improvement, the mean number of degrading slots; by number of objects; and "when
   category a improves, category b degrades in X% of those queries".

Outputs: ``composition.md``, ``per_object.csv``, ``baselines.csv``, ``pairing_errors.csv``,
``interference.csv``, ``interference_pairs.csv``, ``composition.png``, ``run.json``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from vgrc.evaluators.dataset import read_manifest
from vgrc.evaluators.diagnostics._common import attribute_category, markdown_table, new_figure, parse_grid, prepare
from vgrc.evaluators.runs import DiagnosticOutput
from vgrc.evaluators.first_stage.search import cosine_topk, normalize, topk_by_scores
from vgrc.evaluators.first_stage.steering import object_directions
from vgrc.evaluators.metrics import first_relevant_rank, recall_at_k
from vgrc.evaluators.rerankers.context import order_by_scores, steer_objects
from vgrc.evaluators.retrieval_data import object_phrase


__all__ = [
    "run_composition", "check_options", "classify_retrieved", "mispaired_slots", "interference_summary", "slot_scores",
    "grounds", "FILES",
]

FILES = ("composition.md", "per_object.csv", "baselines.csv", "pairing_errors.csv", "interference.csv", "interference_pairs.csv",
         "composition.png", "run.json")
TOP = 10
CLASSES = ("target", "pairing_error", "all_grounded", "miss")


def check_options(config, *, steer_alphas="0.1,0.25,0.5,1") -> dict:
    grid = steer_alphas if isinstance(steer_alphas, list) else parse_grid("--steer-alpha", steer_alphas, low=0.0)
    return {"steer_alphas": grid}


# ---------------------------------------------------------------- pure rules (tested on hand-made fixtures)


def grounds(obj: dict, image_objects: Sequence[dict]) -> bool:
    """CAS-noun's rule: one image object with the same noun and a superset of the attributes."""
    attrs = set(obj.get("attributes", []))
    return any(o["noun"] == obj["noun"] and attrs <= set(o.get("attributes", [])) for o in image_objects)


def _concepts(objects) -> set:
    return {o["noun"] for o in objects} | {a for o in objects for a in o.get("attributes", [])}


def classify_retrieved(query: Sequence[dict], image: Sequence[dict], relevant: bool) -> str:
    """``target`` / ``pairing_error`` / ``all_grounded`` / ``miss`` (module documentation, 3)."""
    if relevant:
        return "target"
    grounded = [grounds(o, image) for o in query]
    if all(grounded):
        return "all_grounded"
    if _concepts(query) <= _concepts(image):
        return "pairing_error"
    return "miss"


def _slots(obj: dict, noun_label: str, categories: dict | None) -> list[tuple[str, str]]:
    return [(noun_label, obj["noun"])] + [(attribute_category(a, categories), a) for a in obj.get("attributes", [])]


def mispaired_slots(query: Sequence[dict], image: Sequence[dict], noun_label: str = "noun", categories: dict | None = None) -> list[dict]:
    """For each ungrounded query object: the image object sharing most slots (first on
    ties) and the query slots it lacks, with the image's value in the same category when
    it has exactly one (the steerable case)."""
    out = []
    for q in query:
        if grounds(q, image) or not image:
            continue
        q_slots = _slots(q, noun_label, categories)
        shared = [sum(s in set(_slots(o, noun_label, categories)) for s in q_slots) for o in image]
        best = image[int(np.argmax(shared))]
        b_slots = _slots(best, noun_label, categories)
        for cat, value in q_slots:
            if (cat, value) in b_slots:
                continue
            same_cat = [v for c, v in b_slots if c == cat]
            out.append({"object": q, "image_object": best, "category": cat, "query_value": value,
                        "image_value": same_cat[0] if len(same_cat) == 1 else None, "steerable": cat != noun_label and len(same_cat) == 1})
    return out


def slot_scores(query: Sequence[dict], lists: Sequence[Sequence[dict]], noun_label: str = "noun", categories: dict | None = None) -> list[tuple[int, str, float]]:
    """``(object index, category, score)`` for every slot of ``query``: the share of the
    images in ``lists`` (each a list of objects) carrying the slot — the noun on some
    object; an attribute on an object with the slot's noun."""
    scenes = [({o["noun"] for o in objs}, {(o["noun"], a) for o in objs for a in o.get("attributes", [])}) for objs in lists]
    n = max(1, len(scenes))
    out = []
    for j, o in enumerate(query):
        out.append((j, noun_label, sum(o["noun"] in nouns for nouns, _ in scenes) / n))
        for a in o.get("attributes", []):
            out.append((j, attribute_category(a, categories), sum((o["noun"], a) in pairs for _, pairs in scenes) / n))
    return out


def interference_summary(base: np.ndarray, steered: np.ndarray, slot_query: np.ndarray, slot_category: Sequence[str], n_objects: np.ndarray) -> dict:
    """Interference counts from per-slot scores (flat arrays, one entry per slot).

    ``slot_query`` maps each slot to its query (0..Q-1); ``n_objects`` (Q,) gives each
    query's object count. A slot improves when ``steered > base``, degrades when lower.
    """
    Q = len(n_objects)
    improved, degraded = steered > base, steered < base
    n_degraded = np.bincount(slot_query[degraded], minlength=Q)
    any_improved = np.bincount(slot_query[improved], minlength=Q) > 0
    any_degraded = n_degraded > 0
    cats = sorted(set(slot_category))
    cat = np.asarray(slot_category)
    imp_by = {c: np.bincount(slot_query[improved & (cat == c)], minlength=Q) > 0 for c in cats}
    deg_by = {c: np.bincount(slot_query[degraded & (cat == c)], minlength=Q) > 0 for c in cats}
    pairs = []
    for a in cats:
        for b in cats:
            base_n = int(imp_by[a].sum())
            both = int((imp_by[a] & deg_by[b]).sum())
            pairs.append({"improves": a, "degrades": b, "queries": base_n, "share": both / base_n if base_n else float("nan")})
    by_objects = {int(n): {"queries": int((n_objects == n).sum()), "degraded": int((any_degraded & (n_objects == n)).sum())}
                  for n in sorted(set(n_objects.tolist()))}
    return {
        "queries": Q, "queries_degraded": int(any_degraded.sum()), "queries_improved": int(any_improved.sum()),
        "mean_degraded_when_improved": float(n_degraded[any_improved].mean()) if any_improved.any() else float("nan"),
        "slots": int(len(base)), "slots_improved": int(improved.sum()), "slots_degraded": int(degraded.sum()),
        "by_objects": by_objects, "pairs": pairs,
    }


# ---------------------------------------------------------------- the analysis


def _merged_rank_tables(prep, tau: float):
    """Full-gallery top-10 and ranks of the caption, avg, min and softmin queries."""

    ev, images = prep.ev, prep.images
    Q, G = len(ev), len(images)
    table = prep.q_table
    present = table.weight > 0
    obj = table.emb().astype(np.float32)
    avg = normalize((obj * present[..., None]).sum(1))
    S = prep.phrase_emb.astype(np.float32) @ images.T  # unique phrases × gallery
    S = np.vstack([S, np.zeros((1, G), np.float32)])
    n_max = table.index.shape[1]
    chunk = max(1, int(2**25 // max(1, n_max * G)))

    def per_object(s, e):
        return S[table.index[s:e]]  # (c, n_max, G)

    def min_rows(s, e):
        return np.where(present[s:e, :, None], per_object(s, e), np.inf).min(axis=1)

    def softmin_rows(s, e):
        z = np.where(present[s:e, :, None], -per_object(s, e) / tau, -np.inf)
        zmax = z.max(axis=1, keepdims=True)
        return -tau * (np.log(np.exp(z - zmax).sum(axis=1)) + zmax[:, 0])

    out = {"clip": prep.cosine(TOP), "avg": prep.cosine(TOP, avg)}
    out["min"] = topk_by_scores(min_rows, Q, G, TOP, ev.relevant, chunk)
    out["softmin"] = topk_by_scores(softmin_rows, Q, G, TOP, ev.relevant, chunk)
    return out, obj, present


def _per_object(prep) -> list[dict]:
    """Each distinct query object's phrase alone: does its top-1 / top-10 ground it?"""

    ev = prep.ev
    objects: dict[str, dict] = {}
    counts = Counter()
    for objs in ev.query_objects:
        for o in objs:
            ph = object_phrase(o)
            objects.setdefault(ph, o)
            counts[ph] += 1
    phrases = sorted(objects)
    index = {p: i for i, p in enumerate(prep.phrases)}
    Q = prep.phrase_emb[[index[p] for p in phrases]]
    top, _, _ = _plain_topk(Q, prep.images, TOP)
    rows = []
    for p, t in zip(phrases, top):
        hits = [grounds(objects[p], ev.objects[g]) for g in t]
        rows.append({"phrase": p, "noun": objects[p]["noun"], "queries": counts[p], "hit@1": float(hits[0]), "hit@10": float(any(hits))})
    return rows


def _plain_topk(queries, images, k):

    return cosine_topk(queries, images, k, [np.zeros(0, np.int64)] * len(queries))


#: App. J's candidate pool for the two-stage steer-min / steer-softmin reranking
TWO_STAGE_POOL = 100


def _two_stage(prep, config, directions: np.ndarray) -> dict:
    """App. J: CLIP retrieves a pool of 100, then each candidate is scored with per-object
    steered query vectors aggregated by min or softmin (``--rerank steer-min`` /
    ``steer-softmin``, strength ``--steer-alpha``). The paper: pool recall@100 0.669,
    R@10 0.089 (min) and 0.092 (softmin) on CLEVR-HOPE."""

    pool = min(TWO_STAGE_POOL, len(prep.images))
    topk, scores, rank1 = prep.cosine(max(pool, TOP))
    out = {}
    for name in ("steer-min", "steer-softmin"):
        order = order_by_scores(topk[:, :pool], prep.scores(name, topk[:, :pool], scores[:, :pool], directions=directions, steer_alpha=config.steer_alpha))
        pos = first_relevant_rank(order, prep.ev.relevant)
        rank = np.where(pos >= 0, pos, rank1)
        out[f"two-stage {name} (pool {pool})"] = {key.removeprefix("t2i_"): v for key, v in recall_at_k(rank).items()}
        out[f"two-stage {name} (pool {pool})"]["pool_recall"] = float(np.mean((rank1 >= 0) & (rank1 < pool)))
    return out


def run_composition(config, *, steer_alphas="0.1,0.25,0.5,1", progress=None) -> dict:

    alphas = check_options(config, steer_alphas=steer_alphas)["steer_alphas"]
    progress = progress or (lambda phase, done, total: None)
    prep = prepare(config, progress, needed_by="the composition diagnostics")
    ev = prep.ev

    manifest = read_manifest(config.data)
    noun_label = "shape" if manifest.get("dataset") in ("shapes", "clevr-hope") else "noun"
    categories = manifest.get("attribute_categories") or None
    n_objects = np.array([len(o) for o in ev.query_objects])

    progress("composition: per-object retrieval", 0, 4)
    per_object = _per_object(prep)
    progress("composition: merged baselines", 1, 4)
    merged, obj, present = _merged_rank_tables(prep, config.tau)
    baselines = {name: {key.removeprefix("t2i_"): v for key, v in recall_at_k(rank).items()} for name, (_, _, rank) in merged.items()}

    # pairing errors in the CLIP top 10
    progress("composition: pairing errors", 2, 4)
    clip_top = merged["clip"][0]
    classes = Counter()
    slots: list[dict] = []
    for q, row in enumerate(clip_top):
        rel = set(ev.relevant[q].tolist())
        for g in row:
            c = classify_retrieved(ev.query_objects[q], ev.objects[g], int(g) in rel)
            classes[c] += 1
            if c == "pairing_error":
                slots += [{**s, "query": q} for s in mispaired_slots(ev.query_objects[q], ev.objects[g], noun_label, categories)]
    by_cat = Counter(s["category"] for s in slots)
    retrieved = int(sum(classes.values()))
    pairing = {"retrieved": retrieved, **{c: int(classes[c]) for c in CLASSES},
               "pairing_error_share": classes["pairing_error"] / retrieved if retrieved else 0.0,
               "mispaired_slots": len(slots), "by_category": dict(by_cat), "steerable": sum(s["steerable"] for s in slots)}

    # targeted steering and interference, per α
    progress("composition: steering", 3, 4)
    directions = object_directions(prep.phrases, ev.query_objects, prep.phrase_emb, prep.embed_phrases)
    steer_dirs = directions[prep.q_table.index]
    base_top = merged["avg"][0]
    base_scores, slot_q, slot_cat = _slot_arrays(ev, base_top, noun_label, categories)
    value_words = sorted({w for s in slots if s["steerable"] for w in (s["query_value"], s["image_value"])})
    word_emb = dict(zip(value_words, prep.embed_phrases(value_words))) if value_words else {}
    rows, pair_rows = [], []
    for alpha in alphas:
        steered_obj = steer_objects(obj, steer_dirs, alpha)
        steered_q = normalize((steered_obj * present[..., None]).sum(1))
        top, _, rank = prep.cosine(TOP, steered_q)
        steered_scores, _, _ = _slot_arrays(ev, top, noun_label, categories)
        summary = interference_summary(base_scores, steered_scores, slot_q, slot_cat, n_objects)
        corrected, targeted_rank = _targeted(prep, slots, word_emb, obj, present, alpha, categories)
        rows.append({"steer_alpha": alpha, "queries": summary["queries"], "queries_degraded": summary["queries_degraded"],
                     "degraded_share": summary["queries_degraded"] / max(1, summary["queries"]),
                     "mean_degraded_when_improved": summary["mean_degraded_when_improved"],
                     "steered_avg_R@10": float(np.mean((rank >= 0) & (rank < TOP))),
                     "targeted_correction_rate": corrected, "targeted_avg_R@10": float(np.mean((targeted_rank >= 0) & (targeted_rank < TOP))),
                     "by_objects": summary["by_objects"]})
        pair_rows += [{"steer_alpha": alpha, **p} for p in summary["pairs"]]
    baselines.update(_two_stage(prep, config, directions))
    progress("composition", 4, 4)

    result = {"queries": len(ev), "noun_label": noun_label, "baselines": baselines, "pairing": pairing,
              "per_object": {"objects": len(per_object), "hit@1": float(np.mean([r["hit@1"] for r in per_object])),
                             "hit@10": float(np.mean([r["hit@10"] for r in per_object]))},
              "interference": rows}
    _write(config, prep, result, per_object, pair_rows)
    return result


def _slot_arrays(ev, lists: np.ndarray, noun_label, categories):
    scores, owner, cats = [], [], []
    for q, row in enumerate(lists):
        for _, cat, score in slot_scores(ev.query_objects[q], [ev.objects[g] for g in row], noun_label, categories):
            scores.append(score)
            owner.append(q)
            cats.append(cat)
    return np.array(scores), np.array(owner, dtype=np.int64), cats


def _targeted(prep, slots, word_emb, obj, present, alpha, categories):
    """Correction rate of the steerable slots and query-level ranks with the same
    vectors added to the query's own objects (average merge)."""

    ev = prep.ev
    steerable = [s for s in slots if s["steerable"]]
    values_by_cat: dict[str, set] = {}
    for objs in (*ev.objects, *ev.query_objects):
        for o in objs:
            for a in o.get("attributes", []):
                values_by_cat.setdefault(attribute_category(a, categories), set()).add(a)
    corrected = 0
    candidates_needed: dict[str, None] = {}
    plans = []
    for s in steerable:
        b = s["image_object"]
        options = sorted(values_by_cat.get(s["category"], {s["query_value"]}) | {s["query_value"], s["image_value"]})
        phrases = [object_phrase({"noun": b["noun"], "attributes": [u if a == s["image_value"] else a for a in b.get("attributes", [])]}) for u in options]
        for p in phrases + [object_phrase(b)]:
            candidates_needed.setdefault(p, None)
        plans.append((s, options, phrases))
    cand = list(candidates_needed)
    emb = dict(zip(cand, prep.embed_phrases(cand))) if cand else {}
    steered_obj = obj.copy()
    for s, options, phrases in plans:
        d = normalize(word_emb[s["query_value"]] - word_emb[s["image_value"]])
        x = normalize(emb[object_phrase(s["image_object"])] + alpha * d)
        sims = np.array([emb[p] @ x for p in phrases])
        corrected += options[int(np.argmax(sims))] == s["query_value"]
        q = s["query"]
        j = [object_phrase(o) for o in ev.query_objects[q]].index(object_phrase(s["object"]))
        if prep.q_table.index[q, j] < len(prep.phrases):
            steered_obj[q, j] = normalize(steered_obj[q, j] + alpha * d)
    merged = normalize((steered_obj * present[..., None]).sum(1))
    _, _, rank = prep.cosine(TOP, merged)
    return (corrected / len(steerable) if steerable else float("nan")), rank


def _write(config, prep, result, per_object, pair_rows) -> None:
    out = DiagnosticOutput(config.out, "composition", FILES, config, config.overwrite)
    out.csv("per_object.csv", ["phrase", "noun", "queries", "hit@1", "hit@10"], [[r[c] for c in ("phrase", "noun", "queries", "hit@1", "hit@10")] for r in per_object])
    out.csv("baselines.csv", ["merge", "R@1", "R@5", "R@10"], [[n, m["R@1"], m["R@5"], m["R@10"]] for n, m in result["baselines"].items()])
    p = result["pairing"]
    out.csv("pairing_errors.csv", ["kind", "name", "count", "share"],
            [["class", c, p[c], p[c] / max(1, p["retrieved"])] for c in CLASSES]
            + [["mispaired_slot", c, n, n / max(1, p["mispaired_slots"])] for c, n in sorted(p["by_category"].items(), key=lambda kv: -kv[1])])
    cols = ["steer_alpha", "queries", "queries_degraded", "degraded_share", "mean_degraded_when_improved", "steered_avg_R@10",
            "targeted_correction_rate", "targeted_avg_R@10"]
    out.csv("interference.csv", cols, [[r[c] for c in cols] for r in result["interference"]])
    out.csv("interference_pairs.csv", ["steer_alpha", "improves", "degrades", "queries", "share"],
            [[r["steer_alpha"], r["improves"], r["degrades"], r["queries"], r["share"]] for r in pair_rows])
    fig, (a1, a2) = new_figure(1, 2, figsize=(9, 3.6), dpi=120)
    names = list(result["baselines"])
    a1.bar(names, [result["baselines"][n]["R@10"] for n in names], color=["gray", "tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"][: len(names)])
    a1.set(ylabel="R@10", title="merged per-object queries vs CLIP", ylim=(0, 1))
    xs = [r["steer_alpha"] for r in result["interference"]]
    a2.plot(xs, [r["degraded_share"] for r in result["interference"]], marker="o", label="queries degrading ≥1 slot")
    a2.plot(xs, [r["steered_avg_R@10"] for r in result["interference"]], marker="s", label="steered avg R@10")
    a2.plot(xs, [r["targeted_correction_rate"] for r in result["interference"]], marker="^", label="targeted correction rate")
    a2.set(xlabel="steering strength α", title="average-merged steering", ylim=(-0.02, 1.02))
    a2.legend(fontsize=7)
    out.figure("composition.png", fig)
    first = result["interference"][0]
    alpha0 = first["steer_alpha"]
    pairs0 = [r for r in pair_rows if r["steer_alpha"] == alpha0 and r["improves"] != r["degrades"] and r["queries"]]
    by_obj = first["by_objects"]
    out.text("composition.md", "\n\n".join([
        f"# Composition diagnostics (App. A, J): {prep.info.get('dataset')} · {config.model}",
        f"{result['queries']:,} queries; per-object sets from the annotations; slots: the noun (`{result['noun_label']}`) and each attribute.",
        "## Per-object retrieval",
        f"{result['per_object']['objects']} distinct query objects, each phrase alone over the gallery: grounded by the top-1 "
        f"image {result['per_object']['hit@1']:.3f}, within the top 10 {result['per_object']['hit@10']:.3f} (`per_object.csv`).",
        "## Merged per-object queries vs CLIP (full gallery), and App. J's two-stage reranking",
        markdown_table(["merge", "R@1", "R@5", "R@10"], [[n, m["R@1"], m["R@5"], m["R@10"]] for n, m in result["baselines"].items()]),
        "Two-stage rows (App. J): CLIP's top-100 pool reranked by per-object steered query vectors, min or softmin; pool recall@100 "
        + next((f"{m['pool_recall']:.3f}" for n, m in result["baselines"].items() if n.startswith("two-stage")), "—")
        + " (the paper, CLEVR-HOPE: pool recall 0.669, R@10 0.089 / 0.092).",
        "## Pairing errors in the CLIP top 10",
        markdown_table(["class", "images", "share"], [[c, p[c], p[c] / max(1, p["retrieved"])] for c in CLASSES]),
        f"{p['mispaired_slots']} mispaired slots ({p['steerable']} steerable):",
        markdown_table(["category", "slots", "share"], [[c, n, n / max(1, p["mispaired_slots"])] for c, n in sorted(p["by_category"].items(), key=lambda kv: -kv[1])]),
        "## Steering: targeted vs average-merged",
        markdown_table(["α", "queries degrading ≥1 slot", "mean degrading slots when one improves", "steered avg R@10", "targeted correction rate", "targeted avg R@10"],
                       [[f"{r['steer_alpha']:g}", f"{r['queries_degraded']}/{r['queries']}", r["mean_degraded_when_improved"], r["steered_avg_R@10"],
                         r["targeted_correction_rate"], r["targeted_avg_R@10"]] for r in result["interference"]]),
        f"By number of objects (α={alpha0:g}):",
        markdown_table(["objects", "queries", "degrading ≥1 slot"], [[n, v["queries"], v["degraded"]] for n, v in by_obj.items()]),
        f"When one category improves, another degrades (α={alpha0:g}; `interference_pairs.csv` for every α):",
        markdown_table(["improves", "degrades", "queries with an improvement", "share degrading"], [[r["improves"], r["degrades"], r["queries"], r["share"]] for r in pairs0]),
    ]))
    out.finish(result, prep)
