"""Checks of model references that run before any heavy import (torch, open_clip, diffusers).

Two kinds of reference:

- a Hugging Face model (``--model`` of build-nac, ``--judge-model``): an existing local
  folder, or a valid hub id (``ORG/NAME`` or ``NAME``);
- an open_clip model (``vgrc eval --model``, ``--clipscore-model``): an alias
  (``clip``, ``tiny-random``…), ``ARCH`` or ``ARCH:TAG`` of a known open_clip
  architecture, or ``hf-hub:ORG/NAME``. Architectures are read from open_clip's shipped
  config files without importing it (importing torch takes ~10 s on 2 cores); the
  pretrained TAG is checked once open_clip is loaded.

Each failure is one :class:`InvalidInputError` naming the option, the value and what was
expected.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from vgrc.evaluators.errors import InvalidInputError

__all__ = ["MODEL_ALIASES", "check_model_reference", "check_clip_model", "hub_missing_reason", "open_clip_architectures", "require_model"]

#: alias -> (open_clip architecture, pretrained tag or None for seeded random weights)
MODEL_ALIASES: dict[str, tuple[str, str | None]] = {
    "clip": ("ViT-B-32", "openai"),
    "clip-l": ("ViT-L-14", "openai"),
    "siglip": ("ViT-B-16-SigLIP", "webli"),
    "siglip2": ("ViT-B-16-SigLIP2", "webli"),
    "tiny-random": ("vgrc-tiny-random", None),
    #: a small CLIP for 64-px Synthetic Shapes, random until `vgrc train` trains it (pass --pretrained DIR/model.pt)
    "shapes-tiny": ("vgrc-shapes-tiny", None),
}
TINY_CONFIG_DIR = Path(__file__).with_name("model_configs")
#: what a folder must hold to be a model of each kind
REQUIRED_FILE = {"diffusers": "model_index.json", "transformers": "config.json"}


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~", ".\\")) or os.path.isabs(value) or value in (".", "..")


def _check_hub_id(option: str, value: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        raise InvalidInputError(
            f"{option} {value!r} is neither an existing local folder nor a valid hub id; give a folder or ORG/NAME"
        ) from None


def check_model_reference(option: str, value: str, kind: str = "transformers") -> None:
    """``value`` must be an existing model folder of ``kind``, or a valid hub id.

    ``kind`` is ``"diffusers"``, ``"transformers"`` or ``"open_clip"`` (see
    :func:`check_clip_model`).
    """
    if kind == "open_clip":
        check_clip_model(option, value)
        return
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{option} is empty; give a local folder or a hub id ORG/NAME")
    path = Path(os.path.expanduser(value))
    if path.exists():
        if not path.is_dir():
            raise InvalidInputError(f"{option} {value}: is a file; expected a model folder holding {REQUIRED_FILE[kind]}, or a hub id ORG/NAME")
        if not (path / REQUIRED_FILE[kind]).is_file():
            raise InvalidInputError(f"{option} {value}: folder has no {REQUIRED_FILE[kind]}; expected a {kind} model folder, or a hub id ORG/NAME")
        return
    if _looks_like_path(value) or value.count("/") > 1:
        raise InvalidInputError(f"{option} {value}: no such folder; expected a local {kind} model folder or a hub id ORG/NAME")
    _check_hub_id(option, value)


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _hub_reachable(timeout: float = 1.0) -> bool:
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _cached_hub_file(repo_id: str, filenames: Sequence[str]) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return found
    return None


def hub_missing_reason(repo_id: str, filenames: Sequence[str]) -> str | None:
    """Why ``repo_id`` cannot be used now, or None when one of ``filenames`` is cached or
    the hub can be reached. Answers within a second: no download retry loop."""
    if _cached_hub_file(repo_id, filenames):
        return None
    if _offline():
        return "not in the Hugging Face cache and HF_HUB_OFFLINE is set"
    if not _hub_reachable():
        return "not in the Hugging Face cache and the hub cannot be reached (offline)"
    return None


def require_model(option: str, value: str, kind: str, name: str, advice: str) -> None:
    """Fail at once, with one line, when a Hugging Face model (``kind`` "diffusers" or
    "transformers") is neither a valid local folder nor cached or fetchable: the syntax
    check of :func:`check_model_reference`, then the hub cache, with no retry loop.
    ``name`` starts the message ("judge model"), ``advice`` ends it."""
    from vgrc.evaluators.errors import ModelUnavailableError

    check_model_reference(option, value, kind=kind)
    if Path(os.path.expanduser(value)).exists():
        return
    why = hub_missing_reason(value, (REQUIRED_FILE[kind],))
    if why:
        raise ModelUnavailableError(f"{name} {value!r} is not available offline ({why}); download it once, {advice}")


@lru_cache(maxsize=1)
def open_clip_architectures() -> frozenset[str]:
    """Architecture names of open_clip's shipped configs (and vgrc's tiny one), no import."""
    names = {p.stem for p in TINY_CONFIG_DIR.glob("*.json")}
    spec = importlib.util.find_spec("open_clip")
    if spec and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            names.update(p.stem for p in (Path(loc) / "model_configs").glob("*.json"))
    return frozenset(names)


def check_clip_model(option: str, model: str, pretrained: str | None = None) -> None:
    """Syntax and architecture of an open_clip model reference, and ``--pretrained``."""
    if pretrained is not None:
        if not Path(os.path.expanduser(pretrained)).is_file():
            raise InvalidInputError(f"--pretrained {pretrained}: no such file; expected a local open_clip checkpoint (.safetensors or .bin)")
    if model in MODEL_ALIASES:
        return
    if model.startswith("hf-hub:"):
        repo = model[len("hf-hub:") :]
        if repo.count("/") != 1:
            raise InvalidInputError(f"{option} {model!r}: expected hf-hub:ORG/NAME")
        _check_hub_id(option, repo)
        return
    arch, _, tag = model.partition(":")
    known = open_clip_architectures()
    if arch not in known:
        close = difflib.get_close_matches(arch, [*MODEL_ALIASES, *known], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InvalidInputError(
            f"{option} {model!r}: unknown model{hint} Use an alias ({', '.join(MODEL_ALIASES)}), an open_clip ARCH:TAG, "
            "hf-hub:ORG/NAME, or ARCH with --pretrained PATH"
        )
    if tag and pretrained:
        raise InvalidInputError(f"{option} {model!r} names a pretrained tag and --pretrained gives a path; give one of them")
