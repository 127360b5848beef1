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
- ``llm``: a transformers instruct model (``--parser-model``, a hub id or local folder,
  loaded with ``AutoModelForCausalLM.from_pretrained``), asked for a JSON list of
  ``{"noun", "attributes"}`` and decoded greedily. Answers are cached by (model, prompt,
  caption) in a JSON Lines file, so a re-import asks nothing twice. An answer that does not
  parse is recorded as such and the caption falls back to ``rules``; those objects say
  ``parsed:rules (llm answer unparsable)``.

Every parsed object carries ``"source": "parsed:<parser>"``; annotated objects carry
``"source": "annotation"``.
"""

from __future__ import annotations

import re
from importlib import resources
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import yaml

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
    try:  # the shipped VG contrast poles (package data of the builders; read as data, not imported as code)
        text = resources.files("vgrc.generators").joinpath("vocab/vg_contrasts.yaml").read_text(encoding="utf-8")
        for entry in yaml.safe_load(text) or []:
            for pole in (entry.get("a"), entry.get("b")):
                pole = [pole] if isinstance(pole, str) else pole or []
                words.update(w for w in pole if isinstance(w, str) and " " not in w)
    except (OSError, AttributeError, yaml.YAMLError):  # the shipped vocabulary is optional here
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


LLM_PROMPT = (
    "List the physical objects named in this image caption as a JSON list of objects with keys "
    '"noun" (a string) and "attributes" (a list of adjectives describing that object). '
    "Answer with the JSON list only.\nCaption: {caption}"
)
DEFAULT_PARSER_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"


def parse_llm_answer(text: str) -> list[dict] | None:
    """The first JSON list in a model's answer, as objects; None when there is none that
    fits the schema (the caller records it and falls back)."""
    import json

    start = text.find("[")
    while start >= 0:
        try:
            value, _ = json.JSONDecoder().raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("[", start + 1)
            continue
        if isinstance(value, list) and all(isinstance(o, dict) and isinstance(o.get("noun"), str) and o["noun"].strip() for o in value):
            return [{"noun": o["noun"].strip().lower(), "attributes": [str(a).strip().lower() for a in o.get("attributes") or [] if str(a).strip()],
                     "bbox": None, "source": "parsed:llm"} for o in value]
        return None
    return None


class LLMObjectParser:
    """``caption -> objects`` with a transformers causal LM, cached (see the module docs).

    Attributes
    ----------
    generated : int
        Model calls made (cache hits make none).
    unparsable : int
        Answers that did not parse (those captions fell back to ``rules``).
    """

    def __init__(self, model: str, cache_dir: str | None = None, device: str | None = None, max_new_tokens: int = 160):
        import hashlib

        from vgrc.evaluators.encoders.model_refs import require_model

        require_model("--parser-model", model, "transformers", "--parser-model", "pass a local folder, or use --object-parser rules")
        self.model_id, self.max_new_tokens, self.generated, self.unparsable = model, max_new_tokens, 0, 0
        from vgrc.evaluators.encoders.cache import default_cache_dir

        root = (Path(cache_dir) if cache_dir else default_cache_dir()) / "object-parser"
        root.mkdir(parents=True, exist_ok=True)
        self.cache_path = root / (hashlib.sha256(f"{model}|{LLM_PROMPT}".encode()).hexdigest()[:24] + ".jsonl")
        self.cache = _read_answer_cache(self.cache_path)
        self._device = device
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
            try:
                tok = AutoTokenizer.from_pretrained(self.model_id)
                model = AutoModelForCausalLM.from_pretrained(self.model_id).to(device).eval()
            except (OSError, ValueError) as exc:
                raise InvalidInputError(f"cannot load --parser-model {self.model_id}: {str(exc).splitlines()[0]}") from None
            self._loaded = (tok, model, device)
        return self._loaded

    def answer(self, caption: str) -> str:
        import torch

        tok, model, device = self._load()
        prompt = LLM_PROMPT.format(caption=caption)
        if getattr(tok, "chat_template", None):
            prompt = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        ids = tok(prompt, return_tensors="pt").to(device)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id or tok.eos_token_id)
        self.generated += 1
        return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)

    def __call__(self, caption: str) -> list[dict]:
        import json

        if caption not in self.cache:
            text = self.answer(caption)
            self.cache[caption] = text
            with open(self.cache_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"caption": caption, "answer": text}) + "\n")
        objects = parse_llm_answer(self.cache[caption])
        if objects is None:
            self.unparsable += 1
            return [{**o, "source": "parsed:rules (llm answer unparsable)"} for o in parse_rules(caption)]
        return objects


def _read_answer_cache(path: Path) -> dict[str, str]:
    import json

    cache: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                cache[rec["caption"]] = rec["answer"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line torn by an interruption: asked again
    return cache


#: name -> caption -> list of objects (llm: built with its model by get_object_parser)
OBJECT_PARSERS: dict[str, Callable[[str], list[dict]] | None] = {"rules": parse_rules, "spacy": parse_spacy, "llm": None}


def list_object_parsers() -> list[str]:
    return list(OBJECT_PARSERS)


def get_object_parser(name: str, model: str | None = None, cache_dir: str | None = None) -> Callable[[str], list[dict]]:
    """The parser registered as ``name`` (one clear line for an unknown one); checks that it can run."""
    check_choice("--object-parser", name, OBJECT_PARSERS)
    if name == "spacy":
        _spacy_pipeline()
    if name == "llm":
        return LLMObjectParser(model or DEFAULT_PARSER_MODEL, cache_dir=cache_dir)
    return OBJECT_PARSERS[name]
