r"""The paper's VLM relevance judges (§5, App. G): Query Alignment Score and Attribute–Noun CAS.

Prompts: App. G's text, verbatim. The extracted reference renders each bullet as "- •";
here a bullet is "- ". The QAS prompt keeps the paper's typographic quotes around
``{query}``.

Scoring (``mode``):

``"logits"`` (default)
    The prompt is continued, as the assistant's answer, up to the answer field of the
    paper's JSON (``{"relevance_score": `` / ``{"applicable": ``), and the next-token
    distribution is read over the allowed answers only: the digits 0–4 for QAS
    (softmax over those five logits → the most likely grade, an integer as in the paper,
    and the expected grade beside it), `` true`` / `` false`` for the attribute–noun judge
    (→ P(true)). Nothing is generated, so nothing can fail to parse.
``"json"``
    The paper's protocol: the VLM writes the JSON answer (greedy). ``relevance_score`` /
    ``applicable`` + ``confidence`` are read from it; an answer that does not parse is
    RECORDED as such (``parsed: false`` with the raw text) and never raises.

Why logits is the default: the same question, answered by reading the distribution
instead of one greedy sample, gives a graded, deterministic score without a parse step.
JSON mode reproduces the paper's protocol exactly; both are recorded in the outputs.
The paper's judge size is not stated for App. G (its NAC verifier is Qwen2.5-VL-32B);
vgrc defaults to the 7B Instruct model, any local folder or hub id works.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

__all__ = ["QAS_PROMPT", "CAS_PROMPT", "JUDGE_MODES", "QwenAppGJudge", "parse_json_answer", "answer_field", "prompt_hash"]

QAS_PROMPT = """You are evaluating image-to-text retrieval relevance.
Task: Judge how well the image matches the full query.
Instructions:
- Consider the full meaning of the query, not just one word.
- Use only visible evidence in the image.
- Consider objects, attributes, actions, relations, and scene details when relevant.
- Do not assume unstated details are present.
- If the image matches only part of the query, give a partial score.
- Return strict JSON only.
Query: \u201c{query}\u201d
Use this relevance scale:
- 0 = irrelevant
- 1 = weakly related
- 2 = partially matches
- 3 = mostly matches
- 4 = highly relevant and precise match
Return JSON:
{{ "relevance_score": 0-4, "confidence": float, "matched_elements": [...], "reason": str }}"""

CAS_PROMPT = """You are evaluating whether an image contains a specific object with a specific attribute.
Task: Decide whether the target object (noun) is present in the image and has the target attribute.
Instructions:
- Both conditions must be met: the noun must be visible and it must have the attribute.
- Do not count it as a match if the attribute applies to a different object.
- Base your answer only on visible evidence in the image.
- If the attribute–noun combination is only weakly supported or ambiguous, lower the confidence.
- Return strict JSON only.
Target attribute: {attribute}
Target noun: {noun}
Return JSON with this schema:
{{ "applicable": true or false, "confidence": float between 0 and 1, "reason": "short explanation based only on visible evidence" }}"""

JUDGE_MODES = ("logits", "json")
#: the answer so far, up to where the model writes the field's value. Qwen2's pre-tokenizer
#: splits '": 3' into '":', ' ', '3' (a digit is a token of its own, the space one before it)
#: but '": true' into '":', ' true': so QAS reads the digit after the space, and the
#: attribute-noun judge reads ' true' / ' false' right after the colon.
QAS_PREFIX = '{"relevance_score": '
CAS_PREFIX = '{"applicable":'
CAS_ANSWERS = (" true", " false")
#: generation limit in json mode: room for App. G's whole answer (matched_elements, reason)
JSON_MAX_NEW_TOKENS = 256


def prompt_hash(template: str) -> str:
    """Identifies a prompt's exact text in judgement-store keys and run records."""
    import hashlib

    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:16]


def parse_json_answer(text: str) -> dict | None:
    """The first JSON object in a generated answer, or None."""
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = json.JSONDecoder().raw_decode(text, start)
            return value if isinstance(value, dict) else None
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    return None


def answer_field(text: str, name: str):
    """A field of the judge's JSON answer: from the parsed object when the answer is whole,
    else read where it appears in the text (an answer cut at the token limit after the
    field was written still counts); None when it is not there."""
    import re

    ans = parse_json_answer(text)
    if ans is not None and name in ans:
        return ans[name]
    match = re.search(rf'"{re.escape(name)}"\s*:\s*(true|false|-?\d+(?:\.\d+)?)', text)
    if match is None:
        return None
    value = match.group(1)
    return value == "true" if value in ("true", "false") else (float(value) if "." in value else int(value))


class QwenAppGJudge:
    """App. G's two judges on Qwen2.5-VL-Instruct (one loaded model serves both).

    Parameters
    ----------
    model : str
        Hub id or local folder, through the real ``from_pretrained`` path.
    device : str, optional
    batch_size : int
        (image, prompt) pairs per forward pass.
    """

    def __init__(self, model: str, device: str | None = None, batch_size: int = 8):
        from vgrc.evaluators.judges.verify import load_qwen_vl, single_token_ids

        self.model_id = model
        self.processor, self.model, self.device = load_qwen_vl(model, device)
        tok = self.processor.tokenizer
        self.digit_ids = single_token_ids(tok, [str(d) for d in range(5)], model)
        self.true_false_ids = single_token_ids(tok, CAS_ANSWERS, model)
        self.batch_size = batch_size
        self.calls = 0

    # ------------------------------------------------------------------ prompts
    def _texts(self, prompts: Sequence[str], prefix: str | None) -> list[str]:
        texts = []
        for p in prompts:
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p}]}]
            text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            texts.append(text + (prefix or ""))
        return texts

    def _next_token_probs(self, images: Sequence, prompts: Sequence[str], prefix: str, ids: list[int]) -> np.ndarray:
        """Softmax over the allowed answer tokens at the answer field, (N, len(ids))."""
        import torch

        out = []
        for s in range(0, len(prompts), self.batch_size):
            texts = self._texts(prompts[s : s + self.batch_size], prefix)
            inputs = self.processor(text=texts, images=list(images[s : s + self.batch_size]), padding=True, return_tensors="pt").to(self.device)
            with torch.no_grad():
                logits = self.model(**inputs).logits[:, -1, :].float()
            self.calls += 1
            out.append(torch.softmax(logits[:, ids], dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(ids)))

    def _generate(self, images: Sequence, prompts: Sequence[str], max_new_tokens: int = JSON_MAX_NEW_TOKENS) -> list[str]:
        import torch

        answers = []
        for s in range(0, len(prompts), self.batch_size):
            texts = self._texts(prompts[s : s + self.batch_size], None)
            inputs = self.processor(text=texts, images=list(images[s : s + self.batch_size]), padding=True, return_tensors="pt").to(self.device)
            with torch.no_grad():
                out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
            self.calls += 1
            new = out[:, inputs["input_ids"].shape[1]:]
            answers += self.processor.batch_decode(new, skip_special_tokens=True)
        return answers

    # ------------------------------------------------------------------ judges
    def qas(self, images: Sequence, queries: Sequence[str], mode: str = "logits") -> list[dict]:
        """Query Alignment Score per (PIL image, query): ``grade`` in [0, 4] plus details.

        logits: ``grade`` = the most likely digit (an integer 0–4, as the paper's judge
        writes one), ``expected_grade`` = the expectation over the digits, ``probs``;
        json: ``grade`` = the reported integer (None when the answer did not parse).
        """
        prompts = [QAS_PROMPT.format(query=q) for q in queries]
        if mode == "logits":
            probs = self._next_token_probs(images, prompts, QAS_PREFIX, self.digit_ids)
            return [{"grade": int(p.argmax()), "argmax": int(p.argmax()), "expected_grade": float(p @ np.arange(5)),
                     "probs": [round(float(x), 6) for x in p], "mode": "logits"} for p in probs]
        out = []
        for text in self._generate(images, prompts):
            score = answer_field(text, "relevance_score")
            ok = isinstance(score, (int, float)) and not isinstance(score, bool) and 0 <= score <= 4
            out.append({"grade": float(score) if ok else None, "parsed": ok, "raw": text, "mode": "json"})
        return out

    def attribute_noun(self, images: Sequence, nouns: Sequence[str], attributes: Sequence[str], mode: str = "logits") -> list[dict]:
        """Attribute–Noun CAS per (PIL image, noun, attribute): ``confidence`` in [0, 1].

        logits: P(true) at the ``applicable`` field; json: the reported confidence when
        ``applicable`` is true, 0 when false (None when the answer did not parse).
        """
        prompts = [CAS_PROMPT.format(attribute=a, noun=n) for n, a in zip(nouns, attributes)]
        if mode == "logits":
            probs = self._next_token_probs(images, prompts, CAS_PREFIX, self.true_false_ids)
            return [{"confidence": float(p[0]), "mode": "logits"} for p in probs]
        out = []
        for text in self._generate(images, prompts):
            applicable, conf = answer_field(text, "applicable"), answer_field(text, "confidence")
            ok = isinstance(applicable, bool) and isinstance(conf, (int, float)) and not isinstance(conf, bool) and 0 <= conf <= 1
            out.append({"confidence": (float(conf) if applicable else 0.0) if ok else None, "parsed": ok, "raw": text, "mode": "json"})
        return out
