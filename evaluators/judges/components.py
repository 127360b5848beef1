"""Relevance sources (``--relevance``) and NAC's verification judges (``build-nac --judge``)
as registry components (declarations; the judging is :mod:`.relevance`, :mod:`.vlm` and
:mod:`.verify`)."""

from __future__ import annotations

from dataclasses import dataclass

from vgrc.evaluators.registry import Component, option

__all__ = ["Symbolic", "VLM", "QwenVerifier", "NoVerifier"]


class Relevance(Component):
    kind = "relevance"
    judged = False


class Symbolic(Relevance):
    name = "symbolic"
    help = "graded relevance from the annotations (App. H)"


@dataclass
class VLMOptions:
    judge_model: str = option("Qwen/Qwen2.5-VL-7B-Instruct", "--judge-model", "Qwen2.5-VL-Instruct judge of --relevance vlm: hub id or local folder "
                              "(the paper's NAC verifier is the 32B).")
    judge_batch_size: int = option(8, "--judge-batch-size", "(image, prompt) pairs per judge forward pass.", minimum=1)
    judge_mode: str = option("logits", "--judge-mode", "logits (read the answer field's next-token distribution) or json (the paper's generated JSON).",
                             choices=("logits", "json"))


class VLM(Relevance):
    name = "vlm"
    help = "App. G's judges on the pairs of every reported top 10, cached in --cache-dir"
    Options = VLMOptions
    judged = True

    def check(self, options, manifest) -> None:
        from vgrc.evaluators.encoders.model_refs import check_model_reference

        check_model_reference("--judge-model", options.judge_model, kind="transformers")


class Verifier(Component):
    """``vgrc build-nac --judge``: ``make(model, device)`` returns a judge whose
    ``score(images, nouns, attributes)`` gives P(yes) per image (``model_id`` names it in
    the judgment cache), or None for no verification; ``check_model(model)`` runs before
    any generation."""

    kind = "judge"

    def check_model(self, model: str) -> None:
        pass

    def make(self, model: str, device: str | None):  # pragma: no cover - the protocol
        raise NotImplementedError


class QwenVerifier(Verifier):
    name = "qwen2.5-vl"
    help = "Qwen2.5-VL-Instruct answers App. F.1's yes/no question; confidence P(Yes) (default)"

    def check_model(self, model: str) -> None:
        from vgrc.evaluators.judges.verify import _judge_reachable

        _judge_reachable(model)

    def make(self, model: str, device: str | None):
        from vgrc.evaluators.judges.verify import QwenYesNoJudge

        return QwenYesNoJudge(model, device)


class NoVerifier(Verifier):
    name = "none"
    help = "keep every generated image unverified"

    def make(self, model: str, device: str | None):
        return None
