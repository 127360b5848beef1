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
