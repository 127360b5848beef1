"""Content keys of image files: equal to sha256 of the bytes, remembered by stat signature,
never trusted after an edit (even one that puts the mtime back), not remembered when racy;
a cached run reads no image at all."""

import json
import os

import numpy as np
import pytest

from vgrc.evaluators.encoders import file_keys as fk
from vgrc.evaluators.encoders.cache import content_key
from vgrc.evaluators.encoders.file_keys import FileKeys


@pytest.fixture
def files(tmp_path):
    paths = []
    for i in range(5):
        p = tmp_path / "img" / f"{i}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(os.urandom(1000 + i))
        paths.append(p)
    return paths


@pytest.fixture
def not_racy(monkeypatch):
    monkeypatch.setattr(fk, "RACY_SECONDS", 0.0)  # files written a moment ago may be remembered


def test_keys_are_the_sha256_of_the_bytes_and_are_remembered(files, tmp_path, not_racy):
    memo = FileKeys(tmp_path / "cache")
    assert memo.keys(files) == [content_key(p.read_bytes()) for p in files]
    assert (memo.hashed, memo.remembered) == (5, 0)
    again = FileKeys(tmp_path / "cache")
    assert again.keys(files) == [content_key(p.read_bytes()) for p in files]
    assert (again.hashed, again.remembered) == (0, 5)


def test_an_edit_is_seen_even_when_size_and_mtime_are_put_back(files, tmp_path, not_racy):
    memo = FileKeys(tmp_path / "cache")
    memo.keys(files)
    victim = files[2]
    st = os.stat(victim)
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF  # same size
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime as before (cp -p, rsync -t); ctime moved on
    got = FileKeys(tmp_path / "cache")
    keys = got.keys(files)
    assert keys[2] == content_key(bytes(data)) != content_key(b"")
    assert (got.hashed, got.remembered) == (1, 4)


def test_racy_files_are_not_remembered(files, tmp_path, monkeypatch):
    monkeypatch.setattr(fk, "RACY_SECONDS", 3600.0)  # everything counts as just modified
    FileKeys(tmp_path / "cache").keys(files)
    again = FileKeys(tmp_path / "cache")
    again.keys(files)
    assert (again.hashed, again.remembered) == (5, 0)


def test_unreadable_files_come_back_as_their_error_and_without_writing_nothing_is_created(files, tmp_path):
    (tmp_path / "img" / "gone.bin").unlink(missing_ok=True)
    got = FileKeys(tmp_path / "ro", write=False).keys([*files[:2], tmp_path / "img" / "gone.bin"])
    assert isinstance(got[2], FileNotFoundError) and got[:2] == [content_key(p.read_bytes()) for p in files[:2]]
    assert not (tmp_path / "ro").exists()


def test_a_damaged_memo_is_ignored(files, tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / fk.MEMO_NAME).write_bytes(b"not a database at all" * 100)
    assert FileKeys(tmp_path / "cache").keys(files) == [content_key(p.read_bytes()) for p in files]


def test_a_cached_eval_reads_no_image_and_a_first_one_reads_each_once(shapes_dir, tmp_path, monkeypatch, not_racy):
    """Reads are counted at the two places images are opened: hashing and encoding."""
    from pathlib import Path

    from vgrc.evaluators.pipeline import EvalConfig, run_eval

    reads = {"hash": 0, "encode": 0}
    real_hash, real_read = fk._hash_file, Path.read_bytes

    def counting_hash(path):
        reads["hash"] += 1
        return real_hash(path)

    def counting_read(self):
        if self.suffix == ".png":
            reads["encode"] += 1
        return real_read(self)

    monkeypatch.setattr(fk, "_hash_file", counting_hash)
    monkeypatch.setattr(Path, "read_bytes", counting_read)
    config = dict(data=str(shapes_dir), model="tiny-random", cache_dir=str(tmp_path / "cache"), fit_fraction=0.0)
    run_eval(EvalConfig(out=str(tmp_path / "a"), **config))
    n = json.loads((tmp_path / "a" / "run.json").read_text())["encode"]["images"]["encoded"]
    assert n > 0 and reads == {"hash": n, "encode": n}
    reads.update(hash=0, encode=0)
    run_eval(EvalConfig(out=str(tmp_path / "b"), **config))
    assert reads == {"hash": 0, "encode": 0}
    assert json.loads((tmp_path / "b" / "run.json").read_text())["encode"]["images"]["hashed"] == 0


def _copies(shapes_dir, tmp_path, n=6):
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for p in sorted((shapes_dir / "compositions" / "images").iterdir())[:n]:
        (folder / p.name).write_bytes(p.read_bytes())
        paths.append(folder / p.name)
    return paths


def test_an_image_changed_between_listing_and_encoding_stops_the_run(shapes_dir, tmp_path, monkeypatch, not_racy):
    """The last image is rewritten, same size, after the listing hashed it: its stat
    signature moved (ctime), so encoding hashes it again and finds another content."""
    from vgrc.evaluators.encoders.setup import EncodingSetup
    from vgrc.evaluators.errors import DatasetFolderError
    from vgrc.evaluators.pipeline import EvalConfig

    paths = _copies(shapes_dir, tmp_path)
    real = FileKeys.keys

    def list_then_edit(self, ps):
        keys = real(self, ps)
        data = bytearray(paths[-1].read_bytes())
        data[-20] ^= 0xFF
        paths[-1].write_bytes(bytes(data))
        return keys

    monkeypatch.setattr(FileKeys, "keys", list_then_edit)
    setup = EncodingSetup(EvalConfig(model="tiny-random", cache_dir=str(tmp_path / "cache")))
    with pytest.raises(DatasetFolderError, match=f"{paths[-1].name} changed while this run was encoding it"):
        setup.encode_images(paths, lambda *a: None)


@pytest.mark.parametrize("racy", [False, True])
def test_encoding_hashes_again_only_what_the_listing_cannot_vouch_for(shapes_dir, tmp_path, monkeypatch, racy):
    """First run: the listing hashes each image; encoding reads each once and hashes none of
    them again, unless they were racy when listed (then each is hashed again)."""
    from vgrc.evaluators.encoders import setup as encoding
    from vgrc.evaluators.encoders.setup import EncodingSetup
    from vgrc.evaluators.pipeline import EvalConfig

    monkeypatch.setattr(fk, "RACY_SECONDS", 3600.0 if racy else 0.0)
    paths = _copies(shapes_dir, tmp_path)
    rehashed = []
    real_key = encoding.content_key
    monkeypatch.setattr(encoding, "content_key", lambda data: rehashed.append(1) or real_key(data))
    setup = EncodingSetup(EvalConfig(model="tiny-random", cache_dir=str(tmp_path / "cache")))
    emb, failed, _ = setup.encode_images(paths, lambda *a: None)
    assert not failed.any() and setup.stats["images"].hashed == 6
    assert len(rehashed) == (6 if racy else 0)
    again = EncodingSetup(EvalConfig(model="tiny-random", cache_dir=str(tmp_path / "cache2")))  # same files, another cache
    assert np.array_equal(again.encode_images(paths, lambda *a: None)[0], emb)


def test_read_vouches_only_for_the_listed_signature(files, tmp_path, not_racy):
    memo = FileKeys(tmp_path / "cache")
    memo.keys(files[:3])
    assert memo.read(files[0]) == (files[0].read_bytes(), True)
    assert memo.read(files[4])[1] is False  # never listed
    files[1].write_bytes(files[1].read_bytes())  # same bytes, rewritten: the ctime moved
    assert memo.read(files[1])[1] is False
    remembered = FileKeys(tmp_path / "cache")
    remembered.keys(files[:3])  # answered from the memo: vouched for as well
    assert remembered.remembered == 2 and remembered.read(files[2])[1] is True
