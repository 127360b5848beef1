"""Propose NAC contrasts from MIT-States (paper App. F.1 "Attribute and noun curation").

Input: an MIT-States folder holding ``adj_ants.csv`` (each line: an adjective, then its
antonyms) and the image folders named "adj noun" (under ``release_dataset/images/``,
``images/`` or the folder itself). A candidate contrast is (noun, a, b) where both
"a noun" and "b noun" folders exist and b is an antonym of a. The filter lists below
replace the paper's WordNet + manual pass. Each is documented, and every drop is counted:

- :data:`AMBIGUOUS`: relative size, weight or age, which no single image shows
  unambiguously ("large", "old").
- :data:`LIGHTING_DEPENDENT`: attributes that lighting or exposure can fake ("bright",
  "dark", "shiny").
- :data:`TOO_GENERIC`: attributes true of almost any instance, or not visual
  ("standing", "painted").
- :data:`NEAR_DUPLICATES`: surface variants folded into one canonical adjective, so
  the same contrast is not proposed twice ("crinkled" -> "crumpled").
- :data:`REDUNDANT_NOUNS`: nouns too vague to give a scene ("thing", "object").

The output is a contrast file in ``--contrasts`` format (status ``candidate``), to review
and pass to ``vgrc build-nac --contrasts``.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.user_files import open_text, reading
from vgrc.generators.vg.contrasts import normalize_term

__all__ = ["AMBIGUOUS", "LIGHTING_DEPENDENT", "TOO_GENERIC", "NEAR_DUPLICATES", "REDUNDANT_NOUNS", "propose_contrasts", "contrasts_yaml"]

AMBIGUOUS = frozenset({"large", "small", "huge", "tiny", "big", "tall", "short", "thick", "thin", "wide", "narrow", "heavy", "lightweight", "old", "new", "young", "ancient", "modern"})
LIGHTING_DEPENDENT = frozenset({"bright", "dark", "dim", "dull", "shiny", "murky", "cloudy", "steaming"})
TOO_GENERIC = frozenset({"standing", "painted", "unpainted", "linked", "loose", "tight", "draped", "engraved", "fresh"})
NEAR_DUPLICATES = {"crinkled": "crumpled", "creased": "wrinkled", "damp": "wet", "filled": "full", "cut": "sliced", "squished": "crushed", "molten": "melted", "ripped": "torn", "splintered": "shattered"}
REDUNDANT_NOUNS = frozenset({"thing", "object", "item", "stuff", "room"})


def _image_folders(root: Path) -> list[str]:
    for base in (root / "release_dataset" / "images", root / "images", root):
        if base.is_dir():
            names = [p.name for p in base.iterdir() if p.is_dir() and " " in p.name]
            if names:
                return names
    raise InvalidInputError(f"{root}: no 'adj noun' image folders found (looked in release_dataset/images/, images/ and the folder itself)")


def propose_contrasts(root: str | Path) -> tuple[list[tuple[str, str, list[str]]], Counter]:
    """``[(a, b, nouns)]`` candidate contrasts and the counts of what each filter dropped."""
    root = Path(root)
    ants_path = root / "adj_ants.csv"
    if not ants_path.is_file():
        raise InvalidInputError(f"{ants_path} is missing; expected the MIT-States folder with adj_ants.csv and the 'adj noun' image folders")
    canon = lambda w: NEAR_DUPLICATES.get(w, w)  # noqa: E731
    dropped: Counter = Counter()
    antonyms: dict[str, set[str]] = defaultdict(set)
    with reading(ants_path), open_text(ants_path, newline="") as fh:
        for row in csv.reader(fh):
            words = [normalize_term(w) for w in row if normalize_term(w)]
            if len(words) < 2:
                continue
            a = canon(words[0])
            for b in words[1:]:
                antonyms[a].add(canon(b))
                antonyms[canon(b)].add(a)
    nouns_by_adj: dict[str, set[str]] = defaultdict(set)
    for name in _image_folders(root):
        adj, _, noun = normalize_term(name).partition(" ")
        if adj in NEAR_DUPLICATES:
            dropped["near_duplicate_adjective_folded"] += 1
        adj = canon(adj)
        if noun in REDUNDANT_NOUNS:
            dropped["redundant_noun"] += 1
            continue
        nouns_by_adj[adj].add(noun)
    out = []
    for a in sorted(antonyms):
        for b in sorted(antonyms[a]):
            if a >= b:
                continue
            reason = next((why for why, words in (("ambiguous", AMBIGUOUS), ("lighting_dependent", LIGHTING_DEPENDENT), ("too_generic", TOO_GENERIC)) if a in words or b in words), None)
            shared = sorted(nouns_by_adj[a] & nouns_by_adj[b])
            if not shared:
                continue
            if reason:
                dropped[f"{reason}_pair"] += 1
                continue
            out.append((a, b, shared))
    return out, dropped


#: first line of every file propose-nac writes: what it may replace with --overwrite
HEADER = "# NAC candidate contrasts proposed from MIT-States by `vgrc propose-nac`."


def contrasts_yaml(candidates, dropped: Counter) -> str:
    """The proposals as a contrast file (``vgrc build-nac --contrasts`` format)."""
    lines = [HEADER, "# Review before use. Dropped by the filters:"]
    lines += [f"#   {k}: {v}" for k, v in sorted(dropped.items())] or ["#   nothing"]
    lines += ['generic_scene: "a photo of {subject} in an everyday setting, natural light"', 'realism_suffix: "realistic details, no text, no watermark"', "contrasts:"]
    for a, b, nouns in candidates:
        lines.append(f"  - {{attributes: [{a}, {b}], nouns: [{', '.join(nouns)}], status: candidate}}")
    return "\n".join(lines) + "\n"
