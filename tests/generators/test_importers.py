"""`vgrc import …` on hand-made fixtures in each release's real format, with its quirks."""

import json
from pathlib import Path
import re

import numpy as np
import pytest
from helpers import coco_instances as _coco_instances, jpeg as _jpeg, one_error_line, tree_digest, write_sugarcrepe
from typer.testing import CliRunner

from vgrc.cli.main import app
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.retrieval_data import load_retrieval
from vgrc.generators.importers import get_importer, list_importers
from vgrc.generators.importers.clevr_hope import import_clevr_hope, scene_caption
from vgrc.generators.importers.sugarcrepe import CATEGORIES, import_sugarcrepe
from vgrc.generators.importers.urban1k import import_urban1k
from vgrc.evaluators.objects.parsers import parse_rules, split_parts

runner = CliRunner()


@pytest.fixture
def sugarcrepe(tmp_path):
    """Two records per category (keys "0" and "2": one deleted upstream), stray white space,
    COCO images reused across records, one record whose image is missing."""
    return write_sugarcrepe(tmp_path)


def test_sugarcrepe_rows_counts_whitespace_and_hashes(sugarcrepe, tmp_path):
    src, coco = sugarcrepe
    r = import_sugarcrepe(src, coco, tmp_path / "out")
    assert r.counts["records"] == 14 and r.counts["per_category"] == {c: 2 for c in CATEGORIES}
    assert r.counts["missing_images"] == {"swap_obj": 1} and r.missing_images == 1
    rows = [json.loads(line) for line in (tmp_path / "out" / "test" / "metadata.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows[:2]] == ["add_att-0", "add_att-2"]
    first = rows[0]
    assert first["caption"] == "A man riding a red horse0." and first["caption_raw"] == "  A man riding a red  horse0.\n"
    assert first["negative_caption"] == "A man riding a blue horse0."
    assert [(o["noun"], o["attributes"], o["source"]) for o in first["caption_objects"]] == [("man", [], "parsed:rules"), ("horse", ["red"], "parsed:rules")]
    manifest = r.manifest
    assert len(manifest["sources"]) == 7 and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in manifest["sources"].values())
    assert manifest["recommended"] == {"unmatched_cost": 1.0, "surplus_cost": 0.0}
    # images are referenced, not copied, and the contract loader finds them
    ev, _, info = load_retrieval(tmp_path / "out", fit_fraction=0)
    assert len(ev) == 14 and all(p.exists() for p in ev.image_paths)
    # a reused image is relevant to every record that shows it
    i = ev.ids.index("add_att-2")
    same = {ev.ids[j] for j in ev.relevant[i]}
    assert same == {r["id"] for r in rows if r["file_name"].endswith("000000000001.jpg")} and len(same) > 1
    # same command again: nothing rewritten
    before = tree_digest(tmp_path / "out")
    assert import_sugarcrepe(src, coco, tmp_path / "out").state == "complete" and tree_digest(tmp_path / "out") == before


def test_sugarcrepe_coco_annotations_give_the_image_objects(sugarcrepe, tmp_path):
    src, coco = sugarcrepe
    ann = {"images": [{"id": 1, "file_name": "000000000001.jpg"}], "categories": [{"id": 18, "name": "dog"}],
           "annotations": [{"image_id": 1, "category_id": 18, "bbox": [1, 2, 3, 4]}, {"image_id": 1, "category_id": 18, "bbox": [5, 6, 7, 8]}]}
    (tmp_path / "instances_val2017.json").write_text(json.dumps(ann))
    import_sugarcrepe(src, coco, tmp_path / "out", coco_annotations=tmp_path / "instances_val2017.json")
    rows = [json.loads(line) for line in (tmp_path / "out" / "test" / "metadata.jsonl").read_text().splitlines()]
    dogs = next(r for r in rows if r["id"] == "add_att-2")
    assert [(o["noun"], o["bbox"], o["source"]) for o in dogs["objects"]] == [("dog", [1, 2, 3, 4], "annotation"), ("dog", [5, 6, 7, 8], "annotation")]
    assert dogs["caption_objects"][0]["source"] == "parsed:rules"


def test_sugarcrepe_truncated_file_is_one_line_with_position(sugarcrepe, tmp_path):
    src, coco = sugarcrepe
    path = src / "data" / "replace_rel.json"
    path.write_text(path.read_text()[:60])
    result = runner.invoke(app, ["import", "sugarcrepe", "--src", str(src), "--coco-images", str(coco), "--out", str(tmp_path / "out")])
    line = one_error_line(result)
    assert "replace_rel.json: line 1, column" in line and "truncated" in line
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- CLEVR-HOPE


def _scene(i, objects, trimmed=False):
    objs = []
    for shape, color, material, size in objects:
        o = {"shape": shape, "color": color, "material": material, "size": size, "3d_coords": [0, 0, 0]}
        if not trimmed:
            o.update(pixel_coords=[1, 2, 3], rotation=10.0)
        objs.append(o)
    return {"image_index": i, "image_filename": f"CLEVR_val_{i:06d}.png", "split": "val", "objects": objs,
            "relationships": {"left": [[]] * len(objs), "right": [[]] * len(objs), "front": [[]] * len(objs), "behind": [[]] * len(objs)},
            "camera_jitter": [0.1, 0.2], "reuse_filename": None}


@pytest.fixture
def clevr(tmp_path):
    """9 scenes: one with a single object, one trimmed (no rotation/pixel_coords), one whose
    image is missing; so 7 eligible."""
    two = [("sphere", "red", "rubber", "large"), ("cube", "blue", "metal", "small")]
    three = [*two, ("cylinder", "gray", "rubber", "small")]
    scenes = [_scene(0, two), _scene(1, [two[0]]), _scene(2, three, trimmed=True)] + [_scene(i, two if i % 2 else three) for i in range(3, 9)]
    images = tmp_path / "images"
    for s in scenes:
        if s["image_index"] != 5:
            from PIL import Image

            images.mkdir(exist_ok=True)
            Image.new("RGB", (24, 16), (20 * s["image_index"], 90, 30)).save(images / s["image_filename"])
    (tmp_path / "scenes.json").write_text(json.dumps({"info": {"version": "1.0", "split": "val"}, "scenes": scenes}))
    return tmp_path / "scenes.json", images


def test_clevr_query_text_objects_and_counts(clevr, tmp_path):
    scenes, images = clevr
    r = import_clevr_hope(scenes, images, tmp_path / "out", subset=100)
    assert r.counts == {"scenes_in_file": 9, "eligible": 7, "images_missing": 1, "rows": 7, "objects_per_image": {"2": 3, "3": 4}}
    rows = [json.loads(line) for line in (tmp_path / "out" / "scenes" / "metadata.jsonl").read_text().splitlines()]
    assert rows[0]["caption"] == "a photo of a large red rubber sphere and a small blue metallic cube."  # the paper's example, its period too
    assert rows[1]["caption"] == "a photo of a large red rubber sphere, a small blue metallic cube and a small gray rubber cylinder."
    assert rows[0]["objects"][1] == {"noun": "cube", "attributes": ["small", "blue", "metallic"], "bbox": None, "source": "annotation"}
    assert rows[0]["caption_objects"] == rows[0]["objects"] and "left" in rows[0]["relationships"]
    assert r.manifest["recommended"]["surplus_cost"] == 1.0


def test_clevr_subset_is_seeded(clevr, tmp_path):
    scenes, images = clevr
    ids = []
    for seed in (0, 0, 1, 2, 3):
        out = tmp_path / f"s{len(ids)}"
        import_clevr_hope(scenes, images, out, subset=3, seed=seed)
        ids.append([json.loads(line)["id"] for line in (out / "scenes" / "metadata.jsonl").read_text().splitlines()])
    assert ids[0] == ids[1] and all(len(i) == 3 for i in ids)
    assert len({tuple(i) for i in ids[2:]} | {tuple(ids[0])}) > 1  # another seed draws another subset


def test_scene_caption_template():
    objs = [{"noun": "sphere", "attributes": ["large", "red", "rubber"]}]
    assert scene_caption(objs, "{objects} on a table") == "a large red rubber sphere on a table"


def test_clevr_truncated_and_bad_options_are_one_line(clevr, tmp_path):
    scenes, images = clevr
    text = scenes.read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(text[: len(text) // 2])
    line = one_error_line(runner.invoke(app, ["import", "clevr-hope", "--scenes", str(bad), "--images", str(images), "--out", str(tmp_path / "o")]))
    assert "bad.json: line 1" in line and "truncated" in line and not (tmp_path / "o").exists()
    line = one_error_line(runner.invoke(app, ["import", "clevr-hope", "--scenes", str(scenes), "--images", str(images), "--out", str(tmp_path / "o"), "--template", "a {scene}"]))
    assert "--template 'a {scene}'" in line
    line = one_error_line(runner.invoke(app, ["import", "clevr-hope", "--scenes", str(scenes), "--images", str(images), "--out", str(tmp_path / "o"), "--subset", "0"]))
    assert "--subset must be ≥ 1, got 0" in line


# --------------------------------------------------------------------------- Urban1K


@pytest.fixture
def urban(tmp_path):
    src = tmp_path / "Urban1k"
    for i in range(1, 5):
        _jpeg(src / "image" / f"{i}.jpg", 30 * i)
    (src / "caption").mkdir()
    (src / "caption" / "1.txt").write_text("A busy street at dusk. A red bus waits, and people cross; shops glow.\nSecond line of the file.\n")
    (src / "caption" / "2.txt").write_text("A quiet park with a green bench.")
    (src / "caption" / "3.txt").write_text("  A  harbour with boats.  ")
    (src / "caption" / "9.txt").write_text("no image for this one")  # and image 4 has no caption
    return src


def test_urban1k_pairs_whole_file_parts_and_first_line(urban, tmp_path):
    r = import_urban1k(urban, tmp_path / "out")
    assert r.counts["pairs"] == 3 and r.counts["images_without_caption"] == 1 and r.counts["captions_without_image"] == 1
    rows = {row["id"]: row for row in map(json.loads, (tmp_path / "out" / "pairs" / "metadata.jsonl").read_text().splitlines())}
    assert rows["1"]["caption"] == "A busy street at dusk. A red bus waits, and people cross; shops glow. Second line of the file."
    assert [o["noun"] for o in rows["1"]["caption_objects"]] == ["A busy street at dusk", "A red bus waits", "and people cross", "shops glow", "Second line of the file"]
    assert rows["3"]["caption"] == "A harbour with boats."
    assert "an oracle" in r.manifest["objects_source"]
    import_urban1k(urban, tmp_path / "first", first_line=True)
    first = {row["id"]: row for row in map(json.loads, (tmp_path / "first" / "pairs" / "metadata.jsonl").read_text().splitlines())}
    assert first["1"]["caption"] == "A busy street at dusk. A red bus waits, and people cross; shops glow."


# --------------------------------------------------------------------------- your own captions


def test_captions_csv_and_jsonl(tmp_path):
    for i in range(3):
        _jpeg(tmp_path / "photos" / f"p{i}.jpg", 50 * i)
    (tmp_path / "c.csv").write_text(
        'file_name,caption,objects\np0.jpg,"a red kite above a green field",\n'
        'p1.jpg,a cat,"[{""noun"": ""cat"", ""attributes"": [""sleepy""]}]"\nmissing.jpg,gone,\n'
    )
    r = get_importer("captions")(tmp_path / "photos", tmp_path / "c.csv", tmp_path / "out")
    assert r.counts == {"rows": 2, "images_missing": 1, "captions_empty": 0, "objects_parsed_rows": 1, "objects_annotated_rows": 1}
    rows = [json.loads(line) for line in (tmp_path / "out" / "images" / "metadata.jsonl").read_text().splitlines()]
    assert [(o["noun"], o["attributes"], o["source"]) for o in rows[0]["objects"]] == [("kite", ["red"], "parsed:rules"), ("field", ["green"], "parsed:rules")]
    assert rows[1]["objects"] == [{"noun": "cat", "attributes": ["sleepy"], "bbox": None, "source": "annotation"}]
    (tmp_path / "c.jsonl").write_text('{"file_name": "p2.jpg", "caption": "a boat"}\n{"file_name": "p0.jpg", "caption": \n')
    line = one_error_line(runner.invoke(app, ["import", "captions", "--images", str(tmp_path / "photos"), "--captions", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "o2")]))
    assert "c.jsonl:2: not valid JSON" in line and not (tmp_path / "o2").exists()


def test_captions_csv_written_by_a_spreadsheet_with_a_bom_and_empty_captions(tmp_path):
    """Issue 21: "CSV UTF-8" (a byte-order mark before the header) is accepted; rows with an
    empty caption are skipped, counted and named in one warning line."""
    for i in range(3):
        _jpeg(tmp_path / "photos" / f"p{i}.jpg", 50 * i)
    (tmp_path / "c.csv").write_bytes("file_name,caption\r\np0.jpg,a red café\r\np1.jpg,\r\np2.jpg,a blue boat\r\n".encode("utf-8-sig"))
    result = runner.invoke(app, ["import", "captions", "--images", str(tmp_path / "photos"), "--captions", str(tmp_path / "c.csv"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if line.strip()] == [f"warning: --captions {tmp_path / 'c.csv'}: 1 row(s) with an empty caption skipped (lines 3)"]
    rows = [json.loads(line) for line in (tmp_path / "out" / "images" / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["caption"] for r in rows] == ["a red café", "a blue boat"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]["captions_empty"] == 1


def test_registry_and_parser_registry():
    from vgrc.evaluators.objects.parsers import get_object_parser

    assert list_importers() == ["sugarcrepe", "clevr-hope", "urban1k", "captions"]
    with pytest.raises(InvalidInputError, match="did you mean 'clevr-hope'"):
        get_importer("clevr_hope")
    with pytest.raises(InvalidInputError, match="unknown --object-parser 'gpt'; valid: rules, spacy, llm"):
        get_object_parser("gpt")
    from vgrc.evaluators.errors import ModelUnavailableError

    with pytest.raises(ModelUnavailableError, match="--parser-model 'Qwen/Qwen2.5-1.5B-Instruct' is not available offline"):
        get_object_parser("llm")  # the default model, not cached here: one line, no download loop


def test_rules_parser_on_templated_and_natural_captions():
    got = lambda c: [(o["noun"], o["attributes"]) for o in parse_rules(c)]  # noqa: E731
    assert got("a photo of a large red rubber sphere and a small blue metallic cube") == [("sphere", ["large", "red", "rubber"]), ("cube", ["small", "blue", "metallic"])]
    assert got("blue circle, green star, red pentagon") == [("circle", ["blue"]), ("star", ["green"]), ("pentagon", ["red"])]
    assert got("A man with a red umbrella standing next to a wooden dining table.") == [("man", []), ("umbrella", ["red"]), ("dining table", ["wooden"])]
    assert got("A red car is parked near a tall building") == [("car", ["red"]), ("building", ["tall"])]
    assert split_parts("One. Two, three; four") == ["One", "Two", "three", "four"]


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def imported(clevr, sugarcrepe, urban, tmp_path):
    """Every importer's output, from the fixtures above."""
    scenes, images = clevr
    import_clevr_hope(scenes, images, tmp_path / "clevr", subset=100)
    src, coco = sugarcrepe
    import_sugarcrepe(src, coco, tmp_path / "sugar")
    import_urban1k(urban, tmp_path / "urban")
    _jpeg(tmp_path / "photos" / "p0.jpg", 5)
    _jpeg(tmp_path / "photos" / "p1.jpg", 99)
    (tmp_path / "mine.jsonl").write_text('{"file_name": "p0.jpg", "caption": "a red kite"}\n{"file_name": "p1.jpg", "caption": "a blue boat and a dog"}\n')
    get_importer("captions")(tmp_path / "photos", tmp_path / "mine.jsonl", tmp_path / "mine")
    return {name: tmp_path / name for name in ("clevr", "sugar", "urban", "mine")}


@pytest.mark.parametrize("rerank", ["none", "hungarian", "fgw"])
def test_retrieval_runs_on_every_imported_dataset(imported, tmp_path, rerank):
    """Every importer's dataset × reranker, end to end with tiny-random: the contract is
    all eval needs, and every output says where the per-object sets came from."""
    from vgrc.evaluators.pipeline import EvalConfig, run_eval

    for name, data in imported.items():
        out = tmp_path / f"run-{name}-{rerank}"
        m = run_eval(EvalConfig(data=str(data), out=str(out), model="tiny-random", rerank=rerank, k=5, fit_fraction=0, cache_dir=str(tmp_path / "cache")))
        assert 0 <= m["t2i_R@1"] <= m["t2i_R@10"] <= 1 and np.isfinite(m["t2i_nDCG@10"]) and "t2i_CAS-noun@10" in m
        assert "per-object sets come from" in (out / "metrics.md").read_text()


# --------------------------------------------------------------------------- ITM (SugarCrepe's protocol)


def test_itm_accuracy_by_hand():
    from vgrc.evaluators.tasks.itm import itm_accuracy

    pos = np.array([0.9, 0.2, 0.5, 0.5, 0.7, 0.1])
    neg = np.array([0.1, 0.3, 0.5, 0.4, 0.6, 0.0])
    cats = ["add_att", "add_att", "swap_obj", "swap_obj", "replace_rel", "replace_rel"]
    got = itm_accuracy(pos, neg, cats)
    assert got["itm_acc_add_att"] == 0.5  # 0.9 > 0.1 yes, 0.2 > 0.3 no
    assert got["itm_acc_swap_obj"] == 0.5  # a tie (0.5 = 0.5) counts as wrong
    assert got["itm_acc_replace_rel"] == 1.0
    assert got["itm_acc_add"] == 0.5 and got["itm_acc_replace"] == 1.0 and got["itm_acc_swap"] == 0.5
    assert got["itm_acc_macro"] == pytest.approx(2 / 3) and got["itm_ties"] == 1


def test_sharded_itm_equals_one_process(sugarcrepe, tmp_path):
    """`--task itm --rerank fgw --shards 2`: the ranks share the encoding and score a block
    of captions each; accuracies and per-pair scores equal one process's."""
    from helpers import eval_one_and_sharded

    src, coco = sugarcrepe
    import_sugarcrepe(src, coco, tmp_path / "sugar", coco_annotations=_coco_instances(tmp_path))
    one, two = eval_one_and_sharded(tmp_path, "--data", tmp_path / "sugar", "--model", "tiny-random", "--task", "itm", "--rerank", "fgw", "--batch-size", "1")
    assert one == two and one["n_pairs"] == 14 and "stage1_itm_acc_macro" in one


@pytest.mark.parametrize("rerank", ["none", "hungarian", "fgw"])
def test_itm_end_to_end_against_a_manual_computation(sugarcrepe, tmp_path, rerank):
    """Cosine accuracy recomputed from the encoder directly; reranked scores are
    minus the solver's cost of each caption's objects against the image's objects."""
    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model
    from vgrc.evaluators.tasks.itm import itm_accuracy
    from vgrc.evaluators.pipeline import EvalConfig, run_eval

    src, coco = sugarcrepe
    import_sugarcrepe(src, coco, tmp_path / "sugar", coco_annotations=_coco_instances(tmp_path))
    out = tmp_path / f"itm-{rerank}"
    m = run_eval(EvalConfig(data=str(tmp_path / "sugar"), out=str(out), model="tiny-random", task="itm", rerank=rerank, cache_dir=str(tmp_path / "cache")))
    rows = [json.loads(line) for line in (tmp_path / "sugar" / "test" / "metadata.jsonl").read_text().splitlines()]
    enc = ClipEncoder(resolve_model("tiny-random"))
    img = enc.encode_image_bytes([(r["file_name"], (tmp_path / "sugar" / "test" / r["file_name"]).read_bytes()) for r in rows])
    pos, neg = enc.encode_texts([r["caption"] for r in rows]), enc.encode_texts([r["negative_caption"] for r in rows])
    ref = itm_accuracy((img * pos).sum(1), (img * neg).sum(1), [r["category"] for r in rows])
    prefix = "" if rerank == "none" else "stage1_"
    assert m[f"{prefix}itm_acc_macro"] == pytest.approx(ref["itm_acc_macro"], abs=1e-6)
    # i2t over all 28 captions (positives and hard negatives), by brute force
    keys = [r["file_name"] for r in rows]
    gallery = np.concatenate([pos, neg])
    hits, n_images = 0, 0
    for key in dict.fromkeys(keys):
        own = [j for j, k in enumerate(keys) if k == key]
        order = np.argsort(-(gallery @ img[own[0]]), kind="stable")
        hits += bool(set(order[:5].tolist()) & set(own))
        n_images += 1
    assert m["i2t_n_images"] == n_images == 4 and m["i2t_R@5"] == pytest.approx(hits / n_images)
    assert m["n_pairs"] == 14 and set(m) >= {"itm_acc_add", "itm_acc_replace", "itm_acc_swap"}
    frame = __import__("pandas").read_parquet(out / "per_query.parquet")
    assert (frame.correct_final == (frame.score_pos_final > frame.score_neg_final)).all()
    if rerank != "none":
        # the image's objects are COCO's ("man", "horse"), not the positive caption's ("man", "red horse"):
        # the positive no longer matches at cost 0 by construction (issue 22 §4: that was circular)
        row = frame[frame.query_id == "add_att-0"].iloc[0]
        assert row.score_pos_final < -1e-6 and row.score_pos_final != row.score_neg_final


# --------------------------------------------------------------------------- llm / spacy object parsers


def test_llm_answers_are_parsed_or_recorded_as_unparsable():
    from vgrc.evaluators.objects.parsers import parse_llm_answer

    assert parse_llm_answer('```json\n[{"noun": "Dog", "attributes": ["brown", " "]}]\n```') == [
        {"noun": "dog", "attributes": ["brown"], "bbox": None, "source": "parsed:llm"}]
    assert parse_llm_answer('[] trailing') == []
    for bad in ("no json here", '[{"name": "dog"}]', "[1, 2]", '[{"noun": ""}]', '[{"noun": "dog"'):
        assert parse_llm_answer(bad) is None


def test_llm_parser_loads_through_from_pretrained_and_caches(tiny_llm, tmp_path):
    from vgrc.evaluators.objects.parsers import get_object_parser

    parser = get_object_parser("llm", str(tiny_llm), cache_dir=str(tmp_path / "cache"))
    captions = ["a red kite above a green field", "two dogs on a lawn"]
    first = [parser(c) for c in captions]
    assert parser.generated == 2
    for objs in first:  # a random model's answer does not parse: recorded, rules fallback, flagged
        assert objs and all(o["source"] in ("parsed:llm", "parsed:rules (llm answer unparsable)") for o in objs)
    again = get_object_parser("llm", str(tiny_llm), cache_dir=str(tmp_path / "cache"))
    assert [again(c) for c in captions] == first and again.generated == 0  # answered from the cache
    assert len(again.cache_path.read_text().splitlines()) == 2


def test_import_captions_with_the_llm_parser(tiny_llm, tmp_path, monkeypatch):
    monkeypatch.setenv("VGRC_CACHE", str(tmp_path / "cache"))
    _jpeg(tmp_path / "photos" / "a.jpg", 10)
    (tmp_path / "c.jsonl").write_text('{"file_name": "a.jpg", "caption": "a red kite"}\n')
    result = runner.invoke(app, ["import", "captions", "--images", str(tmp_path / "photos"), "--captions", str(tmp_path / "c.jsonl"),
                                 "--out", str(tmp_path / "out"), "--object-parser", "llm", "--parser-model", str(tiny_llm), "-q"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["parser_model"] == str(tiny_llm) and "llm_answers_unparsable" in manifest["counts"]
    line = one_error_line(runner.invoke(app, ["import", "captions", "--images", str(tmp_path / "photos"), "--captions", str(tmp_path / "c.jsonl"),
                                              "--out", str(tmp_path / "o2"), "--object-parser", "llm", "--parser-model", str(tmp_path / "no-model")]))
    assert "--parser-model" in line and "no-model" in line and not (tmp_path / "o2").exists()


def test_spacy_parser_missing_is_one_clear_line(tmp_path):
    # spaCy is not a dependency: when it is absent the user gets the install line
    try:
        import spacy  # noqa: F401

        pytest.skip("spaCy is installed here")
    except ImportError:
        pass
    _jpeg(tmp_path / "photos" / "a.jpg", 10)
    (tmp_path / "c.jsonl").write_text('{"file_name": "a.jpg", "caption": "a red kite"}\n')
    line = one_error_line(runner.invoke(app, ["import", "captions", "--images", str(tmp_path / "photos"), "--captions", str(tmp_path / "c.jsonl"),
                                              "--out", str(tmp_path / "o"), "--object-parser", "spacy"]))
    assert "pip install spacy" in line and "--object-parser rules" in line


def test_diagnose_all_on_clevr_hope_multi_attribute_objects(clevr, tmp_path):
    """App. A/J's composition analysis on CLEVR-HOPE's size/colour/material objects; `all`
    skips what does not apply (no single-object rows for geometry) with its reason."""
    from typer.testing import CliRunner

    from vgrc.cli.main import app

    scenes, images = clevr
    import_clevr_hope(scenes, images, tmp_path / "clevr", subset=100)
    out = tmp_path / "diag"
    result = CliRunner().invoke(app, ["diagnose", "all", "--data", str(tmp_path / "clevr"), "--model", "tiny-random", "--out", str(out),
                                      "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "skipped geometry (" in result.stdout and "single-object rows" in result.stdout
    summary = json.loads((out / "composition" / "run.json").read_text())["summary"]
    assert summary["noun_label"] == "shape" and summary["queries"] == 7
    cats = {line.split(",")[1] for line in (out / "composition" / "interference_pairs.csv").read_text().splitlines()[1:]}
    assert cats <= {"shape", "size", "color", "material"} and {"size", "color", "material"} <= cats
    for name in ("substitution", "k-sweep", "fgw-alpha", "composition"):
        assert json.loads((out / name / "run.json").read_text())["complete"]
    assert not (out / "geometry").exists()


def test_load_hf_gives_imported_images_an_image_column(tmp_path):
    """Issue 21: `load_dataset` on an imported folder gives `file_name` strings (the images
    stay in the user's folder); load_hf resolves them into an Image column."""
    from vgrc.evaluators.dataset import load_hf

    for i in range(2):
        _jpeg(tmp_path / "photos" / f"p{i}.jpg", 80 * i)
    (tmp_path / "c.csv").write_text("file_name,caption\np0.jpg,a red kite\np1.jpg,a blue boat\n")
    get_importer("captions")(tmp_path / "photos", tmp_path / "c.csv", tmp_path / "out")
    ds = load_hf(tmp_path / "out")
    assert list(ds) == ["images"] and ds["images"].num_rows == 2
    from PIL import Image

    with Image.open(tmp_path / "photos" / "p1.jpg") as want:
        assert ds["images"][1]["image"].size == want.size and ds["images"][1]["caption"] == "a blue boat"



def test_reranked_itm_without_coco_annotations_is_refused_as_circular(sugarcrepe, tmp_path):
    """Issue 22 §4: without COCO's instances the image's objects are parsed from the positive
    caption, so the positive matches at cost 0: accuracy would be 1 - ties. One line, before
    any encoding; cosine ITM on the same import still runs."""
    src, coco = sugarcrepe
    import_sugarcrepe(src, coco, tmp_path / "sugar")
    args = ["eval", "--data", str(tmp_path / "sugar"), "--model", "tiny-random", "--task", "itm", "--cache-dir", str(tmp_path / "c")]
    line = one_error_line(runner.invoke(app, [*args, "--rerank", "hungarian", "--out", str(tmp_path / "r1")]))
    assert "circular" in line and "--coco-annotations" in line and not (tmp_path / "c").exists() and not (tmp_path / "r1").exists()
    assert runner.invoke(app, [*args, "--rerank", "none", "--out", str(tmp_path / "r2"), "-q"]).exit_code == 0
