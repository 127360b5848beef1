"""Tiny random FLUX, Qwen2.5-VL and causal-LM folders for tests: built by the package's
own demo builder (``vgrc demo``), loaded through the real ``from_pretrained`` paths."""

from vgrc.generators.demo import build_tiny_causal_lm, build_tiny_flux, build_tiny_qwen

__all__ = ["build_tiny_flux", "build_tiny_qwen", "build_tiny_causal_lm"]
