"""Issue 21: damaged embedding-cache shards are set aside with one line each and
recomputed; the run finishes with the numbers an intact cache gives."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from vgrc.cli.main import app
from vgrc.evaluators.encoders.cache import EmbeddingCache


def _damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero-byte":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif how == "mismatched":  # a readable zip whose keys and vectors disagree
        with np.load(path) as z:
            keys, emb = z["keys"], z["emb"]
        np.savez(open(path, "wb"), keys=keys, emb=emb[:-1])


def _metrics(out):
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["config"].pop("data")
    return metrics


@pytest.mark.parametrize("how", ["truncated", "zero-byte", "garbage", "mismatched"])
def test_damaged_shards_are_set_aside_and_recomputed(shapes_dir, tmp_path, how):
    clean = tmp_path / "clean-cache"
    base = ["eval", "--data", str(shapes_dir), "--model", "tiny-random", "--rerank", "hungarian", "--k", "10", "-q"]
    first = CliRunner().invoke(app, [*base, "--cache-dir", str(clean), "--out", str(tmp_path / "ref")])
    assert first.exit_code == 0, first.output
    cache = tmp_path / "cache"
    shutil.copytree(clean, cache)
    shards = sorted(cache.glob("*/shard-*.npz"))
    namespaces = {s.parent for s in shards}
    assert len(shards) >= 2 and len(namespaces) == 2  # text and image
    for shard in shards:
        _damage(shard, how)

    result = CliRunner().invoke(app, [*base, "--cache-dir", str(cache), "--out", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.output and len(lines) == len(namespaces)  # one line per cache namespace
    assert all(line.startswith("warning: ") and "damaged embedding cache shard" in line for line in lines)
    assert _metrics(tmp_path / "again") == _metrics(tmp_path / "ref")
    assert pd.read_parquet(tmp_path / "again" / "per_query.parquet").equals(pd.read_parquet(tmp_path / "ref" / "per_query.parquet"))
    # set aside (kept, never read again), and the cache is whole again: no warning next time
    assert sorted(p.name.rsplit(".", 1)[0] for p in cache.glob("*/damaged/*")) == sorted(s.name for s in shards)
    third = CliRunner().invoke(app, [*base, "--cache-dir", str(cache), "--out", str(tmp_path / "third")])
    assert third.exit_code == 0 and third.stderr.strip() == ""


def test_a_shard_with_non_finite_vectors_is_damaged(tmp_path):
    cache = EmbeddingCache(tmp_path, "ns")
    cache.add(["a", "b"], np.eye(2, dtype=np.float32))
    (shard,) = tmp_path.glob("ns/shard-*.npz")
    np.savez(open(shard, "wb"), keys=np.array(["a", "b"]), emb=np.array([[1, 0], [np.nan, 1]], np.float32))
    with pytest.warns(UserWarning, match="1 damaged embedding cache shard"):
        assert len(EmbeddingCache(tmp_path, "ns")) == 0
