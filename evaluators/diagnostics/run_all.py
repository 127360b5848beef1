"""``vgrc diagnose all``: every analysis with its defaults, each into its own subfolder of
``--out``, in one process: the rows and embeddings are prepared once and shared
(:func:`~vgrc.evaluators.diagnostics._common.shared_preparation`).

An analysis that does not apply to the dataset (say, ``geometry`` without single-object
rows) is skipped with its one-line reason; every output folder is checked before any work.
"""

from __future__ import annotations

from pathlib import Path

from vgrc.evaluators.diagnostics import get_diagnostic
from vgrc.evaluators.diagnostics._common import shared_preparation
from vgrc.evaluators.errors import DatasetFolderError, InvalidInputError
from vgrc.evaluators.ownership import check_parts_folder, check_run_folder

__all__ = ["run_all", "ALL_ORDER"]

#: the order of ``vgrc diagnose all`` (cheap first; each line names the module)
ALL_ORDER = ("substitution", "geometry", "k-sweep", "fgw-alpha", "alpha-sweep", "composition")


def _config_for(config, name: str):
    out = str(Path(config.out) / name)
    if name == "alpha-sweep":
        return config.replace(out=out, stage1="ridge+steer", fit_fraction=config.fit_fraction or 0.2)
    return config.replace(out=out, fit_fraction=0.0)


def check_all_folder(out) -> None:
    """``--out`` of ``diagnose all`` holds nothing but its analyses' subfolders (each checked
    as a run folder on its own). Writes nothing."""

    check_parts_folder(out, lambda name: name in ALL_ORDER, "diagnose")


def run_all(config, *, progress=None, analyses=ALL_ORDER) -> dict:
    """``{analysis: summary}`` for the analyses that ran, ``{analysis: {"skipped": reason}}``
    for the others."""

    progress = progress or (lambda phase, done, total: None)
    check_all_folder(config.out)
    configs = {name: _config_for(config, name) for name in analyses}
    for name, c in configs.items():  # pre-flight: no analysis may find its folder taken after others ran
        check_run_folder(c.out, c.overwrite, f"diagnose-{name}")
    results: dict = {}
    with shared_preparation():
        for name in analyses:
            try:
                extra = {"best_alpha": True} if name == "k-sweep" else {}  # App. D's α, as the k-sweep command's default
                results[name] = get_diagnostic(name)(configs[name], progress=progress, **extra)
            except (InvalidInputError, DatasetFolderError) as exc:
                results[name] = {"skipped": str(exc)}
    return results
