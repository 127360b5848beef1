"""open_clip models behind ``vgrc eval --model``: a registry of aliases, resolution to an
open_clip architecture and weights, and clear offline errors.

- Aliases (:data:`~vgrc.evaluators.encoders.model_refs.MODEL_ALIASES`): ``clip`` = ViT-B-32/openai, ``clip-l`` = ViT-L-14/openai,
  ``siglip`` = ViT-B-16-SigLIP/webli, ``siglip2`` = ViT-B-16-SigLIP2/webli, and
  ``tiny-random`` (a tiny config shipped with vgrc, seeded random weights: CI and offline
  smoke runs; its numbers mean nothing).
- Any open_clip ``ARCH:TAG`` (``ViT-B-16:laion2b_s34b_b88k``), ``hf-hub:ORG/NAME``, or
  ``ARCH`` with ``--pretrained PATH`` (a local checkpoint file).

Offline behaviour: pretrained weights are looked up in the Hugging Face cache first. When
they are missing and ``HF_HUB_OFFLINE`` is set, or the hub cannot be reached within a
second, :class:`~vgrc.evaluators.errors.ModelUnavailableError` names the model and how to
pass a local checkpoint, so there is no retry loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vgrc.evaluators.errors import InvalidInputError, ModelUnavailableError
from vgrc.evaluators.encoders.model_refs import MODEL_ALIASES, TINY_CONFIG_DIR, check_clip_model, hub_missing_reason

__all__ = ["PRECISIONS", "list_models", "ModelSpec", "resolve_model", "check_weights"]


PRECISIONS = ("fp32", "fp16", "bf16")


def list_models() -> list[str]:
    """Aliases accepted by ``--model`` (besides ``ARCH:TAG`` and ``hf-hub:`` names)."""
    return list(MODEL_ALIASES)


@dataclass(frozen=True)
class ModelSpec:
    """What to load: ``arch`` with ``pretrained`` (a tag, a local path, or None = random)."""

    name: str
    arch: str
    pretrained: str | None
    seed: int = 0

    @property
    def is_random(self) -> bool:
        return self.pretrained is None and not self.arch.startswith("hf-hub:")

    def describe(self) -> str:
        if self.arch.startswith("hf-hub:"):
            return self.arch
        return f"{self.arch}, {'random weights, seed %d' % self.seed if self.is_random else 'pretrained ' + repr(self.pretrained)}"


def _register_tiny_configs() -> None:
    import open_clip

    if "vgrc-tiny-random" not in open_clip.list_models():
        open_clip.add_model_config(TINY_CONFIG_DIR)


def resolve_model(model: str, pretrained: str | None = None, seed: int = 0) -> ModelSpec:
    """Turn ``--model`` / ``--pretrained`` into a :class:`ModelSpec`.

    Raises
    ------
    InvalidInputError
        An unknown name: the message lists the aliases and the accepted forms.
    """
    check_clip_model("--model", model, pretrained)
    import open_clip

    _register_tiny_configs()
    if model in MODEL_ALIASES:
        arch, tag = MODEL_ALIASES[model]
        return ModelSpec(model, arch, pretrained or tag, seed)
    if model.startswith("hf-hub:"):
        return ModelSpec(model, model, pretrained, seed)
    arch, _, tag = model.partition(":")
    if arch not in open_clip.list_models():
        raise InvalidInputError(
            f"unknown model {model!r}; use one of {', '.join(MODEL_ALIASES)}, an open_clip ARCH:TAG "
            "(see open_clip.list_pretrained()), hf-hub:ORG/NAME, or ARCH with --pretrained PATH"
        )
    if tag and pretrained:
        raise InvalidInputError(f"--model {model!r} names a pretrained tag and --pretrained gives a path; give one of them")
    if tag and not open_clip.pretrained.get_pretrained_cfg(arch, tag):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise InvalidInputError(f"unknown pretrained tag {tag!r} for {arch}; known tags: {tags}")
    return ModelSpec(model, arch, tag or pretrained, seed)


def _unavailable(spec: ModelSpec, why: str) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"model {spec.name!r} ({spec.describe()}): {why}; download the weights once with network access, "
        f"or pass a local checkpoint: --model {spec.arch} --pretrained PATH/open_clip_model.safetensors"
    )


def _ensure_weights_reachable(spec: ModelSpec) -> None:
    """Fail within a second, with one line, when weights can neither be found nor fetched."""
    import open_clip

    if spec.is_random or (spec.pretrained and os.path.exists(spec.pretrained)):
        return
    if spec.arch.startswith("hf-hub:"):
        repo, files = spec.arch[len("hf-hub:") :], ("open_clip_config.json",)
    else:
        cfg = open_clip.pretrained.get_pretrained_cfg(spec.arch, spec.pretrained)
        if not cfg:
            raise _unavailable(spec, f"{spec.pretrained!r} is neither an open_clip pretrained tag nor an existing file")
        if "file" in cfg or not cfg.get("hf_hub"):
            return
        repo, name = os.path.split(cfg["hf_hub"])  # as open_clip.pretrained.download_pretrained
        name = name or "open_clip_pytorch_model.bin"
        safe = "open_clip_model.safetensors" if name == "open_clip_pytorch_model.bin" else name.rsplit(".", 1)[0] + ".safetensors"
        files = (safe, name)
    why = hub_missing_reason(repo, files)
    if why:
        raise _unavailable(spec, f"weights are {why}")


def check_weights(model: str, pretrained: str | None = None, seed: int = 0) -> None:
    """Fail at once, with one line, when the model's weights can neither be found nor fetched."""
    _ensure_weights_reachable(resolve_model(model, pretrained, seed))
