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
