"""`vgrc build-vg` on hand-made fixtures in the real Visual Genome format."""

import json
import re
from collections import Counter

import pytest
from helpers import one_error_line
from typer.testing import CliRunner
from vg_fixture import vg_records, write_vg

from vgrc.cli.main import app
from vgrc.evaluators.dataset import read_manifest, read_split
from vgrc.evaluators.errors import InvalidInputError
from vgrc.generators._util.json_stream import iter_json_array
from vgrc.generators.vg.build import VGConfig, build_vg
from vgrc.generators.vg.contrasts import SHIPPED_COUNTS, load_contrasts, normalize_term

runner = CliRunner()


@pytest.fixture
def vg(tmp_path):
    return write_vg(tmp_path / "vg", images=True)


def steering(out):
    return {r["id"]: r for r in map(json.loads, (out / "steering.jsonl").read_text().splitlines())}


def test_shipped_vocabulary_is_curated():
    pairs = load_contrasts()
    assert len(pairs) == 80 and Counter(p.category for p in pairs) == Counter(SHIPPED_COUNTS)
    for p in pairs:
        assert not set(p.a) & set(p.b)
        assert all(w == normalize_term(w) for w in p.a + p.b)
    assert len({frozenset((frozenset(p.a), frozenset(p.b))) for p in pairs}) == 80


def test_quirks_are_repaired_and_counted(vg, tmp_path):
    result = build_vg(tmp_path / "out", VGConfig(str(vg)))
    assert result.counts["images"] == 14  # the record without an id is dropped
    assert dict(result.repairs) == {
        "attribute_case_repaired": 4,
        "attribute_duplicates_merged": 10,
        "attribute_empty_dropped": 10,
        "attribute_trailing_period_removed": 2,
        "attribute_whitespace_repaired": 12,
        "noun_case_repaired": 11,
        "noun_empty_dropped": 1,
        "objects_name_string": 1,
        "objects_not_object_dropped": 1,
        "objects_v1_object_names_key": 1,
        "objects_without_attributes": 1,
        "objects_without_name_dropped": 1,
        "records_v1_id_key": 1,
        "records_without_image_id_dropped": 1,
    }
    rows = {r["id"]: r for r in read_split(tmp_path / "out", "images")}
    assert rows["13"]["objects"][1] == {"noun": "bench", "attributes": ["wooden"], "bbox": [10.0, 20.0, 30.0, 40.0]}
    assert rows["14"]["objects"][0]["noun"] == "sky" and rows["14"]["objects"][0]["attributes"] == ["blue", "clear"]
    assert rows["13"]["objects"][0] == {"noun": "tree", "attributes": [], "bbox": [10.0, 20.0, 30.0, 40.0]}
    assert rows["1"]["objects"][0]["attributes"] == ["red", "green"]  # empty string dropped
    # the corpus statistics count normalised mentions
    mentions = sum(len(o["attributes"]) for r in rows.values() for o in r["objects"])
    assert result.counts["attribute_mentions"] == mentions


@pytest.mark.parametrize("min_images, bus_qualifies", [(10, False), (9, True)])
def test_threshold_edge(vg, tmp_path, min_images, bus_qualifies):
    out = tmp_path / f"out{min_images}"
    build_vg(out, VGConfig(str(vg), min_images=min_images))
    ids = steering(out)
    assert ("bus|white->black" in ids) is bus_qualifies  # black on exactly 9 images
    assert "car|red->green" in ids and "dog|white->black" in ids  # 10 per pole


def test_synonym_aware_positives_both_directions(vg, tmp_path):
    out = tmp_path / "out"
    build_vg(out, VGConfig(str(vg)))
    rows = steering(out)
    red_green, green_red = rows["car|red->green"], rows["car|green->red"]
    assert red_green["source"] == ["red", "reddish"] and red_green["target"] == ["green", "greenish"]
    assert (red_green["source_query"], red_green["target_query"]) == ("a photo of a red car", "a photo of a green car")
    assert (green_red["source_query"], green_red["target_query"]) == ("a photo of a green car", "a photo of a red car")
    # "reddish", "Red ", "red." and "RED" all count as the red pole
    assert green_red["positives"] == [str(i) for i in range(1, 11)]
    assert red_green["positives"] == [str(i) for i in range(1, 11)]  # "green" and "greenish"
    white_black, black_white = rows["dog|white->black"], rows["dog|black->white"]
    assert white_black["negatives"] == ["11"]  # white ("whitish") and not black
    assert "12" in white_black["positives"] and "12" in black_white["positives"]  # both poles: positive only
    assert black_white["positives"] == [str(i) for i in range(1, 13)] and black_white["negatives"] == []
    meta = {r["id"]: r for r in read_split(out, "images")}
    assert meta["12"]["contrastive_attributes"] == [{"noun": "dog", "category": "color", "a": ["white", "whitish", "off white"], "b": ["black", "blackish"], "side": "both"}]
    assert {c["noun"] for c in meta["3"]["contrastive_attributes"]} == {"car", "dog"}  # bus does not qualify


def test_stats_and_manifest(vg, tmp_path):
    out = tmp_path / "out"
    result = build_vg(out, VGConfig(str(vg), check_images=True))
    assert (result.pairs_total, result.pairs_grounded) == (80, 2)
    lines = (out / "stats.csv").read_text().splitlines()
    assert lines[0] == "category,pairs,pairs_grounded,noun_pairs,steering_rows,count_both_dirs,percent"
    assert lines[1] == "color,14,2,2,4,43,100.0"  # car 10+10, dog 11+12
    assert lines[-1] == "TOTAL,80,2,2,4,43,"
    assert "2 of 80 contrastive pairs" in (out / "stats.md").read_text()
    manifest = read_manifest(out)
    assert manifest["corpus"]["images_missing_on_disk"] == 1  # image 14
    assert manifest["pairs_grounded"] == 2 and manifest["repairs"]["records_v1_id_key"] == 1
    rows = {r["id"]: r for r in read_split(out, "images")}
    assert (out / "images" / rows["2"]["file_name"]).resolve() == (vg / "VG_100K_2" / "2.jpg").resolve()
    assert (out / "images" / rows["5"]["file_name"]).resolve() == (vg / "VG_100K" / "5.jpg").resolve()
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "2 of 80 have at least one qualifying noun" in card


def test_without_image_data_images_are_found_in_either_folder(tmp_path):
    vg = write_vg(tmp_path / "vg", image_data=False, images=True)
    out = tmp_path / "out"
    build_vg(out, VGConfig(str(vg), check_images=True))
    rows = {r["id"]: r for r in read_split(out, "images")}
    assert (out / "images" / rows["4"]["file_name"]).resolve() == (vg / "VG_100K_2" / "4.jpg").resolve()
    assert rows["4"]["width"] is None


def test_user_contrasts_file(vg, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("- category: color\n  a: [white]\n  b: [black]\n- category: color\n  a: [red]\n  b: [green, Greenish.]\n")
    out = tmp_path / "out"
    result = build_vg(out, VGConfig(str(vg), contrasts=str(path), min_images=8))
    assert (result.pairs_total, result.pairs_grounded) == (2, 2)
    assert set(steering(out)) == {f"{noun}|{d}" for noun in ("dog", "bus") for d in ("white->black", "black->white")} | {"car|red->green", "car|green->red"}
    # this file's red pole has no "reddish": images 2 and 7 drop out
    assert steering(out)["car|green->red"]["positives"] == ["1", "3", "4", "5", "6", "8", "9", "10"]
    assert steering(out)["car|red->green"]["target"] == ["green", "greenish"]  # "Greenish." normalised


@pytest.mark.parametrize(
    "text, message",
    [
        ("- category: color\n  a: [white]\n  b: [white, black]\n", "entry 1 (color): 'white' in both poles"),
        ("- {category: color, a: [white], b: [black]}\n- {category: tone, a: [black], b: [white]}\n", "entry 2 (tone) duplicates entry 1"),
        ("- {category: color, a: [], b: [black]}\n", "entry 1 (color): 'a' must be a non-empty list"),
        ("- {category: state, a: [on], b: [off]}\n", "YAML reads on/off/yes/no as booleans"),
        ("- {category: color, a: [white], b: [black], c: [grey]}\n", "entry 1: unknown key(s) c"),
        ("- {a: [white], b: [black]}\n", "entry 1: 'category' must be a non-empty string"),
        ("- [white, black]\n", "entry 1 must be a mapping"),
        ("- {category: color, a: [white\n", "invalid YAML at line"),
        ("{}\n", "expected a non-empty YAML list"),
    ],
)
def test_invalid_contrast_files(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        load_contrasts(path)


def test_stream_reader_equals_json_load(tmp_path):
    path = write_vg(tmp_path / "vg") / "attributes.json"
    for chunk in (7, 64, 1 << 20):
        assert list(iter_json_array(path, chunk_chars=chunk)) == json.loads(path.read_text()) == vg_records()


# --------------------------------------------------------------------------- CLI and bad input


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_builds_and_reports(vg, tmp_path):
    result = run("build-vg", "--vg-dir", vg, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "14 images" in result.stdout and "2 of 80 pairs grounded" in result.stdout and "4 steering rows" in result.stdout


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda t: t[: len(t) // 2], re.compile(r"attributes\.json: line 1, column \d+: file ends inside")),
        (lambda t: t.replace('"names": ["car"]', '"names": [car]', 1), re.compile(r"attributes\.json: line 1, column \d+: Expecting value")),
        (lambda t: "{" + t, re.compile(r"attributes\.json: line 1, column 1: expected a JSON array")),
    ],
)
def test_malformed_json_one_line_nothing_written(vg, tmp_path, damage, message):
    path = vg / "attributes.json"
    path.write_text(damage(path.read_text()))
    line = one_error_line(run("build-vg", "--vg-dir", vg, "--out", tmp_path / "out"))
    assert message.search(line), line
    assert not (tmp_path / "out").exists()


def test_missing_files_and_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    line = one_error_line(run("build-vg", "--vg-dir", tmp_path / "empty", "--out", tmp_path / "o"))
    assert "attributes.json is missing; expected layout" in line
    line = one_error_line(run("build-vg", "--vg-dir", tmp_path / "nope", "--out", tmp_path / "o"))
    assert "is not a folder" in line
    assert not (tmp_path / "o").exists()


def test_cli_invalid_contrasts_and_options(vg, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {category: color, a: [white], b: [white]}\n")
    assert "entry 1 (color): 'white' in both poles" in one_error_line(run("build-vg", "--vg-dir", vg, "--out", tmp_path / "o", "--contrasts", bad))
    assert "--query-template" in one_error_line(run("build-vg", "--vg-dir", vg, "--out", tmp_path / "o", "--query-template", "a {color} {noun}"))
    assert "--min-images must be ≥ 1" in one_error_line(run("build-vg", "--vg-dir", vg, "--out", tmp_path / "o", "--min-images", "0"))


def test_output_usable_by_eval_loader(vg, tmp_path):
    from vgrc.evaluators.retrieval_data import load_retrieval

    build_vg(tmp_path / "out", VGConfig(str(vg)))
    ev, _, info = load_retrieval(tmp_path / "out", fit_fraction=0)
    assert info["split"] == "images" and len(ev) == 14
    assert ev.image_paths[1].resolve() == (vg / "VG_100K_2" / "2.jpg").resolve()


def test_caption_objects_are_exactly_what_the_caption_names():
    from vgrc.evaluators.retrieval_data import object_phrase
    from vgrc.generators.vg.build import CAPTION_PHRASES, caption_objects

    objects = [{"noun": f"n{i:02d}", "attributes": ["big"], "bbox": [i, 0, 1, 1]} for i in range(15)]
    objects += [{"noun": "n00", "attributes": ["big"], "bbox": [99, 0, 1, 1]}, {"noun": "sky", "attributes": [], "bbox": None}]
    named = caption_objects(objects)
    assert len(named) == CAPTION_PHRASES == 12
    assert [object_phrase(o) for o in named] == sorted({object_phrase(o) for o in objects if o["attributes"]})[:12]
    assert named[0]["bbox"] == [0, 0, 1, 1]  # the phrase's first object


def test_vg_queries_use_caption_objects_and_images_keep_all_objects(vg, tmp_path):
    from vgrc.evaluators.retrieval_data import load_retrieval, object_phrase

    build_vg(tmp_path / "out", VGConfig(str(vg)))
    ev, _, _ = load_retrieval(tmp_path / "out", fit_fraction=0)
    i = ev.ids.index("13")  # tree without attributes, wooden bench
    assert [object_phrase(o) for o in ev.query_objects[i]] == ["wooden bench"] == ev.captions[i].split(", ")
    assert {o["noun"] for o in ev.objects[i]} == {"tree", "bench"}
    for cap, objs in zip(ev.captions, ev.query_objects):
        assert ", ".join(object_phrase(o) for o in objs) == cap


def test_old_vg_build_without_caption_objects_is_refused(vg, tmp_path):
    from vgrc.evaluators.dataset import finish_dataset, read_jsonl, write_jsonl
    from vgrc.evaluators.errors import DatasetFolderError
    from vgrc.evaluators.retrieval_data import load_retrieval

    out = tmp_path / "out"
    build_vg(out, VGConfig(str(vg)))
    rows = read_jsonl(out / "images" / "metadata.jsonl")
    write_jsonl(out / "images" / "metadata.jsonl", [{k: v for k, v in r.items() if k != "caption_objects"} for r in rows])
    manifest = json.loads((out / "manifest.json").read_text())
    finish_dataset(out, "vg", manifest["config"], version="0", command="old", seed=None, splits=["images"], extra={"steering": "steering.jsonl"})
    with pytest.raises(DatasetFolderError, match="rebuild it"):
        load_retrieval(out, fit_fraction=0)
    # following that advice works: the old build (same options, older row format) is replaced
    old_config = {k: v for k, v in manifest["config"].items() if k != "rows_version"}
    finish_dataset(out, "vg", old_config, version="0", command="old", seed=None, splits=["images"], extra={"steering": "steering.jsonl"})
    with pytest.raises(DatasetFolderError, match="different dataset"):
        build_vg(out, VGConfig(str(vg)))
    assert build_vg(out, VGConfig(str(vg)), overwrite=True).state == "new"
    ev, _, _ = load_retrieval(out, fit_fraction=0)
    assert all(ev.query_objects)
