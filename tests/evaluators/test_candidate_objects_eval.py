"""``vgrc eval --candidate-objects`` end to end with the real open_clip models, the report's
oracle-gain table, the detector through transformers' ``from_pretrained``, bad inputs."""

import json

import pytest
from typer.testing import CliRunner

from vgrc.cli.main import app
from vgrc.evaluators.errors import VgrcError
from vgrc.evaluators.pipeline import EvalConfig, run_eval
from vgrc.evaluators.report import report_table

K = 10


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("region-cache")


def config(shapes_dir, out, cache_dir, **kw):
    return EvalConfig(**{"data": str(shapes_dir), "out": str(out), "model": "shapes-tiny", "k": K, "cache_dir": str(cache_dir), "limit": 24, **kw})


@pytest.mark.parametrize("source,extra", [("boxes", {}), ("boxes", {"region_pixels": "occlude"}), ("patches", {"regions": 3}), ("grid", {})])
def test_region_candidates_end_to_end_cached_and_recorded(shapes_dir, tmp_path, cache_dir, source, extra):
    m = run_eval(config(shapes_dir, tmp_path / "a", cache_dir, rerank="fgw", candidate_objects=source, **extra))
    assert 0 <= m["t2i_R@1"] <= m[f"t2i_shortlist_recall@{K}"]
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["config"]["candidate_objects"]["name"] == source
    regions = run["diagnostics"]["candidate_regions"]
    want = {"boxes": 3 * 24, "grid": 13 * 24}.get(source)
    if want is not None:  # Synthetic Shapes: three annotated boxes per composition; 4 + 9 grid cells
        assert regions["regions"] == want
    else:
        assert 2 * 24 <= regions["regions"] <= 3 * 24
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert any(f"regions cut from the pixels by --candidate-objects {source}" in n for n in metrics["notes"])
    run_eval(config(shapes_dir, tmp_path / "b", cache_dir, rerank="fgw", candidate_objects=source, **extra))
    again = json.loads((tmp_path / "b" / "run.json").read_text())
    assert again["encode"]["regions"]["encoded"] == 0  # every region came from the cache
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["t2i_R@1"] == m["t2i_R@1"]


def test_report_shows_the_share_of_the_oracle_gain_each_run_keeps(shapes_dir, tmp_path, cache_dir):
    runs = {}
    for source in ("annotations", "boxes"):
        run_eval(config(shapes_dir, tmp_path / source, cache_dir, rerank="hungarian", candidate_objects=source))
        runs[source] = json.loads((tmp_path / source / "metrics.json").read_text())
    md, _, _ = report_table([tmp_path / "annotations", tmp_path / "boxes"])
    o, b = runs["annotations"], runs["boxes"]
    assert o["t2i_R@1"] > o["stage1_t2i_R@1"]  # the oracle gains here, so the share is defined
    kept = (b["t2i_R@1"] - b["stage1_t2i_R@1"]) / (o["t2i_R@1"] - o["stage1_t2i_R@1"])
    row = next(line for line in md.splitlines() if line.startswith("| boxes | boxes |"))
    assert row.split("|")[-2].strip() == f"{kept:+.2f}"
    md, _, _ = report_table([tmp_path / "boxes"])
    assert "no oracle run given" in md


def test_a_region_source_for_a_reranker_that_ignores_it_is_warned_about(shapes_dir, tmp_path):
    cfg = config(shapes_dir, tmp_path / "x", None, rerank="min", candidate_objects="grid", grid_scales="4")
    lines = cfg.inert_options()
    assert any(line.startswith("--candidate-objects grid does nothing here: only --rerank hungarian / fgw") for line in lines)
    assert any(line.startswith("--grid-scales 4 does nothing here") for line in lines)


def test_surplus_regions_cost_nothing_unless_a_region_is_an_object(shapes_dir, tmp_path):
    """Synthetic Shapes recommends surplus 1.0 (whole-scene captions): boxes keep it (one box
    per object), patches and grid take 0 (a region is not an object), and say so."""
    for source, want in (("annotations", 1.0), ("boxes", 1.0), ("patches", 0.0), ("grid", 0.0)):
        cfg = config(shapes_dir, tmp_path / source, None, rerank="hungarian", candidate_objects=source)
        cfg.check()
        assert cfg.surplus_cost == want and cfg.unmatched_cost == 1.0
    assert "--candidate-objects grid" in cfg.costs_from["surplus_cost"]


def test_boxes_on_a_dataset_without_boxes_is_one_line_and_writes_nothing(tmp_path):
    from helpers import jpeg

    from vgrc.generators.importers.captions import import_captions

    for i in range(3):
        jpeg(tmp_path / "photos" / f"p{i}.jpg", 70 * i)
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"file_name": f"p{i}.jpg", "caption": c}) + "\n"
                                              for i, c in enumerate(["a red kite", "a blue boat", "a green tree"])))
    import_captions(tmp_path / "photos", tmp_path / "c.jsonl", tmp_path / "data", object_parser="rules")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "data"), "--model", "tiny-random", "--rerank", "hungarian", "--candidate-objects",
                                      "boxes", "--k", "3", "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code != 0 and "has objects without a bbox" in result.output and "--candidate-objects patches or grid" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
    assert not (out / "metrics.json").exists()
    m = run_eval(EvalConfig(data=str(tmp_path / "data"), model="tiny-random", rerank="hungarian", candidate_objects="grid", k=3,
                            out=str(tmp_path / "grid"), cache_dir=str(tmp_path / "cache")))
    assert m["n_queries"] == 3.0  # a gallery without boxes is reranked from its pixels


@pytest.mark.parametrize("args,message", [
    (["--candidate-objects", "boxs"], "unknown --candidate-objects 'boxs' (did you mean 'boxes'?)"),
    (["--candidate-objects", "detector"], "--candidate-objects detector needs --detector-model"),
    (["--candidate-objects", "detector", "--detector-model", "no/such-detector"], "detector model 'no/such-detector' is not available offline"),
    (["--candidate-objects", "grid", "--grid-scales", "0,2"], "--grid-scales '0,2'"),
    (["--candidate-objects", "patches", "--regions", "-1"], "--regions must be in [0, 64]"),
    (["--candidate-objects", "boxes", "--region-pixels", "blur"], "unknown --region-pixels 'blur'"),
    (["--candidate-objects", "grid", "--task", "itm"], "--candidate-objects grid cuts the retrieval gallery's regions; --task itm"),
])
def test_bad_region_options_are_one_line_before_any_work(shapes_dir, tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["eval", "--data", str(shapes_dir), "--model", "tiny-random", "--rerank", "fgw", *args, "--out", str(out)])
    assert result.exit_code != 0 and message in result.output, result.output
    assert not out.exists()


def build_tiny_owlvit(folder):
    """A tiny random OWL-ViT with its processor, saved for ``from_pretrained``."""
    import torch
    from transformers import CLIPTokenizer, OwlViTConfig, OwlViTForObjectDetection, OwlViTImageProcessor, OwlViTProcessor
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    torch.manual_seed(0)
    cfg = OwlViTConfig(text_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 300,
                                    "max_position_embeddings": 16},
                       vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 32,
                                      "patch_size": 8}, projection_dim=32)
    OwlViTForObjectDetection(cfg).eval().save_pretrained(folder)
    vocab = {c: i for i, c in enumerate(sorted(set(bytes_to_unicode().values())))}
    for extra in ("<|startoftext|>", "<|endoftext|>"):
        vocab[extra] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16, pad_token="!")
    image_processor = OwlViTImageProcessor(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32})
    OwlViTProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_detector_candidates_through_from_pretrained(shapes_dir, tmp_path, cache_dir):
    """A tiny random OWL-ViT loaded by AutoModelForZeroShotObjectDetection: boxes above the
    threshold, at most --max-regions per image, cropped and reranked; the boxes are cached."""
    folder = build_tiny_owlvit(tmp_path / "owl")
    kw = dict(rerank="hungarian", candidate_objects="detector", detector_model=str(folder), detector_threshold=0.0, max_regions=2, limit=6)
    m = run_eval(config(shapes_dir, tmp_path / "a", cache_dir, **kw))
    assert 0 <= m["t2i_R@1"] <= 1
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["diagnostics"]["detector"]["prompts"] == 6  # the six shape nouns of the queries
    assert run["diagnostics"]["candidate_regions"]["per_image_mean"] <= 2
    run_eval(config(shapes_dir, tmp_path / "b", cache_dir, **kw))
    assert json.loads((tmp_path / "b" / "run.json").read_text())["encode"]["regions"]["encoded"] == 0
    with pytest.raises(VgrcError, match="needs --detector-model"):
        config(shapes_dir, tmp_path / "c", cache_dir, rerank="fgw", candidate_objects="detector").check()
