"""`vgrc diagnose`: each number against an independent computation on hand-made fixtures."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vgrc.cli.main import app
from vgrc.evaluators.diagnostics.substitution import substitution_matrix


def o(colour, shape):
    return {"noun": shape, "attributes": [colour]}


def test_substitution_matrix_from_hand_written_rankings():
    queries = [
        [o("red", "pentagon"), o("blue", "star")],
        [o("red", "pentagon"), o("green", "circle")],
        [o("black", "star"), o("red", "square")],
    ]
    retrieved = [
        # top-1 swaps pentagon for hexagon (colour kept); top-2 is relevant (never counted)
        [[o("red", "hexagon"), o("blue", "star")], [o("red", "pentagon"), o("blue", "star")]],
        # colour AND shape change: not a substitution with colour held fixed; then pentagon→hexagon
        [[o("blue", "hexagon"), o("green", "circle")], [o("red", "hexagon"), o("green", "circle")]],
        # star → triangle (top-1), and two objects changed (top-2): not counted
        [[o("black", "triangle"), o("red", "square")], [o("black", "triangle"), o("red", "circle")]],
    ]
    relevant = [[False, True], [False, False], [False, False]]
    nouns, counts, rates = substitution_matrix(queries, retrieved, relevant, k=1)
    i = {n: k for k, n in enumerate(nouns)}
    assert counts[i["pentagon"], i["hexagon"]] == 1 and counts[i["star"], i["triangle"]] == 1 and counts.sum() == 2
    assert rates[i["pentagon"], i["hexagon"]] == pytest.approx(1 / 2)  # 2 queries contain a pentagon, k = 1
    assert rates[i["star"], i["triangle"]] == pytest.approx(1 / 2)
    _, counts2, rates2 = substitution_matrix(queries, retrieved, relevant, k=2)
    assert counts2[i["pentagon"], i["hexagon"]] == 2 and rates2[i["pentagon"], i["hexagon"]] == pytest.approx(2 / 4)
    assert counts2.sum() == 3


def test_diagnose_substitution_cli_writes_every_output(shapes_dir, tmp_path):
    out = tmp_path / "diag"
    args = ["diagnose", "substitution", "--data", str(shapes_dir), "--model", "tiny-random", "--top-k", "3", "--out", str(out), "--cache-dir", str(tmp_path / "c"), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("substitution_counts.csv", "substitution_rates.csv", "substitution.md", "substitution.png", "run.json"):
        assert (out / name).stat().st_size > 0
    counts = np.loadtxt(out / "substitution_counts.csv", delimiter=",", skiprows=1, usecols=range(1, 7))
    run = json.loads((out / "run.json").read_text())
    assert run["format"] == "vgrc-run/1" and run["summary"]["substitutions"] == int(counts.sum())
    assert (out / "substitution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = CliRunner().invoke(app, args)  # an existing output is never replaced silently
    assert again.exit_code == 2 and "pass --overwrite" in again.stderr
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0


# ---------------------------------------------------------------- geometry (§4.2)


def _unit(rng, n, d):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_distance_correlations_match_scipy_pearson_overall_and_within_groups():
    from scipy.stats import pearsonr

    from vgrc.evaluators.diagnostics.geometry import cosine_distances, distance_correlations

    rng = np.random.default_rng(0)
    T, V = _unit(rng, 9, 16), _unit(rng, 9, 16)
    V[:4] = T[:4] + 0.1 * V[:4]  # share some geometry, not all
    Dt, Dv = cosine_distances(T), cosine_distances(V / np.linalg.norm(V, axis=1, keepdims=True))
    rows = distance_correlations(Dt, Dv, {"noun": {"a": [0, 1, 2, 3], "b": [4, 5, 6, 7, 8]}})
    iu = np.triu_indices(9, 1)
    assert rows[0]["pairs"] == 36 and rows[0]["pearson"] == pytest.approx(pearsonr(Dt[iu], Dv[iu])[0], abs=1e-12)
    sub = np.ix_([4, 5, 6, 7, 8], [4, 5, 6, 7, 8])
    ju = np.triu_indices(5, 1)
    b = next(r for r in rows if r["category"] == "noun:b")
    assert b["pairs"] == 10 and b["pearson"] == pytest.approx(pearsonr(Dt[sub][ju], Dv[sub][ju])[0], abs=1e-12)
    # an inverted geometry gives a negative correlation
    assert distance_correlations(Dt, 2.0 - Dt)[0]["pearson"] == pytest.approx(-1.0)


def test_gw_distance_matches_pot_and_is_zero_for_isometric_spaces():
    import ot

    from vgrc.evaluators.diagnostics.geometry import cosine_distances, gw_distance

    rng = np.random.default_rng(1)
    A, B = _unit(rng, 12, 8), _unit(rng, 12, 8)
    C1, C2 = cosine_distances(A), cosine_distances(B)
    p = np.full(12, 1 / 12)
    ref = ot.gromov.gromov_wasserstein2(C1, C2, p, p, loss_fun="square_loss")
    assert gw_distance(C1, C2) == pytest.approx(float(ref), rel=1e-6, abs=1e-9) and gw_distance(C1, C2) > 1e-3
    R = np.linalg.qr(rng.normal(size=(8, 8)))[0]  # a rotation keeps every distance
    assert gw_distance(C1, cosine_distances(A @ R)) == pytest.approx(0.0, abs=1e-9)


def test_ot_identity_agrees_with_scipy_assignment():
    from scipy.optimize import linear_sum_assignment

    from vgrc.evaluators.diagnostics.geometry import ot_identity

    rng = np.random.default_rng(2)
    T = _unit(rng, 10, 6)
    V = T + 2.0 * _unit(rng, 10, 6)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    got = ot_identity(T, V)
    rows, cols = linear_sum_assignment(1 - T @ V.T)
    assert got["ot_identity"] == pytest.approx(np.mean(cols[np.argsort(rows)] == np.arange(10)))
    assert 0 < got["ot_identity"] < 1  # the noise makes some items swap: the case that can fail
    assert ot_identity(T, T)["ot_identity"] == 1.0 and ot_identity(T, T)["ot_mass_on_identity"] == pytest.approx(1.0)


def test_diagnose_geometry_cli_on_the_42_primitives(shapes_dir, tmp_path):
    out = tmp_path / "geo"
    args = ["diagnose", "geometry", "--data", str(shapes_dir), "--model", "tiny-random", "--out", str(out), "--cache-dir", str(tmp_path / "c"), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    s = run["summary"]
    assert run["complete"] and s["items"] == 42 and s["item_split"] == "primitives"
    assert -1 <= s["pearson_all"] <= 1 and s["gw_before"] >= 0 and 0 <= s["ot_identity"]["ot_identity"] <= 1
    lines = (out / "geometry_correlations.csv").read_text().splitlines()
    assert lines[1].startswith("all,42,861,") and sum(line.startswith("noun:") for line in lines) == 6 and sum(line.startswith("attribute:") for line in lines) == 7
    assert (out / "distances.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "Pearson" in (out / "geometry.md").read_text()


# ---------------------------------------------------------------- k-sweep (App. D) and fgw-alpha (§4.4)


def test_ground_truth_ranks_on_a_hand_made_shortlist():
    from vgrc.evaluators.diagnostics.k_sweep import ground_truth_ranks

    topk = np.array([[7, 3, 5, 9], [1, 2, 8, 4]])  # cosine order
    scores = np.array([[0.1, 0.2, 0.9, 0.3], [0.5, 0.5, 0.4, 0.6]])
    relevant = [np.array([5]), np.array([4])]
    rank1 = np.array([2, 3])  # cosine ranks of the ground truth
    # k = 2: neither ground truth is in the prefix → cosine ranks kept
    assert ground_truth_ranks(topk, scores, 2, relevant, rank1).tolist() == [2, 3]
    # k = 3: query 0's GT (score 0.9) moves to the top; query 1's still outside
    assert ground_truth_ranks(topk, scores, 3, relevant, rank1).tolist() == [0, 3]
    # k = 4: query 1's GT has the best score 0.6 → rank 0; ties elsewhere keep cosine order
    assert ground_truth_ranks(topk, scores, 4, relevant, rank1).tolist() == [0, 0]


def _prepared(shapes_dir, tmp_path, **over):
    from vgrc.evaluators.diagnostics._common import prepare
    from vgrc.evaluators.pipeline import EvalConfig

    config = EvalConfig(data=str(shapes_dir), model="tiny-random", cache_dir=str(tmp_path / "c"), fit_fraction=0.0, **over)
    return prepare(config, lambda *a: None)


def test_k_sweep_prefix_scores_equal_rerunning_each_k(shapes_dir, tmp_path):
    from vgrc.evaluators.diagnostics.k_sweep import ground_truth_ranks
    from vgrc.evaluators.metrics import first_relevant_rank
    from vgrc.evaluators.rerankers.context import order_by_scores

    prep = _prepared(shapes_dir, tmp_path)
    topk, scores, rank1 = prep.cosine(40)
    for name in ("hungarian", "fgw"):
        big = prep.scores(name, topk, scores)
        for k in (3, 10, 25):
            pos = first_relevant_rank(order_by_scores(topk[:, :k], prep.scores(name, topk[:, :k], scores[:, :k])), prep.ev.relevant)
            assert np.array_equal(ground_truth_ranks(topk, big, k, prep.ev.relevant, rank1), np.where(pos >= 0, pos, rank1))


def test_diagnose_k_sweep_and_fgw_alpha_cli(shapes_dir, tmp_path):
    base = ["--data", str(shapes_dir), "--model", "tiny-random", "--cache-dir", str(tmp_path / "c"), "-q"]
    out = tmp_path / "ks"
    result = CliRunner().invoke(app, ["diagnose", "k-sweep", *base, "--k", "20", "--k-values", "5,10,20,40", "--out", str(out)])
    assert result.exit_code == 0, result.output
    s = json.loads((out / "run.json").read_text())["summary"]
    lines = (out / "k_sweep.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == [5, 10, 20, 40]
    traj = (out / "trajectories.csv").read_text().splitlines()
    assert len(traj) == 1 + 4 * s["disagreements"]
    if s["disagreements"]:  # at the main k every disagreement query is recovered by Hungarian and not by FGW
        at_main = next(r for r in s["sweep"] if r["k"] == 20)
        assert at_main["hungarian_recovery"] == 1.0 and at_main["fgw_recovery"] == 0.0
    for name in ("k_sweep.png", "trajectories.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    out = tmp_path / "fa"
    result = CliRunner().invoke(app, ["diagnose", "fgw-alpha", *base, "--k", "10", "--fgw-alpha", "1,0,0.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    s = json.loads((out / "run.json").read_text())["summary"]
    assert [r["fgw_alpha"] for r in s["sweep"]] == [0.0, 0.5, 1.0]
    # the structure-only end ties more top-1 candidates than the feature-only end
    assert s["sweep"][-1]["tied_top1"] >= s["sweep"][0]["tied_top1"]
    bad = CliRunner().invoke(app, ["diagnose", "fgw-alpha", *base, "--fgw-alpha", "0,1.5", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "1.5 is outside [0, 1]" in bad.stderr and not (tmp_path / "x").exists()


def test_disagreement_sweep_on_a_fixture_with_a_known_answer():
    from vgrc.evaluators.diagnostics.k_sweep import disagreement_sweep

    # 3 queries, cosine top-4 each; the ground truth of every query is gallery item 0
    topk = np.array([[3, 0, 1, 2], [0, 3, 1, 2], [1, 2, 3, 0]])
    rank1 = np.array([1, 0, 3])
    relevant = [np.array([0])] * 3
    # full-shortlist scores (Q, 4); higher is better
    H = np.array([[0.1, 0.9, 0.2, 0.3], [0.9, 0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.9]])
    F = np.array([[0.5, 0.4, 0.1, 0.6], [0.9, 0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.9]])
    # main k = 2: q0: Hungarian puts GT first (0.9 > 0.1), FGW does not (0.4 < 0.5) → the only disagreement
    called = []

    def sweep_scores(D):
        called.append(D.tolist())
        return H[D], F[D]

    r = disagreement_sweep(topk, rank1, relevant, 2, [1, 2, 3, 4], H[:, :2], F[:, :2], sweep_scores)
    assert r["subset"].tolist() == [0] and called == [[0]] and r["fgw_only_r1"] == 0
    by_k = {row["k"]: row for row in r["sweep"]}
    # k = 1: GT outside the shortlist, cosine rank 1 for both; k = 2: H recovers, F does not;
    # k = 3: still; k = 4: item 2 (F 0.6) is added and outranks the GT: F's rank is now 2
    assert [by_k[k]["hungarian_recovery"] for k in (1, 2, 3, 4)] == [0.0, 1.0, 1.0, 1.0]
    assert [by_k[k]["fgw_recovery"] for k in (1, 2, 3, 4)] == [0.0, 0.0, 0.0, 0.0]
    assert [t[3] for t in r["trajectories"]] == [1, 1, 1, 2] and [t[2] for t in r["trajectories"]] == [1, 0, 0, 0]


def test_diagnose_alpha_sweep_on_shapes_equals_eval_ridge_steer(shapes_dir, tmp_path):
    from vgrc.evaluators.pipeline import EvalConfig, run_eval

    out = tmp_path / "sweep"
    common = ["--data", str(shapes_dir), "--model", "tiny-random", "--cache-dir", str(tmp_path / "c"), "-q"]
    result = CliRunner().invoke(app, ["diagnose", "alpha-sweep", *common, "--steer-alpha", "0,0.5,1.5", "--steer", "pentagon:hexagon", "--steer", "star:triangle", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "run.json").read_text())["summary"]
    assert summary["mode"] == "ridge+steer" and summary["pairs"]
    for row in summary["sweep"]:
        m = run_eval(EvalConfig(data=str(shapes_dir), out=str(tmp_path / f"e{row['steer_alpha']}"), model="tiny-random",
                                stage1="ridge+steer", steer_alpha=row["steer_alpha"], steer=["pentagon:hexagon", "star:triangle"], cache_dir=str(tmp_path / "c")))
        assert [row["R@1"], row["R@5"], row["R@10"]] == pytest.approx([m["t2i_R@1"], m["t2i_R@5"], m["t2i_R@10"]])
        assert row["CAS@10"] == pytest.approx(m["t2i_CAS-noun@10"])
    assert summary["sweep"][0]["steered"] == 0 and summary["sweep"][1]["steered"] > 0  # α = 0 steers nothing
    for name in ("alpha_sweep.png", "alpha_grid.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- composition (App. A, J)


def obj(noun, *attrs):
    return {"noun": noun, "attributes": list(attrs)}


def test_pairing_error_classes_and_mispaired_slots_by_hand():
    from vgrc.evaluators.diagnostics.composition import classify_retrieved, mispaired_slots

    query = [obj("cube", "large", "red", "rubber"), obj("sphere", "small", "blue", "metal")]
    swapped = [obj("cube", "large", "blue", "rubber"), obj("sphere", "small", "red", "metal")]  # colours on the wrong objects
    assert classify_retrieved(query, query, True) == "target"
    assert classify_retrieved(query, [*query, obj("cylinder", "small", "gray", "metal")], False) == "all_grounded"
    assert classify_retrieved(query, swapped, False) == "pairing_error"
    assert classify_retrieved(query, [obj("cube", "large", "red", "rubber")], False) == "miss"  # blue, sphere… absent
    slots = mispaired_slots(query, swapped, noun_label="shape")
    assert [(s["category"], s["query_value"], s["image_value"], s["steerable"]) for s in slots] == [
        ("color", "red", "blue", True), ("color", "blue", "red", True)]
    # a shape swap: the best image object shares colour, size and material but not the noun
    shape_swap = mispaired_slots([obj("cube", "large", "red", "rubber")], [obj("cylinder", "large", "red", "rubber"), obj("cube", "small", "gray", "metal")], "shape")
    assert [(s["category"], s["steerable"]) for s in shape_swap] == [("shape", False)]


def test_interference_counts_from_hand_made_slot_scores():
    from vgrc.evaluators.diagnostics.composition import interference_summary, slot_scores

    # query 0: 2 objects (4 slots), query 1: 1 object (2 slots), query 2: 3 objects (3 slots)
    slot_query = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    cats = ["shape", "color", "shape", "color", "shape", "color", "shape", "color", "material"]
    base = np.array([0.5, 0.5, 0.2, 0.2, 0.3, 0.3, 0.1, 0.1, 0.1])
    steered = np.array([0.4, 0.7, 0.1, 0.2, 0.3, 0.3, 0.2, 0.0, 0.0])
    s = interference_summary(base, steered, slot_query, cats, np.array([2, 1, 3]))
    assert s["queries_degraded"] == 2 and s["queries_improved"] == 2  # q0 and q2; q1 unchanged
    assert s["mean_degraded_when_improved"] == pytest.approx((2 + 2) / 2)  # q0: 2 shapes degrade; q2: colour + material
    assert s["by_objects"] == {1: {"queries": 1, "degraded": 0}, 2: {"queries": 1, "degraded": 1}, 3: {"queries": 1, "degraded": 1}}
    pair = {(p["improves"], p["degrades"]): p for p in s["pairs"]}
    assert pair[("color", "shape")]["queries"] == 1 and pair[("color", "shape")]["share"] == 1.0  # q0
    assert pair[("shape", "material")]["share"] == 1.0 and pair[("shape", "shape")]["share"] == 0.0  # q2
    # slot scores: share of the list's images carrying each slot (attributes on the slot's noun)
    q = [obj("cube", "red")]
    lists = [[obj("cube", "red")], [obj("cube", "blue"), obj("sphere", "red")], [obj("sphere", "red")]]
    assert slot_scores(q, lists, "shape") == [(0, "shape", pytest.approx(2 / 3)), (0, "color", pytest.approx(1 / 3))]


def test_merged_min_and_softmin_baselines_match_brute_force(shapes_dir, tmp_path):
    from vgrc.evaluators.diagnostics.composition import _merged_rank_tables

    prep = _prepared(shapes_dir, tmp_path)
    tables, obj_emb, present = _merged_rank_tables(prep, tau=0.05)
    sims = np.einsum("qnd,gd->qng", obj_emb, prep.images)
    brute = {"min": np.where(present[..., None], sims, np.inf).min(1),
             "softmin": -0.05 * np.log(np.where(present[..., None], np.exp(-sims / 0.05), 0).sum(1))}
    for name, S in brute.items():
        top, _, rank = tables[name]
        for q in range(len(S)):
            order = np.lexsort((np.arange(S.shape[1]), -S[q]))
            assert top[q].tolist() == order[:10].tolist()
            rel = set(prep.ev.relevant[q].tolist())
            assert rank[q] == next(i for i, g in enumerate(order) if g in rel)


def test_diagnose_composition_cli(shapes_dir, tmp_path):
    out = tmp_path / "comp"
    args = ["diagnose", "composition", "--data", str(shapes_dir), "--model", "tiny-random", "--steer-alpha", "0.5,1",
            "--out", str(out), "--cache-dir", str(tmp_path / "c"), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    s = json.loads((out / "run.json").read_text())["summary"]
    p = s["pairing"]
    assert p["retrieved"] == 10 * s["queries"] == sum(p[c] for c in ("target", "pairing_error", "all_grounded", "miss"))
    assert sum(p["by_category"].values()) == p["mispaired_slots"] and s["noun_label"] == "shape"
    assert [r["steer_alpha"] for r in s["interference"]] == [0.5, 1.0]
    assert s["baselines"]["clip"]["R@10"] == pytest.approx(_prepared(shapes_dir, tmp_path).cosine(10)[2].__lt__(10).mean())
    for name in ("per_object.csv", "baselines.csv", "pairing_errors.csv", "interference.csv", "interference_pairs.csv", "composition.md"):
        assert (out / name).stat().st_size > 0
    assert (out / "composition.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # App. J's two-stage rows (issue 22 §4) equal vgrc eval's steer-min / steer-softmin with the same pool
    from vgrc.evaluators.pipeline import EvalConfig, run_eval

    for name in ("steer-min", "steer-softmin"):
        row = s["baselines"][f"two-stage {name} (pool 60)"]
        m = run_eval(EvalConfig(data=str(shapes_dir), out=str(tmp_path / name), model="tiny-random", rerank=name, k=60, cache_dir=str(tmp_path / "c")))
        assert row["R@10"] == pytest.approx(m["t2i_R@10"]) and row["R@1"] == pytest.approx(m["t2i_R@1"]) and row["pool_recall"] == 1.0


def test_targeted_steering_corrects_a_colour_swap_in_an_additive_space():
    """Words are orthogonal unit vectors and a phrase is their normalised sum: the direction
    normalize(e(red) − e(blue)) turns "blue cube" into "red cube" once α is large enough."""
    from types import SimpleNamespace

    from vgrc.evaluators.diagnostics.composition import _targeted, mispaired_slots
    from vgrc.evaluators.first_stage.search import normalize
    from vgrc.evaluators.rerankers.context import ObjectTable

    words = ["cube", "sphere", "red", "blue", "green"]

    def embed(phrases):
        return normalize(np.stack([sum(np.eye(8)[words.index(w)] for w in p.split()) for p in phrases]))

    query = [obj("cube", "red"), obj("sphere", "blue")]
    image = [obj("cube", "blue"), obj("sphere", "red"), obj("cube", "green")]
    slots = [{**s, "query": 0} for s in mispaired_slots(query, image, "shape")]
    # red cube: its colour sits on the blue cube (steerable); blue sphere: the best image
    # object (ties → first) is the blue cube, which lacks the noun: a shape slot, not steerable
    assert [(s["category"], s["steerable"]) for s in slots] == [("color", True), ("shape", False)]
    phrases = ["blue sphere", "red cube"]
    table = ObjectTable.build([["red cube", "blue sphere"]], {p: i for i, p in enumerate(phrases)}, embed(phrases))
    ev = SimpleNamespace(objects=[image], query_objects=[query])
    prep = SimpleNamespace(ev=ev, phrases=phrases, q_table=table, embed_phrases=embed, cosine=lambda k, q: (None, None, np.zeros(1, np.int64)))
    word_emb = {w: embed([w])[0] for w in ("red", "blue")}
    emb, present = table.emb()[None][0][None], (table.weight > 0)
    # x ∝ c + (1 − α) b + α r: nearer "red cube" than "blue cube" once α > 1/2
    assert _targeted(prep, slots, word_emb, emb, present, 0.4, None)[0] == 0.0
    assert _targeted(prep, slots, word_emb, emb, present, 1.5, None)[0] == 1.0


def test_fgw_alpha_hungarian_reference_takes_the_datasets_costs_and_the_option(shapes_dir, tmp_path):
    """Issue 22 §4: the Hungarian reference of the α sweep used surplus 0.0 whatever the
    dataset; it now takes Synthetic Shapes' recommended 1.0, and --surplus-cost when given."""
    args = ["diagnose", "fgw-alpha", "--data", str(shapes_dir), "--model", "tiny-random", "--fgw-alpha", "0.5", "--k", "10",
            "--cache-dir", str(tmp_path / "c"), "-q"]
    runs = {}
    for name, extra in (("default", []), ("zero", ["--surplus-cost", "0"])):
        result = CliRunner().invoke(app, [*args, *extra, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        runs[name] = json.loads((tmp_path / name / "run.json").read_text())["summary"]["hungarian_costs"]
    assert runs["default"]["surplus_cost"] == 1.0 and runs["default"]["from"]["surplus_cost"] == "the dataset's recommendation"
    assert runs["zero"]["surplus_cost"] == 0.0 and runs["zero"]["from"]["surplus_cost"] == "given"


def test_k_sweep_fixes_alpha_at_the_main_runs_best_by_default(shapes_dir, tmp_path):
    """Issue 22 §4 (App. D: α "fixed to the best value from the main FGW run"): without
    --fgw-alpha, k-sweep's α is the one whose main-run R@1 is the best over the grid, which
    diagnose fgw-alpha measures on the same shortlist independently."""
    base = ["--data", str(shapes_dir), "--model", "tiny-random", "--k", "10", "--cache-dir", str(tmp_path / "c"), "-q"]
    assert CliRunner().invoke(app, ["diagnose", "k-sweep", *base, "--k-values", "5,10", "--out", str(tmp_path / "ks")]).exit_code == 0
    assert CliRunner().invoke(app, ["diagnose", "fgw-alpha", *base, "--fgw-alpha", "0,0.25,0.5,0.75,1", "--out", str(tmp_path / "fa")]).exit_code == 0
    ks = json.loads((tmp_path / "ks" / "run.json").read_text())["summary"]
    sweep = {r["fgw_alpha"]: r["R@1"] for r in json.loads((tmp_path / "fa" / "run.json").read_text())["summary"]["sweep"]}
    assert "best R@1" in ks["fgw_alpha_from"] and ks["fgw_alpha"] in sweep
    assert ks["fgw_R@1"] == pytest.approx(max(sweep.values())) == pytest.approx(sweep[ks["fgw_alpha"]])
    assert ks["fgw_alpha"] == min(a for a, r in sweep.items() if r == max(sweep.values()))  # ties: the smaller α
    given = CliRunner().invoke(app, ["diagnose", "k-sweep", *base, "--k-values", "5,10", "--fgw-alpha", "0.75", "--out", str(tmp_path / "ks2")])
    assert given.exit_code == 0 and json.loads((tmp_path / "ks2" / "run.json").read_text())["summary"]["fgw_alpha"] == 0.75


def test_fgw_alpha_chooses_its_best_alpha_on_fit_rows_when_given(shapes_dir, tmp_path):
    """Issue 22 §4: with --fit-fraction, the best α is the one with the best R@1 on the
    held-out fit rows (ranked among themselves), computed here independently; without, the
    summary says the pick was made on the evaluated queries."""
    from vgrc.evaluators.diagnostics._common import prepare_rows
    from vgrc.evaluators.diagnostics.fgw_alpha import _final, ranked_metrics
    from vgrc.evaluators.pipeline import EvalConfig
    from vgrc.evaluators.rerankers.context import order_by_scores, rerank_scores
    from vgrc.evaluators.retrieval_data import load_retrieval

    base = ["diagnose", "fgw-alpha", "--data", str(shapes_dir), "--model", "tiny-random", "--k", "10", "--fgw-alpha", "0,0.5,1",
            "--cache-dir", str(tmp_path / "c"), "-q"]
    assert CliRunner().invoke(app, [*base, "--fit-fraction", "0.3", "--out", str(tmp_path / "fit")]).exit_code == 0
    s = json.loads((tmp_path / "fit" / "run.json").read_text())["summary"]
    assert "fit rows" in s["best_chosen_on"] and s["queries"] == 42  # 60 rows less the 30% hold-out
    config = EvalConfig(data=str(shapes_dir), model="tiny-random", k=10, cache_dir=str(tmp_path / "c"), fit_fraction=0.3)
    config.resolve_costs({"recommended": {"unmatched_cost": 1.0, "surplus_cost": 1.0}})
    _, fit_rows, info = load_retrieval(str(shapes_dir), fit_fraction=0.3, seed=0)
    fit = prepare_rows(config, lambda *a: None, fit_rows, None, info)
    topk, scores, rank1 = fit.cosine(10)
    best = max((ranked_metrics(fit, _final(topk, order_by_scores(topk, fit.scores("fgw", topk, scores, fgw_alpha=a))), rank1, 10)[0]["R@1"], -a)
               for a in (0.0, 0.5, 1.0))
    assert s["best"]["fgw_alpha"] == -best[1]
    assert CliRunner().invoke(app, [*base, "--out", str(tmp_path / "nofit")]).exit_code == 0
    assert "evaluated queries (optimistic" in json.loads((tmp_path / "nofit" / "run.json").read_text())["summary"]["best_chosen_on"]
