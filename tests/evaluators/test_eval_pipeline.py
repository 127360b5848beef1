"""`run_eval` end to end with the real open_clip `tiny-random` model on a shapes subset."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from vgrc.evaluators.encoders.cache import EmbeddingCache, content_key, encode_cached
from vgrc.evaluators.encoders.clip import BadImageError, ClipEncoder
from vgrc.evaluators.errors import ModelUnavailableError
from vgrc.evaluators.encoders.models import resolve_model
from vgrc.evaluators.first_stage.search import normalize
from vgrc.evaluators.pipeline import EvalConfig, run_eval
from vgrc.evaluators.registry import names
from vgrc.evaluators.report import report_table
from vgrc.evaluators.retrieval_data import load_retrieval

K = 20


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("emb-cache")


def config(shapes_dir, out, cache_dir, **kw):
    return EvalConfig(**{"data": str(shapes_dir), "out": str(out), "model": "tiny-random", "k": K, "cache_dir": str(cache_dir), **kw})


@pytest.mark.parametrize("stage1", [n for n in names("stage1") if n != "ensemble"])  # it needs --models: tests/evaluators/test_ensemble.py
@pytest.mark.parametrize("rerank", [n for n in names("reranker") if n not in ("orb", "sift", "orb+sift")])  # those rank image queries (--task i2i)
def test_every_stage_combination(shapes_dir, tmp_path, cache_dir, stage1, rerank):
    metrics = run_eval(config(shapes_dir, tmp_path / "run", cache_dir, stage1=stage1, rerank=rerank))
    frame = pd.read_parquet(tmp_path / "run" / "per_query.parquet")
    # only the ridge stages hold 20% of the 60 rows out to fit on; the others evaluate the whole split (issue 22 §3)
    assert len(frame) == metrics["n_queries"] == metrics["n_gallery"] == (48 if stage1 in ("ridge", "ridge+steer") else 60)
    for name in ("t2i_R@1", "t2i_R@5", "t2i_R@10", "t2i_nDCG@1", "t2i_nDCG@5", "t2i_nDCG@10", "t2i_CAS-gen@10", "t2i_CAS-noun@10", "stage1_t2i_R@1"):
        assert 0.0 <= metrics[name] <= 1.0
    # recall recomputed from the per-query ranks
    assert metrics["t2i_R@5"] == pytest.approx(np.mean((frame.rank_final >= 0) & (frame.rank_final < 5)))
    shortlist_recall = metrics[f"t2i_shortlist_recall@{K}"]
    assert shortlist_recall == pytest.approx(np.mean(frame.rank_stage1 < K))
    if rerank == "none":
        assert (frame.rank_final == frame.rank_stage1).all()
    if rerank in ("hungarian", "fgw"):
        # annotation-based object embeddings: the target's object set matches exactly
        assert metrics["t2i_R@1"] == pytest.approx(shortlist_recall)
    outside = frame.rank_stage1 >= K  # not shortlisted: the stage-1 rank is kept
    assert (frame.rank_final[outside] == frame.rank_stage1[outside]).all()


def test_output_files_and_columns(shapes_dir, tmp_path, cache_dir):
    out = tmp_path / "run"
    run_eval(config(shapes_dir, out, cache_dir, stage1="ridge+steer", rerank="fgw", steer=["pentagon:hexagon"]))
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "metrics.json", "metrics.md", "per_query.parquet", "recall_curve.png", "run.json"]
    frame = pd.read_parquet(out / "per_query.parquet")
    assert list(frame.columns) == ["query_id", "caption", "rank_stage1", "rank_final", "top1_stage1", "top1_final", "top10_stage1", "top10_final", "steered",
                                   "ndcg@10", "cas_gen@10", "cas_noun@10", "categories"]
    # the per-query graded columns average to the run's metrics; categories are the query's shapes
    for column, name in (("ndcg@10", "t2i_nDCG@10"), ("cas_gen@10", "t2i_CAS-gen@10"), ("cas_noun@10", "t2i_CAS-noun@10")):
        assert frame[column].mean() == pytest.approx(json.loads((out / "metrics.json").read_text())[name])
    assert all(set(c) <= {"circle", "square", "triangle", "pentagon", "hexagon", "star"} and len(c) >= 1 for c in frame.categories)
    assert frame.steered.sum() == sum("hexagon" in c and "pentagon" not in c for c in frame.caption)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["rerank"] == "fgw" and "t2i_CAS-noun@10" in metrics and "ridge_distance_reduction" in metrics
    # one meaning per name: no bare "alpha" anywhere in the recorded config
    run = json.loads((out / "run.json").read_text())
    assert "alpha" not in metrics["config"] and {"fgw_alpha", "ridge_lambda", "steer_alpha"} <= set(metrics["config"])
    # run.json: the options grouped, each chosen component with its own options and package
    cfg = run["config"]
    assert {"data", "encode", "choices", "output", "stage1", "reranker", "index", "relevance", "task"} <= set(cfg)
    assert cfg["reranker"] == {"name": "fgw", "options": {"fgw_alpha": 0.5, "solver": "cg", "epsilon": 0.01, "fuse_stage1": 0.0}, "package": "vgrc"}
    assert cfg["stage1"]["name"] == "ridge+steer" and cfg["stage1"]["options"]["steer"] == ["pentagon:hexagon"]
    assert {"fit_fraction", "ridge_lambda", "steer_alpha", "steer_top"} <= set(cfg["stage1"]["options"]) and "alpha" not in cfg["stage1"]["options"]
    assert run["diagnostics"]["steering"]["steer_alpha"] == 0.5
    header, values = (out / "metrics.csv").read_text().splitlines()
    assert header.split(",")[:3] == ["stage1", "rerank", "t2i_R@1"] and values.startswith("ridge+steer,fgw,")
    run = json.loads((out / "run.json").read_text())
    assert {"config", "model", "data", "versions", "git_commit", "seed", "encode", "skipped", "diagnostics", "timings_seconds"} <= set(run)
    assert run["diagnostics"]["steering"]["pairs"] == [["pentagon", "hexagon"]]
    assert "torch" in run["versions"] and "open_clip_torch" in run["versions"]
    assert (out / "recall_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_second_run_encodes_nothing(shapes_dir, tmp_path):
    cache = tmp_path / "cache"
    run_eval(config(shapes_dir, tmp_path / "a", cache, stage1="ridge", rerank="fgw"))
    first = json.loads((tmp_path / "a" / "run.json").read_text())["encode"]
    assert first["images"]["encoded"] == 60 and first["texts"]["encoded"] > 0  # eval + fit images
    run_eval(config(shapes_dir, tmp_path / "b", cache, stage1="ridge", rerank="hungarian"))
    second = json.loads((tmp_path / "b" / "run.json").read_text())["encode"]
    assert second["images"]["encoded"] == 0 and second["texts"]["encoded"] == 0
    assert second["images"]["requested"] == 60


def test_fast_preprocessing_has_its_own_image_cache(shapes_dir, tmp_path):
    """`--preprocess fast` gives (slightly) other image embeddings: it must neither read nor
    write the exact path's cache entries; texts are shared."""
    cache = tmp_path / "cache"
    fast = run_eval(config(shapes_dir, tmp_path / "fast", cache, preprocess="fast"))
    run_eval(config(shapes_dir, tmp_path / "exact", cache))
    first, encoded = (json.loads((tmp_path / r / "run.json").read_text())["encode"] for r in ("fast", "exact"))
    assert encoded["images"]["encoded"] == first["images"]["encoded"] > 0 and encoded["texts"]["encoded"] == 0  # images anew, texts from the cache
    assert sorted(p.name.split("-", 1)[1] for p in cache.iterdir() if p.is_dir() and "-image" in p.name) == ["image", "image-fast-v2"]
    alone = run_eval(config(shapes_dir, tmp_path / "alone", tmp_path / "c2"))
    assert {k: v for k, v in json.loads((tmp_path / "exact" / "metrics.json").read_text()).items() if k != "config"} == \
        {k: v for k, v in json.loads((tmp_path / "alone" / "metrics.json").read_text()).items() if k != "config"}
    assert 0 <= fast["t2i_R@1"] <= 1 and alone["n_queries"] == fast["n_queries"]
    assert "--preprocess fast" in (tmp_path / "fast" / "metrics.md").read_text() and "--preprocess" not in (tmp_path / "exact" / "metrics.md").read_text()


def test_stage1_ranks_match_a_brute_force_reference(shapes_dir, tmp_path, cache_dir):
    run_eval(config(shapes_dir, tmp_path / "run", cache_dir, stage1="cosine", rerank="none"))
    frame = pd.read_parquet(tmp_path / "run" / "per_query.parquet")
    ev, _, _ = load_retrieval(shapes_dir, fit_fraction=0.0)  # a cosine run evaluates the whole split
    enc = ClipEncoder(resolve_model("tiny-random"))
    images = enc.encode_image_bytes([(str(p), p.read_bytes()) for p in ev.image_paths])
    texts = enc.encode_texts(ev.captions)
    S = texts @ images.T
    ranks = [int(np.flatnonzero(np.lexsort((np.arange(len(ev)), -S[q])) == q)[0]) for q in range(len(ev))]
    assert frame.query_id.tolist() == ev.ids
    assert frame.rank_stage1.tolist() == ranks


def test_fit_rows_never_leak_into_evaluation(shapes_dir):
    ev, fit, info = load_retrieval(shapes_dir, fit_fraction=0.2, seed=0)
    assert len(ev) + len(fit) == 60 and info["n_fit"] == 12
    assert not set(ev.ids) & set(fit.ids)
    assert not {str(p) for p in ev.image_paths} & {str(p) for p in fit.image_paths}
    ev2, fit2, _ = load_retrieval(shapes_dir, fit_fraction=0.2, seed=0, limit=10)
    assert fit2.ids == fit.ids and len(ev2) == 10 and set(ev2.ids) <= set(ev.ids)


def test_missing_and_damaged_images(shapes_dir, tmp_path, cache_dir):
    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    ev, _, _ = load_retrieval(data, fit_fraction=0.2)
    (ev.image_paths[3]).unlink()
    ev.image_paths[5].write_bytes(b"not a png at all")
    with pytest.raises(BadImageError, match=str(ev.image_paths[3].name)):
        run_eval(config(data, tmp_path / "r", tmp_path / "fresh-cache", fit_fraction=0.2))
    metrics = run_eval(config(data, tmp_path / "r", tmp_path / "fresh-cache", skip_bad=True))
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert sorted(run["skipped"]["query_ids"]) == sorted([ev.ids[3], ev.ids[5]])
    assert metrics["n_queries"] == 58  # the whole split (a cosine run) less the two bad images
    ev.image_paths[3].write_bytes(b"")
    with pytest.raises(BadImageError, match="cannot decode image"):
        run_eval(config(data, tmp_path / "r2", tmp_path / "fresh-cache"))


def test_interrupted_encoding_resumes_from_cache(shapes_dir, tmp_path):
    enc = ClipEncoder(resolve_model("tiny-random"))
    paths = sorted((shapes_dir / "compositions" / "images").iterdir())
    items = [(str(p), p.read_bytes()) for p in paths]
    keys = [content_key(d) for _, d in items]
    cache = EmbeddingCache(tmp_path, "ns")

    def stop_after_two_chunks(done, total):
        if done >= 32:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_cached(keys, lambda i: items[i], enc.encode_image_bytes, cache, chunk=16, on_progress=stop_after_two_chunks)
    fresh = EmbeddingCache(tmp_path, "ns")  # a new process would see what is on disk
    assert len(fresh) == 32
    emb, stats = encode_cached(keys, lambda i: items[i], enc.encode_image_bytes, fresh, chunk=16)
    assert stats.encoded == 60 - 32 and stats.unique == 60
    assert np.allclose(emb, enc.encode_image_bytes(items), atol=1e-5)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_unique_strings_are_encoded_once(tmp_path):
    enc = ClipEncoder(resolve_model("tiny-random"))
    texts = ["red circle", "blue star", "red circle", "red circle"]
    emb, stats = encode_cached([content_key(t) for t in texts], lambda i: texts[i], enc.encode_texts, EmbeddingCache(tmp_path, "t"))
    assert (stats.requested, stats.unique, stats.encoded) == (4, 2, 2)
    assert np.array_equal(emb[0], emb[2]) and np.allclose(emb[0], normalize(enc.encode_texts(["red circle"]))[0], atol=1e-6)


def test_tiny_random_is_seeded():
    a = ClipEncoder(resolve_model("tiny-random", seed=0)).encode_texts(["red circle"])
    b = ClipEncoder(resolve_model("tiny-random", seed=0)).encode_texts(["red circle"])
    c = ClipEncoder(resolve_model("tiny-random", seed=1)).encode_texts(["red circle"])
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_offline_model_fails_with_one_clear_message_and_no_network(monkeypatch):
    """No download retries: the check never opens a connection."""
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the offline check tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(ModelUnavailableError, match=r"model 'clip' \(ViT-B-32, pretrained 'openai'\).*HF_HUB_OFFLINE.*--pretrained PATH"):
        ClipEncoder(resolve_model("clip")).load()


def test_local_checkpoint_loads_through_pretrained_path(tmp_path):
    """--model ARCH --pretrained PATH: the real open_clip checkpoint loading path."""
    import torch

    enc = ClipEncoder(resolve_model("tiny-random", seed=3)).load()
    ckpt = tmp_path / "tiny.pt"
    torch.save(enc.model.state_dict(), ckpt)
    loaded = ClipEncoder(resolve_model("vgrc-tiny-random", pretrained=str(ckpt)))
    assert not loaded.spec.is_random
    assert np.allclose(loaded.encode_texts(["red circle"]), enc.encode_texts(["red circle"]), atol=1e-6)


def test_report_merges_runs(shapes_dir, tmp_path, cache_dir):
    runs = []
    for stage1, rerank in (("ridge", "fgw"), ("cosine", "none"), ("cosine", "hungarian")):
        runs.append(tmp_path / f"{stage1}-{rerank}")
        run_eval(config(shapes_dir, runs[-1], cache_dir, stage1=stage1, rerank=rerank))
    md, csv, skipped = report_table(runs)
    assert skipped == []
    lines = md.splitlines()
    assert lines[2] == "| Run | Dataset | Model | Stage 1 | Stage 2 | R@1 | R@5 | R@10 | nDCG@1 | nDCG@5 | nDCG@10 | CAS-gen@10 | CAS-noun@10 | Settings |"
    rows = [line.split(" | ") for line in lines[4:7]]
    assert [r[:5] for r in rows] == [
        ["| cosine-none", "shapes", "tiny-random", "cosine", "none"],
        ["| cosine-hungarian", "shapes", "tiny-random", "cosine", "hungarian"],
        ["| ridge-fgw", "shapes", "tiny-random", "ridge", "fgw"],
    ]
    assert csv.splitlines()[0] == "run,dataset,model,stage1,rerank,settings,t2i_R@1,t2i_R@5,t2i_R@10,t2i_nDCG@1,t2i_nDCG@5,t2i_nDCG@10,t2i_CAS-gen@10,t2i_CAS-noun@10"
    r1 = json.loads((runs[1] / "metrics.json").read_text())["t2i_R@1"]
    assert rows[0][5] == f"{100 * r1:.1f}"
    # every run says where its per-object sets came from
    assert "per-object sets come from the dataset's annotations" in md


def test_batched_preprocessing_equals_open_clip_preprocess(shapes_dir):
    """The split PIL/tensor preprocessing gives exactly open_clip's tensors."""
    import io

    import torch
    from PIL import Image

    enc = ClipEncoder(resolve_model("tiny-random")).load()
    assert enc._tensor_tail() is not None
    paths = sorted((shapes_dir / "compositions" / "images").iterdir())[:8]
    ours = enc._finish([enc._decode(p.read_bytes(), p.name) for p in paths])
    ref = torch.stack([enc.preprocess(Image.open(io.BytesIO(p.read_bytes())).convert("RGB")) for p in paths])
    assert ours.dtype == ref.dtype and torch.equal(ours, ref)


# --------------------------------------------------------------------------- review fixes


def _plain_dataset(folder, n=12, objects=None):
    """A dataset in the folder contract whose rows carry `objects` only where given."""
    from PIL import Image

    from vgrc.evaluators.dataset import finish_dataset, prepare_output, write_jsonl

    files = ("photos/metadata.jsonl", *(f"photos/images/{i}.png" for i in range(n)))
    prepare_output(folder, "plain", {"n": n}, files=files)
    (folder / "photos" / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        Image.new("RGB", (32, 32), (20 * i % 256, 7 * i % 256, 90)).save(folder / "photos" / "images" / f"{i}.png")
        row = {"id": f"r{i}", "file_name": f"images/{i}.png", "caption": f"photo number {i}"}
        if objects is not None and objects(i) is not None:
            row["objects"] = objects(i)
        rows.append(row)
    write_jsonl(folder / "photos" / "metadata.jsonl", rows)
    finish_dataset(folder, "plain", {"n": n}, version="0", command="test", seed=0, splits=["photos"], files=files)
    return folder


@pytest.mark.parametrize("stage1, rerank", [("objects-avg", "none"), ("cosine", "hungarian"), ("cosine", "fgw"), ("cosine", "min"), ("cosine", "softmin"), ("objects-steer-avg", "none")])
def test_rows_without_objects_are_named_when_a_per_object_step_needs_them(tmp_path, cache_dir, stage1, rerank):
    from vgrc.evaluators.errors import InvalidInputError

    data = _plain_dataset(tmp_path / "plain", objects=lambda i: None if i == 5 else [{"noun": "thing", "attributes": [str(i)]}])
    with pytest.raises(InvalidInputError, match=r"row 'r5' has no query objects .* which --(stage1|rerank) "):
        run_eval(config(data, tmp_path / "run", cache_dir, stage1=stage1, rerank=rerank, fit_fraction=0))
    assert not (tmp_path / "run").exists()


def test_no_objects_at_all_reports_no_graded_metrics_and_says_so(tmp_path, cache_dir):
    data = _plain_dataset(tmp_path / "plain")
    metrics = run_eval(config(data, tmp_path / "run", cache_dir, fit_fraction=0))
    assert "t2i_nDCG@10" not in metrics and "t2i_R@1" in metrics
    assert "nDCG@K and CAS@K are not reported" in (tmp_path / "run" / "metrics.md").read_text()
    assert any("not reported" in n for n in json.loads((tmp_path / "run" / "run.json").read_text())["diagnostics"]["notes"])


def test_outputs_state_where_object_sets_come_from(shapes_dir, tmp_path, cache_dir):
    run_eval(config(shapes_dir, tmp_path / "run", cache_dir, rerank="hungarian", surplus_cost=1.0))
    md = (tmp_path / "run" / "metrics.md").read_text()
    assert "per-object sets come from the dataset's annotations (an oracle" in md and "Synthetic Shapes symbolic labels" in md
    assert "surplus candidate object 1" in md
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["format"] == "vgrc-run/1" and run["data"]["recommended"] == {"unmatched_cost": 1.0, "surplus_cost": 1.0}


def test_metric_keys_do_not_depend_on_the_gallery_size(shapes_dir, tmp_path, cache_dir):
    metrics = run_eval(config(shapes_dir, tmp_path / "run", cache_dir, k=500))  # 48 gallery images
    assert "t2i_shortlist_recall@500" in metrics and metrics["t2i_shortlist_recall@500"] == 1.0


def test_objects_steer_avg_at_zero_strength_equals_objects_avg(shapes_dir, tmp_path, cache_dir):
    a = run_eval(config(shapes_dir, tmp_path / "a", cache_dir, stage1="objects-avg"))
    b = run_eval(config(shapes_dir, tmp_path / "b", cache_dir, stage1="objects-steer-avg", steer_alpha=0.0))
    fa, fb = pd.read_parquet(tmp_path / "a" / "per_query.parquet"), pd.read_parquet(tmp_path / "b" / "per_query.parquet")
    assert (fa.rank_stage1 == fb.rank_stage1).all() and a["t2i_R@10"] == b["t2i_R@10"]
    run_eval(config(shapes_dir, tmp_path / "c", cache_dir, stage1="objects-steer-avg", steer_alpha=2.0))
    assert (pd.read_parquet(tmp_path / "c" / "per_query.parquet").rank_stage1 != fa.rank_stage1).any()


def test_default_steering_pairs_come_from_cosine_confusions_with_colour_fixed(shapes_dir, tmp_path, cache_dir):
    """App. E: the pairs equal an independent computation on the fit rows: cosine (not
    ridge-mapped) top-1, single-object substitutions with the colour held fixed."""
    from vgrc.evaluators.first_stage.steering import confusion_pairs

    run_eval(config(shapes_dir, tmp_path / "run", cache_dir, stage1="ridge+steer", steer_top=50))
    diag = json.loads((tmp_path / "run" / "run.json").read_text())["diagnostics"]
    assert diag["confusions"]["source"].startswith("cosine top-1")
    ev, fit, _ = load_retrieval(shapes_dir, fit_fraction=0.2)
    enc = ClipEncoder(resolve_model("tiny-random"))
    img = enc.encode_image_bytes([(str(p), p.read_bytes()) for p in fit.image_paths])
    txt = enc.encode_texts(fit.captions)
    top1 = np.argmax(txt @ img.T, axis=1)
    wrong = [i for i in range(len(fit)) if top1[i] not in fit.relevant[i]]
    ref = confusion_pairs([fit.objects[i] for i in wrong], [fit.objects[top1[i]] for i in wrong], 50)
    got = [(p["source"], p["target"], p["count"]) for p in diag["confusions"]["pairs"]]
    assert got == ref
    colours = {"red", "orange", "yellow", "green", "blue", "purple", "black"}
    assert not any(s in colours or t in colours for s, t, _ in got)


def test_unknown_steer_word_is_refused_before_encoding(shapes_dir, tmp_path, cache_dir):
    from vgrc.evaluators.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="'octagon' is not a noun or attribute"):
        run_eval(config(shapes_dir, tmp_path / "run", cache_dir, stage1="ridge+steer", steer=["pentagon:octagon"]))


def test_sinkhorn_solver_runs_end_to_end_and_is_recorded(shapes_dir, tmp_path, cache_dir):
    metrics = run_eval(config(shapes_dir, tmp_path / "run", cache_dir, rerank="fgw", solver="sinkhorn", epsilon=0.02))
    assert 0 <= metrics["t2i_R@1"] <= 1
    assert "Sinkhorn, epsilon 0.02" in (tmp_path / "run" / "metrics.md").read_text()


def test_an_existing_run_is_never_overwritten_silently(shapes_dir, tmp_path, cache_dir):
    from vgrc.evaluators.errors import DatasetFolderError

    out = tmp_path / "run"
    run_eval(config(shapes_dir, out, cache_dir))
    before = (out / "metrics.json").read_bytes()
    with pytest.raises(DatasetFolderError, match="already holds a vgrc run; pass --overwrite"):
        run_eval(config(shapes_dir, out, cache_dir, rerank="fgw"))
    assert (out / "metrics.json").read_bytes() == before
    (out / "my-notes.txt").write_text("mine")
    with pytest.raises(DatasetFolderError, match="'my-notes.txt', which vgrc did not write"):
        run_eval(config(shapes_dir, out, cache_dir, rerank="fgw", overwrite=True))
    (out / "my-notes.txt").unlink()
    run_eval(config(shapes_dir, out, cache_dir, rerank="fgw", overwrite=True))
    assert json.loads((out / "metrics.json").read_text())["config"]["rerank"] == "fgw"
    folder = tmp_path / "someone-elses"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(DatasetFolderError, match="not a vgrc run folder"):
        run_eval(config(shapes_dir, folder, cache_dir, overwrite=True))
    assert (folder / "thesis.tex").read_text() == "precious"


def test_a_fully_cached_eval_imports_neither_torch_nor_open_clip(shapes_dir, tmp_path):
    """Issue 13: the second, fully cached run reads the model's cache key from
    model-keys.json and never builds the encoder; its metrics equal the first run's."""
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from vgrc.evaluators.pipeline import EvalConfig, run_eval\n"
        f"m = run_eval(EvalConfig(data={str(shapes_dir)!r}, out=sys.argv[1], model='tiny-random', rerank='fgw', k=10, fit_fraction=0, cache_dir={str(tmp_path / 'c')!r}))\n"
        "print(json.dumps({'metrics': m, 'heavy': [n for n in ('torch', 'open_clip') if n in sys.modules]}))\n"
    )
    runs = [json.loads(subprocess.run([sys.executable, "-c", code, str(tmp_path / f"r{i}")], capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            for i in range(2)]
    assert runs[0]["heavy"] == ["torch", "open_clip"]  # the first run encodes
    assert runs[1]["heavy"] == [] and runs[1]["metrics"] == runs[0]["metrics"]
    record = json.loads((tmp_path / "c" / "model-keys.json").read_text())
    assert len(record) == 1 and next(iter(record.values()))["spec"]["arch"] == "vgrc-tiny-random"
    run = json.loads((tmp_path / "r1" / "run.json").read_text())
    assert run["encode"]["images"]["encoded"] == 0 and run["model"]["spec"]["arch"] == "vgrc-tiny-random"


def test_the_key_record_follows_the_model_identity(tmp_path):
    """Another seed or precision is another identity (another cache namespace); a damaged
    record is rebuilt, not trusted."""
    from vgrc.evaluators.encoders.setup import KEY_RECORD, model_identity
    from vgrc.evaluators.pipeline import EvalConfig

    base = EvalConfig(model="tiny-random")
    keys = {model_identity(c, tmp_path)[0] for c in (base, EvalConfig(model="tiny-random", seed=1), EvalConfig(model="tiny-random", precision="bf16"))}
    assert len(keys) == 3 and len(json.loads((tmp_path / KEY_RECORD).read_text())) == 3
    first = model_identity(base, tmp_path)[0]
    (tmp_path / KEY_RECORD).write_text("{not json")
    assert model_identity(base, tmp_path)[0] == first
    assert first == ClipEncoder(resolve_model("tiny-random")).cache_key


SHARDED_ENCODE_SCRIPT = """
import json, os, sys, time
import numpy as np
from vgrc.evaluators.encoders.cache import EmbeddingCache, encode_cached

rank, root = int(os.environ["RANK"]), sys.argv[1]
if rank == 1:
    time.sleep(2)  # lists late: rank 0 has written chunks to the cache by then
calls = []

def encode(items):
    calls.extend(items)
    return np.stack([np.full(4, 1.0 + i) for i in items]).astype(np.float32)

emb, stats = encode_cached([f"key-{i}" for i in range(40)], lambda i: i, encode, EmbeddingCache(root, "ns"), chunk=8, sharded=True)
import torch.distributed as dist
from vgrc.evaluators.sharding import finish
joined = dist.is_initialized()
finish()  # as vgrc eval does: gloo's group torn down before exit
json.dump({"calls": calls, "nan_rows": int(np.isnan(emb).any(axis=1).sum()), "first": emb[:, 0].tolist(),
           "group_before_finish": joined, "group_after_finish": dist.is_initialized()}, open(f"{root}/rank-{rank}.json", "w"))
"""


def test_sharded_encoding_splits_one_list_even_when_a_rank_starts_late(tmp_path):
    """Every rank must cut the SAME list of missing keys into chunks. A rank that listed after
    another had written would cut a shorter list, and some chunk would be encoded by no one
    (its rows NaN, silently skipped). Two gloo ranks, rank 1 two seconds late."""
    from helpers import run_two_ranks

    ranks = run_two_ranks(tmp_path, SHARDED_ENCODE_SCRIPT)
    assert sorted(ranks[0]["calls"] + ranks[1]["calls"]) == list(range(40))  # each item encoded once, by one rank
    assert ranks[0]["calls"] and ranks[1]["calls"]
    for r in ranks:
        assert r["nan_rows"] == 0 and r["first"] == [1.0 + i for i in range(40)]
        assert r["group_before_finish"] and not r["group_after_finish"]  # finish() tears gloo's group down before exit


def test_parsed_query_objects_reproduce_the_annotations_on_templated_captions(shapes_dir, tmp_path, cache_dir):
    """--query-objects rules on Synthetic Shapes: its captions name exactly the annotated
    objects, so Hungarian reranking is the same, query by query; the run says where the
    sets came from."""
    from vgrc.evaluators.objects.parsers import parse_rules
    from vgrc.evaluators.retrieval_data import object_phrase

    ev = load_retrieval(shapes_dir, fit_fraction=0.0)[0]
    assert all([object_phrase(o) for o in parse_rules(c)] == [object_phrase(o) for o in objs] for c, objs in zip(ev.captions, ev.query_objects))
    runs = {}
    for source in ("annotations", "rules"):
        m = run_eval(config(shapes_dir, tmp_path / source, cache_dir, rerank="hungarian", query_objects=source))
        runs[source] = (m, pd.read_parquet(tmp_path / source / "per_query.parquet"))
    assert runs["rules"][1].rank_final.tolist() == runs["annotations"][1].rank_final.tolist()
    metrics = json.loads((tmp_path / "rules" / "metrics.json").read_text())
    assert metrics["config"]["query_objects"] == "rules" and any("parsed from their captions by the rules parser" in n for n in metrics["notes"])
    assert "query_objects" not in json.loads((tmp_path / "annotations" / "metrics.json").read_text())["config"]
    assert json.loads((tmp_path / "rules" / "run.json").read_text())["config"]["choices"]["query_objects"] == "rules"


def test_query_sets_come_from_the_chosen_source_not_the_annotations(shapes_dir):
    """With --query-objects rules the sets are the parser's even where the annotations say
    otherwise (here: every row's annotations replaced by another row's)."""
    from vgrc.evaluators.objects.parsers import parse_rules
    from vgrc.evaluators.tasks.stages import query_sets

    ev = load_retrieval(shapes_dir, fit_fraction=0.0)[0]
    ev.query_objects = ev.query_objects[1:] + ev.query_objects[:1]  # wrong on purpose
    parsed = query_sets(EvalConfig(query_objects="rules"), ev, None, lambda *a: None)
    assert parsed == [parse_rules(c) for c in ev.captions] and parsed != ev.query_objects
    assert query_sets(EvalConfig(), ev, None, lambda *a: None) is ev.query_objects


def test_parsed_query_objects_on_your_own_captions(tmp_path, cache_dir):
    """End to end on a captions import: --rerank min with the queries' sets parsed at eval time."""
    from helpers import jpeg

    from vgrc.evaluators.errors import VgrcError
    from vgrc.generators.importers.captions import import_captions

    captions = ["a red kite", "a blue boat and a dog", "a green tree", "a black cat on a mat"]
    for i in range(len(captions)):
        jpeg(tmp_path / "photos" / f"p{i}.jpg", 60 * i)
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"file_name": f"p{i}.jpg", "caption": c}) + "\n" for i, c in enumerate(captions)))
    import_captions(tmp_path / "photos", tmp_path / "c.jsonl", tmp_path / "data", object_parser="rules")
    base = dict(data=str(tmp_path / "data"), model="tiny-random", k=4, cache_dir=str(cache_dir), rerank="min")
    m = run_eval(EvalConfig(**base, out=str(tmp_path / "parsed"), query_objects="rules"))
    assert m["n_queries"] == 4.0 and 0 <= m["t2i_R@1"] <= 1
    with pytest.raises(VgrcError, match="unknown --query-objects 'regex'"):
        EvalConfig(**base, out=str(tmp_path / "bad"), query_objects="regex").check()
