"""``vgrc diagnose``: the paper's analyses, one module each, registered here (issue 12).

Each analysis takes the same model / cache / ``--limit`` options as ``vgrc eval`` (an
:class:`~vgrc.evaluators.pipeline.EvalConfig`), shares its encoding and embedding cache,
and writes CSV + PNG + Markdown into an output folder that vgrc owns (``run.json`` with
vgrc's run marker and the files it wrote).
"""

from __future__ import annotations

__all__ = ["DIAGNOSTICS", "get_diagnostic"]

#: name -> "module:function"
DIAGNOSTICS: dict[str, str] = {
    "substitution": "vgrc.evaluators.diagnostics.substitution:run_substitution",
    "geometry": "vgrc.evaluators.diagnostics.geometry:run_geometry",
    "composition": "vgrc.evaluators.diagnostics.composition:run_composition",
    "k-sweep": "vgrc.evaluators.diagnostics.k_sweep:run_k_sweep",
    "alpha-sweep": "vgrc.evaluators.diagnostics.alpha_sweep:run_alpha_sweep",
    "fgw-alpha": "vgrc.evaluators.diagnostics.fgw_alpha:run_fgw_alpha",
    "all": "vgrc.evaluators.diagnostics.run_all:run_all",
}


def get_diagnostic(name: str):
    from vgrc.evaluators.registry import load_entry

    return load_entry("analysis", name, DIAGNOSTICS)
