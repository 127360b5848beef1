"""vgrc.evaluators — the bottom layer of vgrc.

Encoders, first stages, rerankers and solvers, metrics, judges, reports, and the
reader/writer of the dataset folder contract (:mod:`vgrc.evaluators.dataset`) that
builders in :mod:`vgrc.generators` write and ``vgrc eval`` reads. This package imports
neither :mod:`vgrc.generators` nor :mod:`vgrc.cli`.
"""

from __future__ import annotations

from vgrc.evaluators.errors import DatasetFolderError, InvalidInputError, OutputError, VgrcError


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vgrc")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


__version__ = _package_version()

__all__ = ["VgrcError", "InvalidInputError", "DatasetFolderError", "OutputError", "__version__"]
