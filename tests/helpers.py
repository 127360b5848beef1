"""Helpers shared by the tests (importable: tests/ is on pytest's pythonpath)."""

import hashlib
from pathlib import Path

SMALL_SHAPES = dict(size=64, limit=60, seed=7)


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root``, keyed by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_error_line(result) -> str:
    """A CLI result that failed with exit code 2 and exactly one ``error:`` line, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


def eval_one_and_sharded(tmp_path: Path, *args) -> tuple[dict, dict]:
    """`vgrc eval ARGS` in one process and with `--shards 2` (torch.distributed's launcher,
    2 local gloo workers), each with its own cache; both runs' metrics (without the config),
    after checking that both succeeded and wrote the same files and the same per-query table."""
    import json
    import subprocess
    import sys

    import pandas as pd

    runs = {}
    for name, extra in (("one", ()), ("two", ("--shards", "2"))):
        cmd = [sys.executable, "-m", "vgrc.cli.main", "eval", *map(str, args), "--out", str(tmp_path / name), "--cache-dir", str(tmp_path / f"cache-{name}"), "-q", *extra]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        runs[name] = {k: v for k, v in metrics.items() if k != "config"}
    one, two = tmp_path / "one", tmp_path / "two"
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    assert pd.read_parquet(one / "per_query.parquet").equals(pd.read_parquet(two / "per_query.parquet"))
    return runs["one"], runs["two"]
