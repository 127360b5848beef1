"""Per-object sets parsed from captions, for data without object annotations (issue 10).

Registry :data:`OBJECT_PARSERS` (``--object-parser``):

- ``rules`` (default): deterministic, no model. The caption is split on its structure —
  sentence ends, commas, semicolons, "and", "with" and a few spatial prepositions — and in
  each part the articles, numbers and framing words ("a photo of") are dropped; known
  attribute words (colours, sizes, materials, textures, states, and both poles of every
  shipped Visual Genome contrast) become ``attributes``, the remaining words the noun
  ("wooden dining table" → noun "dining table", attributes ["wooden"]). Good on
  templated captions (CLEVR, Synthetic Shapes, COCO-style sentences).
- ``spacy``: noun chunks of an installed spaCy English pipeline, adjectival modifiers as
  attributes. One clear line when spaCy or its model is not installed.

Every parsed object carries ``"source": "parsed:<parser>"``; annotated objects carry
``"source": "annotation"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.registry import check_choice

__all__ = ["OBJECT_PARSERS", "list_object_parsers", "get_object_parser", "parse_rules", "split_parts"]

_COLOURS = "red orange yellow green blue purple black white gray grey brown pink cyan silver gold golden beige tan navy teal maroon violet".split()
_SIZES = "small large big tiny little huge giant tall short long wide narrow thin thick".split()
_MATERIALS = "metal metallic rubber wooden wood plastic glass stone brick leather cotton paper ceramic concrete steel iron marble woolen".split()
_OTHER = "shiny matte striped spotted dotted plaid dark light bright colorful round square rectangular wet dry old new young empty full open closed clean dirty".split()
_DROP = {"a", "an", "the", "some", "this", "that", "these", "those", "its", "their", "his", "her", "of", "is", "are", "there", "photo", "picture", "image", "one", "two", "three", "four", "five", "several", "many"}
_VERB_MARKERS = {"is", "are", "was", "were", "be", "being", "been", "has", "have", "sits", "stands", "lies", "holds", "looks", "appears"}
_SPLIT = re.compile(r"\s*(?:[.;!?]+(?:\s|$)|,|\band\b|\bwith\b|\bnext to\b|\bbeside\b|\bbehind\b|\bin front of\b|\bon top of\b|\bon\b|\bin\b|\bnear\b|\bunder\b|\babove\b|\bbelow\b)\s*", re.IGNORECASE)
_LEAD = re.compile(r"^(?:(?:a|an|the)\s+)?(?:photo|picture|image|close-up|closeup)\s+of\s+", re.IGNORECASE)


@lru_cache(maxsize=1)
def attribute_words() -> frozenset[str]:
    """Words the rules parser treats as attributes."""
    words = set(_COLOURS + _SIZES + _MATERIALS + _OTHER)
    try:
        from vgrc.generators.vg_contrasts import load_contrasts

        for pair in load_contrasts(None):
            words.update(w for pole in (pair.a, pair.b) for w in pole if " " not in w)
    except (ImportError, OSError, InvalidInputError):  # the shipped vocabulary is optional here
        pass
    return frozenset(words)


def split_parts(text: str) -> list[str]:
    """Sentences, then clauses: the parts of a (long) caption, whitespace-normalised."""
    parts = []
    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
        parts.extend(p.strip(" .;:!?") for p in re.split(r"[;,]\s*", sentence))
    return [p for p in parts if p]


def _is_participle(token: str) -> bool:
    """-ing / -ed words: after a noun they are verbs, even VG attributes ("standing")."""
    return len(token) > 4 and token.endswith(("ing", "ed"))


def parse_rules(caption: str) -> list[dict]:
    """Objects of a caption by the rules above, in caption order."""
    objects = []
    for part in _SPLIT.split(" ".join(caption.split())):
        part = _LEAD.sub("", part.strip())
        tokens = re.findall(r"[a-z][a-z'-]*", part.lower())
        # the object phrase ends where a predicate starts ("a car is parked")
        for i, t in enumerate(tokens):
            if i > 0 and t in _VERB_MARKERS:
                tokens = tokens[:i]
                break
        # a participle after a noun is a verb between two objects ("a man riding a horse",
        # "an umbrella standing"); after an attribute it is part of the name ("tall building")
        groups, current = [], []
        for t in tokens:
            if current and _is_participle(t) and current[-1] not in attribute_words() and current[-1] not in _DROP:
                groups.append(current)
                current = []
                continue
            current.append(t)
        groups.append(current)
        for group in groups:
            words = [t for t in group if t not in _DROP]
            if not words:
                continue
            attrs = [t for t in words[:-1] if t in attribute_words()]
            noun_words = [t for t in words[:-1] if t not in attribute_words()] + [words[-1]]
            objects.append({"noun": " ".join(noun_words), "attributes": attrs, "bbox": None, "source": "parsed:rules"})
    return objects


def parse_spacy(caption: str) -> list[dict]:
    """Noun chunks of spaCy's English pipeline; adjectival modifiers as attributes."""
    nlp = _spacy_pipeline()
    objects = []
    for chunk in nlp(" ".join(caption.split())).noun_chunks:
        attrs = [t.lemma_.lower() for t in chunk if t.dep_ in ("amod", "compound") and t.pos_ in ("ADJ", "VERB")]
        objects.append({"noun": chunk.root.lemma_.lower(), "attributes": attrs, "bbox": None, "source": "parsed:spacy"})
    return objects


@lru_cache(maxsize=1)
def _spacy_pipeline():
    try:
        import spacy

        return spacy.load("en_core_web_sm")
    except (ImportError, OSError) as exc:
        raise InvalidInputError(
            "--object-parser spacy needs spaCy and its English pipeline: pip install spacy && python -m spacy download en_core_web_sm "
            f"({str(exc).splitlines()[0]}); or use --object-parser rules"
        ) from None


#: name -> caption -> list of objects
OBJECT_PARSERS: dict[str, Callable[[str], list[dict]]] = {"rules": parse_rules, "spacy": parse_spacy}


def list_object_parsers() -> list[str]:
    return list(OBJECT_PARSERS)


def get_object_parser(name: str) -> Callable[[str], list[dict]]:
    """The parser registered as ``name`` (one clear line for an unknown one); checks that it can run."""
    check_choice("--object-parser", name, OBJECT_PARSERS)
    if name == "spacy":
        _spacy_pipeline()
    return OBJECT_PARSERS[name]
