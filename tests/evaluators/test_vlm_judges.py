"""App. G's VLM judges on a tiny random Qwen2.5-VL, and the shared judgement store."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from vgrc.evaluators.judges.store import JudgmentStore, judgment_key
from vgrc.evaluators.judges.vlm import CAS_PROMPT, QAS_PREFIX, QAS_PROMPT, QwenAppGJudge, parse_json_answer, prompt_hash

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "geometry-aware-clip-retrieval.txt"


def _paper_text(start: str, end: str) -> str:
    text = REFERENCE.read_text(encoding="utf-8")
    seg = text[text.index(start): text.index(end, text.index(start)) + len(end)]
    return seg.replace("- •\n", "- ")  # the extraction's bullets


@pytest.mark.skipif(not REFERENCE.exists(), reason="the paper's text is beside the checkout (../shared) in CI and development")
def test_prompts_are_app_g_verbatim():
    qas = _paper_text("You are evaluating image-to-text retrieval relevance.", '"reason": str }')
    assert QAS_PROMPT.replace("{{", "{").replace("}}", "}") == qas
    cas = _paper_text("You are evaluating whether an image contains a specific object", 'based only on visible evidence" }')
    # the extraction lost a line break ("Target noun: {noun}Return JSON"): restored, nothing else changed
    assert "{noun}Return" in cas and "{noun}Return" not in CAS_PROMPT
    assert CAS_PROMPT.replace("{{", "{").replace("}}", "}") == cas.replace("{noun}Return", "{noun}\nReturn")
    assert QAS_PROMPT.format(query="a red car").count("a red car") == 1 and prompt_hash(QAS_PROMPT) != prompt_hash(CAS_PROMPT)


def _images(n):
    from PIL import Image

    return [Image.new("RGB", (56, 56), (40 * i % 256, 90, 160)) for i in range(n)]


def test_qas_logits_equal_a_manual_computation(tiny_qwen):
    import torch

    judge = QwenAppGJudge(str(tiny_qwen), device="cpu", batch_size=2)
    images, queries = _images(3), ["a red car", "two dogs on a lawn", "a blue boat"]
    got = judge.qas(images, queries)
    for img, q, g in zip(images, queries, got):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QAS_PROMPT.format(query=q)}]}]
        text = judge.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + QAS_PREFIX
        inputs = judge.processor(text=[text], images=[img], return_tensors="pt")
        with torch.no_grad():
            logits = judge.model(**inputs).logits[0, -1].float()
        digits = [judge.processor.tokenizer.encode(str(d), add_special_tokens=False)[0] for d in range(5)]
        p = torch.softmax(logits[digits], dim=-1).numpy()
        assert g["expected_grade"] == pytest.approx(float(p @ np.arange(5)), abs=1e-4) and g["grade"] == g["argmax"] == int(p.argmax())
        assert 0 <= g["grade"] <= 4 and sum(g["probs"]) == pytest.approx(1, abs=1e-5)
    conf = judge.attribute_noun(images[:2], ["car", "boat"], ["red", "blue"])
    assert all(0 < c["confidence"] < 1 for c in conf)


def test_json_mode_records_unparsable_answers(tiny_qwen):
    judge = QwenAppGJudge(str(tiny_qwen), device="cpu")
    for rec in judge.qas(_images(1), ["a red car"], mode="json") + judge.attribute_noun(_images(1), ["car"], ["red"], mode="json"):
        assert rec["mode"] == "json" and isinstance(rec["raw"], str)
        assert rec["parsed"] is (rec.get("grade", rec.get("confidence")) is not None)  # a random model's text: recorded, no crash


def test_parse_json_answer():
    assert parse_json_answer('Sure! {"relevance_score": 3, "confidence": 0.8} trailing') == {"relevance_score": 3, "confidence": 0.8}
    assert parse_json_answer("no json") is None and parse_json_answer('{"a": [1, 2') is None


def test_store_reuses_resumes_and_skips_a_torn_line(tmp_path):
    store = JudgmentStore(tmp_path, "qwen-7b@rev1")
    keys = [judgment_key("qwen-7b@rev1", "p1", f"query {i}", f"sha{i}") for i in range(3)]
    store.add([(keys[0], {"grade": 3.0}), (keys[1], {"grade": 1.5})])
    with open(store.path, "a") as fh:
        fh.write('{"key": "x", "value": {"grade"')  # killed mid-write
    again = JudgmentStore(tmp_path, "qwen-7b@rev1")
    assert again.get(keys[0]) == {"grade": 3.0} and keys[1] in again and keys[2] not in again
    assert again.corrupt_lines == 1
    again.add([(keys[2], {"grade": 0.0})])  # the run resumes: only the missing pair is asked
    assert again.added == 1 and len(JudgmentStore(tmp_path, "qwen-7b@rev1").values) == 3
    other = JudgmentStore(tmp_path, "qwen-32b@rev1")  # another judge never sees these answers
    assert not other.values and other.path != store.path
    assert judgment_key("m", "p", "q", "i") != judgment_key("m", "p2", "q", "i")
    assert re.fullmatch(r"[0-9a-f]{64}", keys[0])
    json.loads(store.path.read_text().splitlines()[0])


def test_nac_judgment_cache_survives_a_torn_line_too(tmp_path):
    from vgrc.evaluators.judges.verify import JudgmentCache

    cache = JudgmentCache(tmp_path / "judgments.jsonl", "m")
    cache.add([("a", 0.9)])
    with open(cache.path, "a") as fh:
        fh.write('{"key": "b", "p_y')  # killed mid-write
    JudgmentCache(cache.path, "m").add([("c", 0.2)])
    assert JudgmentCache(cache.path, "m").values == {"a": 0.9, "c": 0.2}


# --------------------------------------------------------------------------- eval --relevance vlm


def _vlm_config(data, out, cache, judge, **kw):
    from vgrc.evaluators.pipeline import EvalConfig

    return EvalConfig(**{"data": str(data), "out": str(out), "model": "tiny-random", "k": 10, "limit": 12, "fit_fraction": 0.2,
                         "cache_dir": str(cache), "relevance": "vlm", "judge_model": str(judge), "judge_batch_size": 4, **kw})


def test_relevance_vlm_end_to_end_with_a_shared_store(shapes_dir, tiny_qwen, tmp_path):
    """Only the pairs of the reported top-10 lists are judged; nDCG@K equals App. H's formula
    on the judged grades; another reranker judges only the pairs it has not seen; a
    re-run judges nothing."""
    import pandas as pd

    from vgrc.evaluators.metrics import ndcg_at_k
    from vgrc.evaluators.pipeline import run_eval

    cache = tmp_path / "cache"
    m = run_eval(_vlm_config(shapes_dir, tmp_path / "a", cache, tiny_qwen))
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    info = run["diagnostics"]["vlm_relevance"]
    frame = pd.read_parquet(tmp_path / "a" / "per_query.parquet")
    pairs = {(q, g) for q in range(len(frame)) for g in range(10)}  # 12 queries over a 12-image gallery: all pairs are in some top 10
    assert info["pairs"] == len(frame) * 10 <= len(pairs) * 10
    assert info["judgements_made"] > 0 and info["judgements_reused"] == 0
    grades = np.array([list(g) for g in frame.judged_grades_final])
    assert grades.shape == (12, 10) and ((0 <= grades) & (grades <= 4)).all()
    assert m["t2i_nDCG@10"] == pytest.approx(ndcg_at_k(grades)["t2i_nDCG@10"])
    assert "VLM-judged relevance" in (tmp_path / "a" / "metrics.md").read_text()
    # another reranker on the same queries: the pairs it shares are reused, none asked twice
    run_eval(_vlm_config(shapes_dir, tmp_path / "b", cache, tiny_qwen, rerank="fgw"))
    second = json.loads((tmp_path / "b" / "run.json").read_text())["diagnostics"]["vlm_relevance"]
    assert second["judgements_reused"] > 0
    run_eval(_vlm_config(shapes_dir, tmp_path / "c", cache, tiny_qwen, rerank="fgw"))
    third = json.loads((tmp_path / "c" / "run.json").read_text())["diagnostics"]["vlm_relevance"]
    assert third["judgements_made"] == 0 and third["judgements_reused"] > 0


def test_relevance_vlm_on_an_imported_dataset_and_bad_judge(tiny_qwen, tmp_path):
    from PIL import Image

    from vgrc.evaluators.errors import ModelUnavailableError, VgrcError
    from vgrc.evaluators.pipeline import run_eval
    from vgrc.generators.importers import get_importer

    (tmp_path / "photos").mkdir()
    rows = []
    for i, cap in enumerate(["a red kite above a green field", "a blue boat", "two dogs on a lawn", "a yellow car near a tall building"]):
        Image.new("RGB", (40, 30), (60 * i, 120, 30)).save(tmp_path / "photos" / f"{i}.png")
        rows.append(json.dumps({"file_name": f"{i}.png", "caption": cap}))
    (tmp_path / "c.jsonl").write_text("\n".join(rows) + "\n")
    get_importer("captions")(tmp_path / "photos", tmp_path / "c.jsonl", tmp_path / "mine")
    m = run_eval(_vlm_config(tmp_path / "mine", tmp_path / "run", tmp_path / "cache", tiny_qwen, limit=None, fit_fraction=0, rerank="hungarian"))
    assert 0 <= m["t2i_nDCG@10"] <= 1 and 0 <= m["t2i_CAS-noun@10"] <= 1 and 0 <= m["t2i_CAS-gen@10"] <= 1
    with pytest.raises(ModelUnavailableError, match="judge model 'Qwen/nope' is not available offline"):
        run_eval(_vlm_config(tmp_path / "mine", tmp_path / "run2", tmp_path / "cache2", "Qwen/nope", limit=None, fit_fraction=0))
    assert not (tmp_path / "run2").exists() and not (tmp_path / "cache2").exists()  # failed before any encoding
    with pytest.raises(VgrcError, match="--relevance vlm grades retrieval and steering lists; --task itm"):
        _vlm_config(tmp_path / "mine", tmp_path / "r", tmp_path / "c3", tiny_qwen, task="itm").check()


def test_sharded_judging_equals_one_process(shapes_dir, tiny_qwen, tmp_path):
    """`--shards 2 --relevance vlm`: each rank asks every other batch of the same batches,
    into its own store file; metrics, grades and the store's answers equal one process's."""
    from helpers import eval_one_and_sharded

    from vgrc.evaluators.judges.store import JudgmentStore

    one, two = eval_one_and_sharded(tmp_path, "--data", shapes_dir, "--model", "tiny-random", "--k", "10", "--limit", "12",
                                    "--relevance", "vlm", "--judge-model", tiny_qwen, "--judge-batch-size", "4")
    assert one == two
    c1, c2 = tmp_path / "cache-one", tmp_path / "cache-two"
    files = sorted(p.name for p in (c2 / "judgments").iterdir())
    assert len(files) == 2 and any(".rank-1." in f for f in files)  # one file per writer
    judge_id = json.loads((tmp_path / "one" / "run.json").read_text())["diagnostics"]["vlm_relevance"]["judge_id"]
    assert JudgmentStore(c1, judge_id).values == JudgmentStore(c2, judge_id).values
    made = [json.loads((tmp_path / r / "run.json").read_text())["diagnostics"]["vlm_relevance"]["judgements_made"] for r in ("one", "two")]
    assert made[0] == made[1] > 0



@pytest.mark.skipif(not REFERENCE.exists(), reason="the paper's text is beside the checkout")
def test_nac_verifier_question_is_app_f_verbatim():
    from vgrc.evaluators.judges.verify import QUESTION

    assert f"\u201c{QUESTION}\u201d" in REFERENCE.read_text(encoding="utf-8")  # typographic quotes around {attr}, as printed


def test_answer_tokens_are_read_where_qwen2_writes_them(tiny_qwen):
    """Qwen2's pre-tokenizer writes '": true' as '":' + ' true': the judge reads ' true' /
    ' false' right after the colon (the old prefix ended in a space, a boundary the model
    never produces), and the digit after '": ' (a space token, then the digit)."""
    from transformers import AutoProcessor

    from vgrc.evaluators.judges.vlm import CAS_ANSWERS, CAS_PREFIX

    tok = AutoProcessor.from_pretrained(tiny_qwen).tokenizer
    enc = lambda text: tok.encode(text, add_special_tokens=False)  # noqa: E731
    for prefix, answers in ((CAS_PREFIX, CAS_ANSWERS), (QAS_PREFIX, [str(d) for d in range(5)])):
        for answer in answers:
            full = enc(prefix + answer + ', "confidence"')
            assert full[: len(enc(prefix))] == enc(prefix) and full[len(enc(prefix))] == enc(answer)[0] and len(enc(answer)) == 1
    assert enc('{"applicable": true')[: len(enc('{"applicable": '))] != enc('{"applicable": ')  # the old prefix: not a prefix


def test_a_json_answer_cut_at_the_token_limit_keeps_its_grade():
    from vgrc.evaluators.judges.vlm import JSON_MAX_NEW_TOKENS, answer_field

    cut = '{ "relevance_score": 3, "confidence": 0.8, "matched_elements": ["red car", "str'
    assert parse_json_answer(cut) is None and answer_field(cut, "relevance_score") == 3 and answer_field(cut, "confidence") == 0.8
    assert answer_field('{"applicable": false, "confidence": 0.9, "reas', "applicable") is False
    assert answer_field("no answer at all", "relevance_score") is None and JSON_MAX_NEW_TOKENS >= 256


def test_ndcg_uses_the_integer_grade_not_the_expectation(tmp_path):
    """App. H grades with integers 0–4. A logits judgement whose most likely digit is 0 but
    whose expectation is 1.2 makes a list topped by it score nDCG@1 = 0, not 1 (the expected
    grade is never 0, so nDCG@1 was 1.000 for every query). Stored records from before keep
    the expectation in "grade" and the argmax beside it: they are read the same way."""
    from PIL import Image

    from vgrc.evaluators.metrics import ndcg_at_k
    from vgrc.evaluators.judges.vlm import QAS_PROMPT
    from vgrc.evaluators.judges.relevance import judge_pairs

    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (8, 8), (90 * i, 0, 0)).save(paths[-1])
    import hashlib

    sha = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    store = JudgmentStore(tmp_path, "judge@1")
    qh = prompt_hash(QAS_PROMPT) + "logits"
    store.add([(judgment_key("judge@1", qh, "a red car", sha[0]), {"grade": 1.2, "argmax": 0, "mode": "logits"}),   # a pre-issue-22 record
               (judgment_key("judge@1", qh, "a red car", sha[1]), {"grade": 3, "argmax": 3, "expected_grade": 2.9, "mode": "logits"})])
    judged = judge_pairs([(0, 0), (0, 1)], ["a red car"], [[]], paths, judge_factory=lambda: None, judge_id="judge@1",
                         mode="logits", store_root=tmp_path)
    grades, _, _ = judged.matrices(np.array([[0, 1]]))
    assert grades.tolist() == [[0.0, 3.0]] and judged.made == 0
    assert ndcg_at_k(grades, ks=(1, 2))["t2i_nDCG@1"] == 0.0
    assert ndcg_at_k(grades, ks=(1, 2))["t2i_nDCG@2"] == pytest.approx((3 / np.log2(3)) / 3)


def test_cas_noun_stays_the_papers_annotation_measure_under_a_vlm_judge(shapes_dir, tiny_qwen, tmp_path):
    """Issue 22 §2: CAS-noun is defined on the scene graph's object tuples (App. J). With
    --relevance vlm on an annotated dataset it equals the symbolic run's (same lists), and the
    attribute-noun judge's figure is reported apart as CAS-noun-vlm."""
    from vgrc.evaluators.pipeline import run_eval

    vlm = run_eval(_vlm_config(shapes_dir, tmp_path / "vlm", tmp_path / "cache", tiny_qwen))
    sym = run_eval(_vlm_config(shapes_dir, tmp_path / "sym", tmp_path / "cache", tiny_qwen, relevance="symbolic"))
    for prefix in ("", "stage1_"):
        assert vlm[f"{prefix}t2i_CAS-noun@10"] == pytest.approx(sym[f"{prefix}t2i_CAS-noun@10"])
        assert 0 <= vlm[f"{prefix}t2i_CAS-noun-vlm@10"] <= 1 and f"{prefix}t2i_CAS-noun-vlm@10" not in sym


def test_a_query_with_an_unparsable_judgement_is_left_out_not_scored_zero(tmp_path):
    """Issue 22 §2: json mode, two queries; q1's second image got an unparsable answer. nDCG
    averages over q0 alone (scoring the unparsable one 0 would lower q1's nDCG and the mean)."""
    import hashlib

    from PIL import Image

    from vgrc.evaluators.metrics import ndcg_at_k
    from vgrc.evaluators.tasks.grading import JudgedGrader
    from vgrc.evaluators.judges.vlm import QAS_PROMPT
    from vgrc.evaluators.judges.relevance import judge_pairs

    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (8, 8), (0, 90 * i, 0)).save(paths[-1])
    sha = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    qh = prompt_hash(QAS_PROMPT) + "json"
    answers = {("q0", 0): 4, ("q0", 1): 1, ("q1", 0): 2, ("q1", 1): None}
    JudgmentStore(tmp_path, "j@1").add([(judgment_key("j@1", qh, q, sha[g]), {"grade": a, "parsed": a is not None, "mode": "json"})
                                        for (q, g), a in answers.items()])
    judged = judge_pairs([(0, 0), (0, 1), (1, 0), (1, 1)], ["q0", "q1"], [[], []], paths, judge_factory=lambda: None, judge_id="j@1",
                         mode="json", store_root=tmp_path)
    m = JudgedGrader(judged, None).metrics(np.array([[0, 1], [0, 1]]), "t2i")
    assert judged.unparsable == 1 and m["t2i_judged_queries"] == 1.0
    assert m["t2i_nDCG@1"] == 1.0 and m["t2i_nDCG@5"] == pytest.approx(ndcg_at_k(np.array([[4.0, 1.0]]), ks=(5,))["t2i_nDCG@5"])
    assert m["t2i_CAS-gen@10"] == pytest.approx((4 / 4 + 1 / 4) / 10 * 10 / 2)  # q0's two grades / 4, averaged over its list
