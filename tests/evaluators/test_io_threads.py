"""Reading in threads: results and errors in item order; the next chunk is read while the
current one is encoded (from the second chunk on), never while the first encode call may
fork workers; an error or Ctrl-C caches what came before and leaves no queued read."""

import os
import threading

import numpy as np
import pytest

from vgrc.evaluators.encoders.cache import EmbeddingCache, content_key, encode_cached
from vgrc.evaluators.encoders.file_keys import FileKeys
from vgrc.evaluators.encoders.io_threads import OrderedLoader, map_in_threads


def test_results_and_the_first_error_come_in_item_order():
    release = threading.Event()

    def fn(i):
        if i == 3:
            release.wait(5)  # the earlier failure waits: a later one (7) finishes first
            raise ValueError("three")
        if i == 7:
            release.set()
            raise ValueError("seven")
        return i * i

    assert map_in_threads(lambda i: i * i, list(range(50)), 4) == [i * i for i in range(50)]
    with pytest.raises(ValueError, match="three"):
        map_in_threads(fn, list(range(10)), 4)


def test_file_keys_in_threads_equal_one_thread_with_an_unreadable_entry(tmp_path):
    paths = []
    for i in range(40):
        p = tmp_path / f"{i}.bin"
        p.write_bytes(os.urandom(3000 + 17 * i))
        paths.append(p)
    paths[11] = tmp_path / "a-directory"  # stat succeeds, reading fails
    paths[11].mkdir()
    one = FileKeys(tmp_path / "c1", threads=0).keys(paths)
    four = FileKeys(tmp_path / "c4", threads=4).keys(paths)
    assert isinstance(one[11], IsADirectoryError) and isinstance(four[11], IsADirectoryError)
    assert [k for i, k in enumerate(four) if i != 11] == [content_key(p.read_bytes()) for i, p in enumerate(paths) if i != 11]
    assert [k for i, k in enumerate(one) if i != 11] == [k for i, k in enumerate(four) if i != 11]


def test_the_next_chunk_is_read_during_the_encode_from_the_second_chunk_on(tmp_path):
    chunk, n = 8, 40
    loaded, begun, changed, calls = [], set(), threading.Event(), []
    patience = [200]  # × 50 ms

    def load(i):
        loaded.append(i)
        begun.add(i // chunk)
        changed.set()
        return i

    def encode(items):
        j = items[0] // chunk
        if j == 0:
            threading.Event().wait(0.3)  # time for a read of chunk 1 to begin, were one submitted
        calls.append((list(items), len(loaded)))
        if 1 <= j and (j + 1) * chunk < n:  # block until chunk j + 1 is being read: only a prefetch can do that
            for _ in range(patience[0]):
                if j + 1 in begun:
                    break
                changed.wait(0.05)
                changed.clear()
            else:
                raise AssertionError(f"chunk {j + 1} was not being read while chunk {j} was encoded")
        return np.stack([np.full(4, float(i) + 1) for i in items]).astype(np.float32)

    keys = [f"k{i}" for i in range(n)]
    emb, stats = encode_cached(keys, load, encode, EmbeddingCache(tmp_path, "ns"), chunk=chunk, load_threads=3)
    assert [c[0] for c in calls] == [list(range(s, s + chunk)) for s in range(0, n, chunk)]  # chunks in order
    assert calls[0][1] == chunk  # first encode (which may fork workers): no read of the next chunk had started
    assert emb[:, 0].tolist() == [i + 1.0 for i in range(n)] and stats.encoded == n
    begun.clear()
    patience[0] = 20
    with pytest.raises(AssertionError, match="was not being read"):  # inline reading cannot overlap: the check can fail
        encode_cached(keys, load, encode, EmbeddingCache(tmp_path, "inline"), chunk=chunk)


def test_a_read_error_caches_the_chunks_before_it_and_stops(tmp_path):
    encoded = []

    def load(i):
        if i in (19, 21):
            raise OSError(f"cannot read {i}")
        return i

    def encode(items):
        encoded.append(items[0])
        return np.stack([np.full(4, float(i) + 1) for i in items]).astype(np.float32)

    cache = EmbeddingCache(tmp_path, "ns")
    with pytest.raises(OSError, match="cannot read 19"):
        encode_cached([f"k{i}" for i in range(40)], load, encode, cache, chunk=8, load_threads=4)
    assert encoded == [0, 8] and len(EmbeddingCache(tmp_path, "ns")) == 16  # chunks 0 and 1 kept; chunk 2 never encoded


def test_ctrl_c_during_an_encode_drops_the_queued_reads(tmp_path):
    loaded = []
    started = threading.Event()

    def load(i):
        if i >= 200:
            started.wait(10)  # the next chunk's reads queue up behind this one
        loaded.append(i)
        return i

    def encode(items):
        if items[0] == 100:  # second chunk: the third is being read
            started.set()
            raise KeyboardInterrupt
        return np.stack([np.full(4, float(i) + 1) for i in items]).astype(np.float32)

    with pytest.raises(KeyboardInterrupt):
        encode_cached([f"k{i}" for i in range(1000)], load, encode, EmbeddingCache(tmp_path, "ns"), chunk=100, load_threads=2)
    assert len(EmbeddingCache(tmp_path, "ns")) == 100
    with OrderedLoader(lambda i: i, 0) as inline:  # nothing is started until asked for, inline
        assert inline.results(inline.submit([1, 2])) == [1, 2]
    threading.Event().wait(0.5)  # let the reads under way finish
    assert len(loaded) < 1000 - 100  # the queued reads of the later chunks were cancelled
