"""Shared fixtures. HF_HUB_OFFLINE must be set before anything imports huggingface_hub:
otherwise a failed download is retried for minutes instead of failing at once."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# embeddings cached by code paths without a --cache-dir go to a throw-away folder, not
# ~/.cache/vgrc, removed when the test run ends
os.environ["VGRC_CACHE"] = __import__("tempfile").mkdtemp(prefix="vgrc-test-cache-")
__import__("atexit").register(__import__("shutil").rmtree, os.environ["VGRC_CACHE"], ignore_errors=True)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from helpers import SMALL_SHAPES  # noqa: E402


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    """A small Synthetic Shapes build (60 compositions + 42 references at 64 px), built once."""
    from vgrc.generators.shapes.build import ShapesConfig, build_shapes

    out = tmp_path_factory.mktemp("shapes") / "data"
    build_shapes(out, ShapesConfig(**SMALL_SHAPES), workers=2, command="vgrc gen-shapes (fixture)")
    return out


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory) -> Path:
    """A tiny random FLUX pipeline folder (diffusers format)."""
    from tiny_models import build_tiny_flux

    return build_tiny_flux(tmp_path_factory.mktemp("models") / "tiny-flux")


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory) -> Path:
    """A tiny random Qwen2.5-VL-Instruct folder (model + processor)."""
    from tiny_models import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("models") / "tiny-qwen")


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> Path:
    """A tiny random instruct-style causal LM folder (model + tokenizer with chat template)."""
    from tiny_models import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("models") / "tiny-llm")
