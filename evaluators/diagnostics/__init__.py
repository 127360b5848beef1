"""``vgrc diagnose``: the paper's analyses, one module each, registered in
:mod:`vgrc.evaluators.registry` (kind ``diagnostic``; issue 12).

Each analysis takes the same model / cache / ``--limit`` options as ``vgrc eval`` (an
:class:`~vgrc.evaluators.pipeline.EvalConfig`), shares its encoding and embedding cache,
and writes CSV + PNG + Markdown into an output folder that vgrc owns (``run.json`` with
vgrc's run marker and the files it wrote).
"""

from __future__ import annotations

from vgrc.evaluators import registry

__all__ = ["get_diagnostic"]


def get_diagnostic(name: str):
    """The analysis registered as ``name`` (``all``: every analysis, :mod:`.run_all`)."""

    return registry.get("diagnostic", name, option="analysis")
