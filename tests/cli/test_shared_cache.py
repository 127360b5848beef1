"""Issue 21: two evals sharing a fresh cache encode each chunk once between them."""

import json
import subprocess
import sys

import numpy as np

from vgrc.evaluators.encoders.chunk_claims import ChunkClaims
from vgrc.evaluators.encoders.cache import EmbeddingCache, encode_cached

# `vgrc eval` with every shard write slowed down. The first run ("lead") signals when it has
# stored its first shard; the second ("follow") imports everything first, then waits for
# that signal before it starts: the two overlap for certain, whatever the start-up jitter
SLOW = """
import os, sys, time
role, signal_file = sys.argv[1], sys.argv[2]
import vgrc.evaluators.encoders.cache as ec
from vgrc.cli.main import main
real = ec.EmbeddingCache.add
def slow(self, keys, emb):
    out = real(self, keys, emb)
    if role == "lead" and not os.path.exists(signal_file):
        open(signal_file, "w").close()
    time.sleep(0.4)
    return out
ec.EmbeddingCache.add = slow
if role == "follow":
    deadline = time.time() + 120
    while not os.path.exists(signal_file) and time.time() < deadline:
        time.sleep(0.01)
sys.argv = ["vgrc", *sys.argv[3:]]
main()
"""


def test_two_evals_on_one_fresh_cache_encode_each_image_once(shapes_dir, tmp_path):
    cache = tmp_path / "cache"
    args = ["eval", "--data", str(shapes_dir), "--model", "tiny-random", "--rerank", "none", "--batch-size", "1", "--cache-dir", str(cache), "-q"]
    signal_file = tmp_path / "lead-stored-a-shard"
    procs = [subprocess.Popen([sys.executable, "-c", SLOW, role, str(signal_file), *args, "--out", str(tmp_path / name)], stderr=subprocess.PIPE, text=True)
             for role, name in (("lead", "a"), ("follow", "b"))]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    runs = [json.loads((tmp_path / name / "run.json").read_text()) for name in ("a", "b")]
    images = [r["encode"]["images"] for r in runs]
    unique = images[0]["unique"]
    assert unique > 32  # several chunks of 16
    # each image encoded by exactly one of the two (without claims both encode all: 2 × unique)
    assert images[0]["encoded"] + images[1]["encoded"] == unique
    assert min(i["encoded"] for i in images) > 0, "the runs did not overlap: the test proves nothing"
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("a", "b")]
    assert {k: v for k, v in metrics[0].items() if k != "config"} == {k: v for k, v in metrics[1].items() if k != "config"}
    assert not list(cache.glob("*/claims/*.lock"))  # claims are removed as they are released


def test_a_claim_held_by_a_dead_process_is_taken_over(tmp_path):
    cache = EmbeddingCache(tmp_path, "ns")
    keys = [f"k{i}" for i in range(6)]
    # another process claims the first chunk and is killed before it writes a shard
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from vgrc.evaluators.encoders.chunk_claims import ChunkClaims\n"
        f"c = ChunkClaims({str(cache.folder)!r}).try_claim({keys[:3]!r})\n"
        "print('held', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert ChunkClaims(cache.folder).try_claim(keys[:3]) is None  # held by a live process
    holder.kill()
    holder.wait()
    encoded = []

    def encode(items):
        encoded.extend(items)
        return np.eye(6, dtype=np.float32)[[int(i[1:]) for i in items]]

    emb, stats = encode_cached(keys, lambda i: keys[i], encode, cache, chunk=3)
    assert sorted(encoded) == keys and stats.encoded == 6  # the dead holder's chunk too
    assert np.array_equal(emb, np.eye(6, dtype=np.float32))
