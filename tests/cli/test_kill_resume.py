"""Issue 21: a run killed at any moment is finished by the same command.

Two kinds of kill, both real SIGKILLs of a separate `vgrc` process:
- timed: at 50 % … 99 % of an uninterrupted (cached) run's wall time;
- placed: inside the N-th atomic write into the output folder, after its temporary file
  is written and before the rename (the process dies holding a ``*.vgrc-tmp-*``), for
  every write the run makes, so the last half second is covered whatever the timing.
Then the same command again must exit 0 and leave outputs equal to an uninterrupted run's.
"""

import json
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

# kills the process inside its N-th atomic write under OUT (argv: N OUT, then vgrc's argv)
KILLER = """
import os, signal, sys
import vgrc.evaluators.atomic as atomic
n, out = int(sys.argv[1]), os.path.realpath(sys.argv[2])
calls = [0]
real = atomic.atomic_replace_with
def dying(path, write):
    if os.path.realpath(path).startswith(out + os.sep):
        calls[0] += 1
        if calls[0] == n:
            write(atomic.temporary_path(path))
            os.kill(os.getpid(), signal.SIGKILL)
    return real(path, write)
atomic.atomic_replace_with = dying
sys.argv = ["vgrc", *sys.argv[3:]]
from vgrc.cli.main import main
main()
"""


def _vgrc(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "vgrc.cli.main", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _kill_at_write(n, out, *args):
    return subprocess.run([sys.executable, "-c", KILLER, str(n), str(out), *map(str, args)], capture_output=True, text=True, timeout=300)


def _kill_after(seconds, *args):
    proc = subprocess.Popen([sys.executable, "-m", "vgrc.cli.main", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def _finish_again(args, out, finished_before: bool):
    """The same command after the kill: finishes the run (or, if the killed process had
    already finished it, says the run is there)."""
    again = _vgrc(*args)
    if again.returncode == 2 and "already holds a vgrc run; pass --overwrite" in again.stderr:
        assert finished_before, f"refused an unfinished run: {again.stderr}"
        return
    assert again.returncode == 0, f"rc {again.returncode}: {again.stderr[-1500:]}"
    assert "Traceback" not in again.stderr


def _complete(out) -> bool:
    try:
        return json.loads((out / "run.json").read_text()).get("complete") is True
    except (OSError, ValueError):
        return False


def _eval_outputs(out):
    return json.loads((out / "metrics.json").read_text()), pd.read_parquet(out / "per_query.parquet")


@pytest.mark.slow
def test_eval_killed_at_any_moment_is_finished_by_the_same_command(shapes_dir, tmp_path):
    cache = tmp_path / "cache"
    base = ["eval", "--data", shapes_dir, "--model", "tiny-random", "--rerank", "fgw", "--k", "10", "--cache-dir", cache, "-q"]
    ref = tmp_path / "ref"
    assert _vgrc(*base, "--out", ref).returncode == 0  # warms the cache too
    t0 = time.perf_counter()
    assert _vgrc(*base, "--out", tmp_path / "timed-ref").returncode == 0
    seconds = time.perf_counter() - t0
    want_metrics, want_rows = _eval_outputs(ref)

    def check(out):
        metrics, rows = _eval_outputs(out)
        assert metrics == want_metrics
        assert rows.equals(want_rows)
        assert _complete(out) and not list(out.glob("*.vgrc-tmp-*"))

    for fraction in (0.5, 0.9, 0.99):
        out = tmp_path / f"timed-{fraction}"
        _kill_after(fraction * seconds, *base, "--out", out)
        _finish_again([*base, "--out", out], out, finished_before=_complete(out))
        check(out)

    # placed kills, over a folder that held another run: the --overwrite path; every write
    previous = tmp_path / "previous"
    assert _vgrc(*base, "--rerank", "none", "--out", previous).returncode == 0
    writes = 0
    for n in range(1, 12):
        out = tmp_path / f"write-{n}"
        shutil.copytree(previous, out)
        args = [*base, "--out", out, "--overwrite"]
        killed = _kill_at_write(n, out, *args)
        if killed.returncode != -signal.SIGKILL:
            assert killed.returncode == 0, killed.stderr[-1500:]
            break  # the run makes fewer than n writes: every one was covered
        writes = n
        assert list(out.glob("*.vgrc-tmp-*")), "the kill landed inside an atomic write"
        assert json.loads((out / "run.json").read_text())["format"] == "vgrc-run/1"  # the folder stays vgrc's
        _finish_again(args, out, finished_before=False)
        check(out)
    assert writes >= 7  # marker(s), metrics ×3, per_query, plot, final run.json


@pytest.mark.slow
def test_diagnose_killed_at_any_moment_is_finished_by_the_same_command(shapes_dir, tmp_path):
    args = ["diagnose", "substitution", "--data", shapes_dir, "--model", "tiny-random", "--top-k", "3", "--cache-dir", tmp_path / "cache", "-q"]
    ref = tmp_path / "ref"
    assert _vgrc(*args, "--out", ref).returncode == 0
    want = (ref / "substitution_counts.csv").read_text()
    for n in range(1, 10):
        out = tmp_path / f"write-{n}"
        killed = _kill_at_write(n, out, *args, "--out", out)
        if killed.returncode != -signal.SIGKILL:
            assert killed.returncode == 0 and n >= 6, killed.stderr[-1500:]
            break
        _finish_again([*args, "--out", out], out, finished_before=False)  # no --overwrite needed
        assert (out / "substitution_counts.csv").read_text() == want and _complete(out)
        assert json.loads((out / "run.json").read_text())["summary"] == json.loads((ref / "run.json").read_text())["summary"]


@pytest.mark.slow
def test_show_killed_at_any_moment_is_finished_by_the_same_command(shapes_dir, tmp_path):
    """vgrc show killed inside each of its atomic writes, and at timed moments while it
    makes thumbnails: the same command finishes the site, equal to an uninterrupted
    build's files (index.html aside: it carries the build time), no temporaries left."""
    from helpers import tree_digest

    run = tmp_path / "run"
    assert _vgrc("eval", "--data", shapes_dir, "--model", "tiny-random", "--rerank", "fgw", "--k", "10", "--save-plans", "5",
                 "--cache-dir", tmp_path / "cache", "--out", run, "-q").returncode == 0

    def files(out):
        return {k: v for k, v in tree_digest(out).items() if k != "index.html"}

    base = ["show", run, "--workers", "1", "-q"]
    ref = tmp_path / "ref"
    t0 = time.perf_counter()
    assert _vgrc(*base, "--out", ref).returncode == 0
    seconds = time.perf_counter() - t0
    want = files(ref)

    def finish(out):
        try:
            finished = json.loads((out / "site.json").read_text())["complete"] is True
        except (OSError, ValueError):
            finished = False
        again = _vgrc(*base, "--out", out)
        if finished and again.returncode == 2 and "pass --overwrite" in again.stderr:
            again = _vgrc(*base, "--out", out, "--overwrite")  # the killed process had finished: the site is there
        assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-1500:]
        assert files(out) == want
        assert not [p for p in out.rglob("*") if ".vgrc-tmp-" in p.name]

    writes = 0
    for n in range(1, 12):
        out = tmp_path / f"write-{n}"
        killed = _kill_at_write(n, out, *base, "--out", out)
        if killed.returncode != -signal.SIGKILL:
            assert killed.returncode == 0, killed.stderr[-1500:]
            break
        writes = n
        assert [p for p in out.rglob("*") if ".vgrc-tmp-" in p.name], "the kill landed inside an atomic write"
        finish(out)
    assert writes >= 5  # site.json ×3, plans, queries.js, index.html, final site.json
    for fraction in (0.5, 0.8, 0.95):
        out = tmp_path / f"timed-{fraction}"
        _kill_after(fraction * seconds, *base, "--out", out)
        finish(out)
