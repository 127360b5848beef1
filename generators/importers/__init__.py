"""Importers: public releases converted into the dataset folder contract (issue 10).

One module per format, registered by name in :mod:`vgrc.evaluators.registry`; ``vgrc import NAME`` runs one. An
importer is a builder: it writes a dataset folder (``metadata.jsonl``, card, manifest
with the sources' sha256 and the counts), and ``vgrc eval`` reads only that folder.

==============  =====================================================  ==========================
name            source                                                 module
==============  =====================================================  ==========================
``sugarcrepe``  SugarCrepe's ``data/*.json`` + COCO val2017 images       :mod:`.sugarcrepe`
``clevr-hope``  a CLEVR(-HOPE) scenes JSON + its images                  :mod:`.clevr_hope`
``urban1k``     Urban1K's ``image/`` + ``caption/`` folders             :mod:`.urban1k`
``captions``    your own images + a ``.jsonl`` / ``.csv`` of captions   :mod:`.captions`
==============  =====================================================  ==========================
"""

from __future__ import annotations


__all__ = ["list_importers", "get_importer"]


def list_importers() -> list[str]:
    """Registered importers (vgrc's own, then plug-ins of entry-point group ``vgrc.importers``)."""
    from vgrc.evaluators import registry

    return registry.names("importer")


def get_importer(name: str):
    """The import function registered as ``name`` ("did you mean" on a typo)."""
    from vgrc.evaluators import registry

    return registry.get("importer", name, option="importer")
