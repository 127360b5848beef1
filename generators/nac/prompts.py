"""NAC contrasts and prompts (paper §3, App. F.1): ``vgrc build-nac --dry-run``.

A contrast file is YAML with ``contrasts`` (a list of ``{attributes: [a, b], nouns: [...],
status}``), optional ``scenes`` (noun -> template with ``{subject}``), ``generic_scene``
and ``realism_suffix``. For each (contrast, noun) and sample, two prompts share the noun
and the scene and differ only in the attribute clause ("an open box" / "a closed box").
Per-pair seeds derive from (seed, noun, attributes, sample), so they do not depend on
how the pairs are split across shards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from vgrc.evaluators.errors import InvalidInputError
from vgrc.generators.vg.contrasts import normalize_term
from vgrc.generators._util.yaml_files import load_yaml

__all__ = ["NACContrasts", "NACPair", "load_nac_contrasts", "load_plausible", "make_pairs", "subject_clause"]


@dataclass(frozen=True)
class NACContrasts:
    pairs: tuple[tuple[str, str, str, str], ...]  # (noun, attribute_a, attribute_b, status)
    scenes: dict
    generic_scene: str
    realism_suffix: str


@dataclass(frozen=True)
class NACPair:
    """One pair of prompts: the same scene and seed, two attributes."""

    pair_id: str
    noun: str
    attribute_a: str
    attribute_b: str
    prompt_a: str
    prompt_b: str
    seed: int
    sample: int
    status: str

    def row(self) -> dict:
        return {
            "pair_id": self.pair_id, "noun": self.noun, "attribute_a": self.attribute_a, "attribute_b": self.attribute_b,
            "prompt_a": self.prompt_a, "prompt_b": self.prompt_b, "seed": self.seed, "sample": self.sample, "status": self.status,
        }


def subject_clause(attribute: str, noun: str) -> str:
    """``"an open box"``: indefinite article, attribute, noun."""
    article = "an" if attribute[:1] in "aeiou" else "a"
    return f"{article} {attribute} {noun}"


def load_nac_contrasts(path: str | Path | None = None) -> NACContrasts:
    """The shipped contrasts or a user file, validated; errors name the entry and the field."""
    data, where = load_yaml(path, "nac_contrasts.yaml", "--contrasts")
    if not isinstance(data, dict) or not isinstance(data.get("contrasts"), list) or not data["contrasts"]:
        raise InvalidInputError(f"{where}: expected a mapping with a non-empty 'contrasts' list")
    scenes = data.get("scenes") or {}
    if not isinstance(scenes, dict):
        raise InvalidInputError(f"{where}: 'scenes' must map nouns to templates with {{subject}}")
    for noun, template in scenes.items():
        if not isinstance(template, str) or "{subject}" not in template:
            raise InvalidInputError(f"{where}: scenes.{noun}: the template must be text containing {{subject}}")
    generic = data.get("generic_scene", "a photo of {subject}")
    if not isinstance(generic, str) or "{subject}" not in generic:
        raise InvalidInputError(f"{where}: generic_scene must be text containing {{subject}}")
    suffix = data.get("realism_suffix", "realistic details, no text, no watermark")
    pairs, seen = [], {}
    for n, entry in enumerate(data["contrasts"], 1):
        if not isinstance(entry, dict):
            raise InvalidInputError(f"{where}: contrasts entry {n} must be a mapping with attributes and nouns")
        extra = set(entry) - {"attributes", "nouns", "status"}
        if extra:
            raise InvalidInputError(f"{where}: contrasts entry {n}: unknown field(s) {', '.join(sorted(map(str, extra)))}")
        attrs = entry.get("attributes")
        if not isinstance(attrs, list) or len(attrs) != 2 or not all(isinstance(a, str) and normalize_term(a) for a in attrs):
            raise InvalidInputError(f"{where}: contrasts entry {n}: 'attributes' must be two words, e.g. [open, closed]")
        a, b = (normalize_term(x) for x in attrs)
        if a == b:
            raise InvalidInputError(f"{where}: contrasts entry {n}: 'attributes' are the same word {a!r}")
        nouns = entry.get("nouns")
        if not isinstance(nouns, list) or not nouns or not all(isinstance(x, str) and normalize_term(x) for x in nouns):
            raise InvalidInputError(f"{where}: contrasts entry {n} ({a}/{b}): 'nouns' must be a non-empty list of words")
        for noun in (normalize_term(x) for x in nouns):
            key = (noun, frozenset((a, b)))
            if key in seen:
                raise InvalidInputError(f"{where}: contrasts entry {n}: {noun} with {a}/{b} repeats entry {seen[key]}")
            seen[key] = n
            pairs.append((noun, a, b, str(entry.get("status", "candidate"))))
    return NACContrasts(tuple(pairs), {normalize_term(k): v for k, v in scenes.items()}, generic, suffix)


def load_plausible(path: str | Path | None = None) -> dict[str, list[str]]:
    """noun -> plausible attributes (the verifier asks about each)."""
    data, where = load_yaml(path, "nac_plausible.yaml", "--plausible")
    data = data or {}
    if not isinstance(data, dict):
        raise InvalidInputError(f"{where}: expected a mapping noun -> [attributes]")
    out = {}
    for noun, attrs in data.items():
        if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
            raise InvalidInputError(f"{where}: {noun}: expected a list of attribute words")
        out[normalize_term(str(noun))] = [normalize_term(a) for a in attrs]
    return out


def _pair_seed(seed: int, noun: str, a: str, b: str, sample: int) -> int:
    digest = hashlib.sha256(f"{seed}|{noun}|{a}|{b}|{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def make_pairs(contrasts: NACContrasts, samples_per_contrast: int, seed: int, limit: int | None = None) -> list[NACPair]:
    """All prompt pairs in file order (contrast, noun, sample); ``limit`` keeps the first N."""
    if samples_per_contrast < 1:
        raise InvalidInputError(f"--samples-per-contrast must be ≥ 1, got {samples_per_contrast}")
    out = []
    for noun, a, b, status in contrasts.pairs:
        scene = contrasts.scenes.get(noun, contrasts.generic_scene)
        for s in range(samples_per_contrast):
            prompts = [scene.format(subject=subject_clause(x, noun)) + (f", {contrasts.realism_suffix}" if contrasts.realism_suffix else "") for x in (a, b)]
            slug = f"{noun}-{a}-{b}".replace(" ", "_")
            out.append(NACPair(f"{slug}-{s:03d}", noun, a, b, prompts[0], prompts[1], _pair_seed(seed, noun, a, b, s), s, status))
            if limit is not None and len(out) >= limit:
                return out
    return out
