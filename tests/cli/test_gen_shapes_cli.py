"""`vgrc gen-shapes` through the real CLI: success, every bad-input path, kill + resume."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import one_error_line, tree_digest
from typer.testing import CliRunner

from vgrc.cli.main import app
from vgrc.evaluators.errors import VgrcError

runner = CliRunner()
SMALL = ["--size", "32", "--limit", "12", "--seed", "1"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_version_and_help():
    from vgrc.evaluators import __version__

    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"vgrc {__version__}"
    result = run("--help")
    assert result.exit_code == 0 and "gen-shapes" in result.stdout
    result = run("gen-shapes", "--help")
    assert result.exit_code == 0
    for option in ("--out", "--size", "--limit", "--shapes", "--colors", "--seed", "--workers", "--overwrite", "--quiet", "--debug"):
        assert option in result.stdout


def test_builds_and_reports(tmp_path):
    result = run("gen-shapes", "--out", tmp_path / "d", *SMALL, "--shapes", "circle,star", "--colors", "red", "--colors", "blue")
    assert result.exit_code == 0, result.output
    assert "built (12 compositions, 4 primitives; 16 rendered, 0 kept)" in result.stdout
    assert len(list((tmp_path / "d" / "compositions" / "images").iterdir())) == 12
    result = run("gen-shapes", "--out", tmp_path / "d", *SMALL, "--shapes", "star,circle", "--colors", "blue,red", "-q")
    assert result.exit_code == 0 and result.stdout == ""  # same dataset (order-insensitive), quiet


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--shapes", "circle,blob"], "unknown shape 'blob'; valid shapes: circle, square, triangle, pentagon, hexagon, star"),
        (["--colors", "teal"], "unknown color 'teal'; valid colors: red, orange, yellow, green, blue, purple, black"),
        (["--size", "16"], "--size must be an integer ≥ 32 pixels, got 16"),
    ],
)
def test_bad_vocabulary_and_size(tmp_path, extra, message):
    result = run("gen-shapes", "--out", tmp_path / "d", "--limit", "3", *extra)
    assert one_error_line(result) == f"error: {message}"
    assert not (tmp_path / "d").exists()


def test_different_dataset_needs_overwrite(tmp_path):
    out = tmp_path / "d"
    assert run("gen-shapes", "--out", out, *SMALL).exit_code == 0
    line = one_error_line(run("gen-shapes", "--out", out, "--size", "40", "--limit", "12", "--seed", "1"))
    assert "holds a different dataset" in line and "--overwrite" in line
    result = run("gen-shapes", "--out", out, "--size", "40", "--limit", "12", "--seed", "1", "--overwrite", "-q")
    assert result.exit_code == 0, result.output
    assert '"size": 40' in (out / "manifest.json").read_text()


def test_foreign_and_unwritable_folders(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    line = one_error_line(run("gen-shapes", "--out", tmp_path / "notes", *SMALL, "--overwrite"))
    assert "is not empty and is not a vgrc dataset" in line
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    assert "cannot create --out" in one_error_line(run("gen-shapes", "--out", tmp_path / "file" / "d", *SMALL))
    assert "is not a folder" in one_error_line(run("gen-shapes", "--out", tmp_path / "file", *SMALL))


def test_debug_shows_the_exception(tmp_path):
    result = run("gen-shapes", "--out", tmp_path / "d", "--shapes", "blob", "--debug")
    assert result.exit_code != 0 and isinstance(result.exception, VgrcError)


def test_typer_rejects_bad_numbers(tmp_path):
    result = run("gen-shapes", "--out", tmp_path / "d", "--limit", "0")
    assert result.exit_code == 2 and "--limit" in result.output


def _vgrc() -> list[str]:
    exe = Path(sys.executable).with_name("vgrc")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "vgrc.cli.main"]


def test_sigkill_then_resume_is_byte_identical(tmp_path):
    """Kill the real process mid-run (no cleanup at all), rerun, compare with a clean build."""
    args = ["gen-shapes", "--size", "64", "--limit", "1500", "--seed", "5", "--workers", "2", "-q"]
    env = {**os.environ, "CI": "true"}
    out = tmp_path / "d"  # same --out for both runs: the manifest records the command line
    subprocess.run([*_vgrc(), *args, "--out", str(out)], check=True, env=env, stdin=subprocess.DEVNULL)
    clean = tree_digest(out)
    shutil.rmtree(out)
    proc = subprocess.Popen([*_vgrc(), *args, "--out", str(out)], env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    images = out / "compositions" / "images"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if images.is_dir() and sum(1 for _ in images.iterdir()) >= 200:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = sum(1 for p in images.iterdir() if p.suffix == ".png")
    assert 0 < n_before < 1500, "the build was not interrupted mid-run"
    assert not (out / "manifest.json").exists()
    subprocess.run([*_vgrc(), *args, "--out", str(out)], check=True, env=env, stdin=subprocess.DEVNULL)
    assert tree_digest(out) == clean


def _count_pngs(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.suffix == ".png") if folder.is_dir() else 0


def _interrupt(out: Path, args: list[str], target: str, when) -> tuple[int, str]:
    """Start gen-shapes, wait until ``when(elapsed)`` is true, SIGINT the process group or
    the parent alone; return (exit code, stderr). Fails if it does not end within 30 s."""
    env = {**os.environ, "CI": "true"}
    proc = subprocess.Popen([*_vgrc(), *args, "--out", str(out)], env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while proc.poll() is None and not when(time.monotonic() - t0) and time.monotonic() - t0 < 60:
        time.sleep(0.005)
    assert proc.poll() is None, "the build finished before it could be interrupted"
    (os.killpg if target == "group" else os.kill)(proc.pid, signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"SIGINT to the {target} did not end the command within 30 s") from None
    return proc.returncode, stderr


@pytest.mark.slow
@pytest.mark.parametrize("target", ["group", "parent"])
def test_sigint_at_any_moment_ends_with_the_resume_line(tmp_path, target):
    """Ctrl-C (SIGINT to the process group) or a SIGINT to the parent alone, at moments
    from start-up through primitive and tile rendering (cairo) to busy workers: each run
    ends within seconds with exit code 130, the one 'interrupted' line and no traceback
    (the review saw a cairo OSError traceback and exit 1 early, and a hang). After the
    last interrupt a rerun finishes byte-identical to a clean build."""
    args = ["gen-shapes", "--size", "64", "--limit", "5000", "--seed", "7", "--workers", "2"]
    out = tmp_path / "d"
    images = out / "compositions" / "images"
    marker = out / ".vgrc-build.json"
    seen: dict = {}

    def marker_stamp():
        try:
            st = marker.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def after_claim(delay):
        """``delay`` s after this run writes the build marker (the command is running, its
        folder claimed; then references and tiles render in cairo, then workers start).
        Each run rewrites the marker (a new file, renamed into place), so an interrupted
        earlier run's marker is not taken for this run's: that would interrupt the Python
        start-up itself, before vgrc runs any code."""
        def when(t):
            if "claimed" not in seen and marker_stamp() not in (None, seen["before"]):
                seen["claimed"] = t
            return "claimed" in seen and t - seen["claimed"] >= delay
        return when

    moments = [after_claim(d) for d in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)] + [lambda t: _count_pngs(images) >= 300]
    for when in moments:
        seen.clear()
        seen["before"] = marker_stamp()
        rc, stderr = _interrupt(out, args, target, when)
        assert rc == 130 and "Traceback" not in stderr and "interrupted" in stderr, stderr
        assert not (out / "manifest.json").exists()
    env = {**os.environ, "CI": "true"}
    subprocess.run([*_vgrc(), *args, "-q", "--out", str(out)], check=True, env=env, stdin=subprocess.DEVNULL)
    resumed = tree_digest(out)
    shutil.rmtree(out)
    subprocess.run([*_vgrc(), *args, "-q", "--out", str(out)], check=True, env=env, stdin=subprocess.DEVNULL)
    assert tree_digest(out) == resumed


def test_sigint_inside_a_deferred_block_is_delivered_after_it():
    """A SIGINT that lands while cairo renders is held and raised in Python right after."""
    from vgrc.generators.shapes.render import _sigint_deferred

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with _sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            reached.append("end of block")  # not interrupted half-way
    assert reached == ["end of block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_workers_end_quietly_with_their_parent(tmp_path, sig):
    """Issue 21: SIGTERM or kill -9 to gen-shapes' parent alone: its workers end with it,
    with no BrokenPipeError traceback each, and the same command then finishes the build."""
    import psutil

    args = ["gen-shapes", "--size", "64", "--limit", "3000", "--seed", "5", "--workers", "2", "-q"]
    out = tmp_path / "d"
    proc = subprocess.Popen([*_vgrc(), *args, "--out", str(out)], env={**os.environ, "CI": "true"}, stdin=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    images = out / "compositions" / "images"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and _count_pngs(images) < 200:
        time.sleep(0.01)
    workers = psutil.Process(proc.pid).children()
    assert len(workers) >= 2 and proc.poll() is None, "the build was not caught with its workers running"
    os.kill(proc.pid, sig)  # the parent alone, as `kill PID` does
    _, stderr = proc.communicate(timeout=30)  # returns once every holder of the pipe (the workers too) is gone
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    _, alive = psutil.wait_procs(workers, timeout=5)  # the kernel's SIGKILL is on its way; without it they would wait for work forever
    assert not alive, alive
    assert _count_pngs(images) < 3000
    done = subprocess.run([*_vgrc(), *args, "--out", str(out)], env={**os.environ, "CI": "true"}, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert done.returncode == 0 and (out / "manifest.json").exists(), done.stderr


def test_a_ctrl_c_inside_a_weakref_callback_or_finalizer_is_raised_at_the_next_safe_point():
    """Issue 21: a KeyboardInterrupt raised inside a weakref callback is only printed by
    Python ("Exception ignored in ... WeakKeyDictionary.remove") and lost. The handler
    records it there and the next progress callback (or the command's end) raises it."""
    from vgrc.cli import console

    namespace: dict = {}
    exec(compile("import sys\ndef remove(wr):\n    return sys._getframe()\n", "/usr/lib/python3/weakref.py", "exec"), namespace)

    class Finalized:
        def __del__(self):
            namespace["del_frame"] = sys._getframe()

    Finalized()
    for frame in (namespace["remove"](None), namespace["del_frame"]):
        console._INTERRUPT["requested"] = False
        console._on_sigint(signal.SIGINT, frame)  # does not raise: Python would swallow it here
        assert console._INTERRUPT["requested"]
        with pytest.raises(KeyboardInterrupt):
            console.check_interrupt()  # ... and a safe point raises it
    console._INTERRUPT["requested"] = False
    with pytest.raises(KeyboardInterrupt):
        console._on_sigint(signal.SIGINT, sys._getframe())  # anywhere else: at once, as before
    console._INTERRUPT["requested"] = False
