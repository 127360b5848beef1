"""Verification judges for generated images (paper App. F.1 "Verification", App. G).

Registered as components of kind ``judge`` (:mod:`.components`): ``qwen2.5-vl`` (default) and ``none``. A judge answers, per
image and attribute,

    "This is an image of a {noun}. Does the {noun} in this image exhibit the attribute
    '{attr}'? Answer with just Yes or No."

with confidence P(Yes): the softmax over the {Yes, No} next-token logits at the last
position. :class:`JudgmentCache` stores answers by (image sha256, question, judge model), so
reruns ask nothing twice. :func:`clipscore` is the optional prefilter (open_clip):
CLIPScore = 2.5 · max(cos(image, prompt), 0).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vgrc.evaluators import registry
from vgrc.evaluators.errors import VgrcError

__all__ = ["QUESTION", "check_judge", "list_judges", "make_judge", "QwenYesNoJudge", "JudgmentCache", "clipscore"]

QUESTION = "This is an image of a {noun}. Does the {noun} in this image exhibit the attribute \u2018{attr}\u2019? Answer with just Yes or No."


class QwenYesNoJudge:
    """Qwen2.5-VL-Instruct through transformers; ``score`` gives P(Yes) per (image, noun, attribute).

    Parameters
    ----------
    model : str
        A hub id (default ``Qwen/Qwen2.5-VL-7B-Instruct``) or a local folder, loaded with
        ``Qwen2_5_VLForConditionalGeneration.from_pretrained`` and ``AutoProcessor``.
    device : str, optional
    batch_size : int
    """

    def __init__(self, model: str, device: str | None = None, batch_size: int = 8):
        self.model_id = model
        self.processor, self.model, self.device = load_qwen_vl(model, device)
        self.yes_no = single_token_ids(self.processor.tokenizer, ("Yes", "No"), model)
        self.batch_size = batch_size

    def score(self, images: Sequence, nouns: Sequence[str], attributes: Sequence[str]) -> np.ndarray:
        """P(Yes) for each (PIL image, noun, attribute)."""
        import torch

        out = []
        for s in range(0, len(images), self.batch_size):
            texts = []
            for noun, attr in zip(nouns[s : s + self.batch_size], attributes[s : s + self.batch_size]):
                messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION.format(noun=noun, attr=attr)}]}]
                texts.append(self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
            inputs = self.processor(text=texts, images=list(images[s : s + self.batch_size]), padding=True, return_tensors="pt").to(self.device)
            with torch.no_grad():
                logits = self.model(**inputs).logits[:, -1, :].float()
            pair = logits[:, self.yes_no]
            out.append(torch.softmax(pair, dim=-1)[:, 0].cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)


def load_qwen_vl(model: str, device: str | None = None):
    """``(processor, model, device)`` of a Qwen2.5-VL-Instruct checkpoint through the real
    ``from_pretrained`` paths (bf16 on GPU, float32 on CPU), after the offline check."""
    import torch

    _judge_reachable(model)
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        processor = AutoProcessor.from_pretrained(model)
        vlm = Qwen2_5_VLForConditionalGeneration.from_pretrained(model, dtype=dtype).to(device).eval()
    except (OSError, ValueError) as exc:
        raise VgrcError(f"cannot load judge {model}: {str(exc).splitlines()[0]}") from exc
    return processor, vlm, device


def single_token_ids(tokenizer, words: Sequence[str], model: str) -> list[int]:
    """Token ids of answer words that must each be ONE token (their logits are read)."""
    out = []
    for word in words:
        ids = tokenizer.encode(word, add_special_tokens=False)
        if len(ids) != 1:
            raise VgrcError(f"judge {model}: {word!r} is not a single token in its tokenizer; reading answer logits needs single-token answers")
        out.append(ids[0])
    return out


def _judge_reachable(model: str) -> None:
    from vgrc.evaluators.encoders.model_refs import require_model

    require_model("--judge-model", model, "transformers", "judge model",
                  "or pass a local folder: --judge-model PATH, or skip verification with --judge none")


def list_judges() -> list[str]:
    """The registered verifiers (kind ``judge``: vgrc's own, then ``vgrc.judges`` plug-ins)."""
    return registry.names("judge")


def check_judge(name: str, model: str) -> None:
    """Fail at once (before any generation) when the judge is unknown or its weights are unreachable."""
    registry.get("judge", name, option="--judge").check_model(model)


def make_judge(name: str, model: str, device: str | None = None):
    """The judge registered as ``name`` with ``model`` loaded (None: no verification)."""
    return registry.get("judge", name, option="--judge").make(model, device)


class JudgmentCache:
    """Append-only JSON Lines cache of P(Yes) by (image sha256, question, judge model)."""

    def __init__(self, path: str | os.PathLike, model_id: str):
        self.path = Path(path)
        self.model_id = model_id
        self.values: dict[str, float] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                    self.values[rec["key"]] = float(rec["p_yes"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a line torn by an interruption

    def key(self, image_sha: str, noun: str, attr: str) -> str:
        return hashlib.sha256(f"{image_sha}|{QUESTION.format(noun=noun, attr=attr)}|{self.model_id}".encode()).hexdigest()

    def add(self, items: Sequence[tuple[str, float]]) -> None:
        from vgrc.evaluators.judges.store import append_lines

        items = [(k, float(v)) for k, v in items]
        append_lines(self.path, (json.dumps({"key": k, "p_yes": v}) for k, v in items))
        self.values.update(items)


def clipscore(image_paths: Sequence[Path], prompts: Sequence[str], model: str, cache_dir: str | None = None) -> np.ndarray:
    """CLIPScore 2.5 · max(cos, 0) of each image with its prompt, with an open_clip model."""
    from vgrc.evaluators.encoders.cache import EmbeddingCache, content_key, default_cache_dir, encode_cached
    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model

    enc = ClipEncoder(resolve_model(model))
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    items = [(str(p), Path(p).read_bytes()) for p in image_paths]
    img, _ = encode_cached([content_key(d) for _, d in items], lambda i: items[i], enc.encode_image_bytes, EmbeddingCache(root, f"{enc.cache_key}-image"))
    txt, _ = encode_cached([content_key(t) for t in prompts], lambda i: prompts[i], enc.encode_texts, EmbeddingCache(root, f"{enc.cache_key}-text"))
    return 2.5 * np.maximum((img * txt).sum(axis=1), 0.0)
