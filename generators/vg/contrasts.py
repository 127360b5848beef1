"""Contrastive attribute pairs for Visual Genome (paper App. F.1): loading and validation.

A contrast file is a YAML list of ``{category, a, b}`` entries, where ``a`` and ``b`` are
synonym lists (the two poles). The shipped file (``vocab/vg_contrasts.yaml``) holds the
paper's 80 pairs in 9 categories; users pass their own with ``--contrasts FILE`` in the
same form. Validation names the entry and the problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vgrc.evaluators.errors import InvalidInputError
from vgrc.generators._util.yaml_files import load_yaml

__all__ = ["ContrastPair", "load_contrasts", "normalize_term", "SHIPPED_COUNTS"]

#: category -> number of pairs in the shipped file (paper App. F.1)
SHIPPED_COUNTS = {"color": 14, "state": 17, "texture": 9, "shape": 8, "environment": 8, "size": 6, "pose": 7, "human": 6, "material": 5}
_SPACES = re.compile(r"\s+")


def normalize_term(text: str) -> str:
    """Lower case, single spaces, no surrounding spaces, no trailing periods."""
    return _SPACES.sub(" ", text).strip().lower().rstrip(".").strip()


@dataclass(frozen=True)
class ContrastPair:
    """One contrast: two synonym sets (poles) within a category."""

    category: str
    a: tuple[str, ...]
    b: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.a[0]}/{self.b[0]}"


def _pole(entry_no: int, entry: dict, key: str, where: str) -> tuple[str, ...]:
    words = entry.get(key)
    if not isinstance(words, list) or not words:
        raise InvalidInputError(f"{where}: entry {entry_no} ({entry.get('category', '?')}): '{key}' must be a non-empty list of words")
    out = []
    for w in words:
        if isinstance(w, bool):
            raise InvalidInputError(
                f"{where}: entry {entry_no} ({entry.get('category', '?')}): '{key}' holds {w!r}: YAML reads on/off/yes/no as booleans, quote the word (\"on\")"
            )
        if not isinstance(w, (str, int, float)) or not normalize_term(str(w)):
            raise InvalidInputError(f"{where}: entry {entry_no} ({entry.get('category', '?')}): '{key}' holds an empty or non-text word {w!r}")
        term = normalize_term(str(w))
        if term not in out:
            out.append(term)
    return tuple(out)


def load_contrasts(path: str | Path | None = None) -> list[ContrastPair]:
    """The shipped pairs, or a user file's, validated.

    Raises
    ------
    InvalidInputError
        Unreadable or invalid YAML, an entry that is not a mapping, unknown keys, an
        empty category or pole, a word in both poles, or a duplicate pair (in either
        direction). The message names the file and the entry (1-based).
    """
    data, where = load_yaml(path, "vg_contrasts.yaml", "--contrasts")
    if not isinstance(data, list) or not data:
        raise InvalidInputError(f"{where}: expected a non-empty YAML list of {{category, a, b}} entries")
    pairs: list[ContrastPair] = []
    seen: dict[frozenset, int] = {}
    for n, entry in enumerate(data, 1):
        if not isinstance(entry, dict):
            raise InvalidInputError(f"{where}: entry {n} must be a mapping with keys category, a, b")
        extra = set(entry) - {"category", "a", "b"}
        if extra:
            raise InvalidInputError(f"{where}: entry {n}: unknown key(s) {', '.join(sorted(map(str, extra)))}; expected category, a, b")
        category = entry.get("category")
        if not isinstance(category, str) or not category.strip():
            raise InvalidInputError(f"{where}: entry {n}: 'category' must be a non-empty string")
        a, b = _pole(n, entry, "a", where), _pole(n, entry, "b", where)
        both = sorted(set(a) & set(b))
        if both:
            raise InvalidInputError(f"{where}: entry {n} ({category}): {', '.join(repr(w) for w in both)} in both poles")
        key = frozenset((frozenset(a), frozenset(b)))
        if key in seen:
            raise InvalidInputError(f"{where}: entry {n} ({category}) duplicates entry {seen[key]}")
        seen[key] = n
        pairs.append(ContrastPair(normalize_term(category), a, b))
    return pairs
