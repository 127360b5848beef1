"""Importers: public releases converted into the dataset folder contract (issue 10).

One module per format, registered here by name; ``vgrc import NAME`` runs one. An
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


__all__ = ["IMPORTERS", "list_importers", "get_importer"]

#: name -> "module:function" (imported lazily)
IMPORTERS: dict[str, str] = {
    "sugarcrepe": "vgrc.generators.importers.sugarcrepe:import_sugarcrepe",
    "clevr-hope": "vgrc.generators.importers.clevr_hope:import_clevr_hope",
    "urban1k": "vgrc.generators.importers.urban1k:import_urban1k",
    "captions": "vgrc.generators.importers.captions:import_captions",
}


def list_importers() -> list[str]:
    return list(IMPORTERS)


def get_importer(name: str):
    """The import function registered as ``name`` ("did you mean" on a typo)."""
    from vgrc.evaluators.registry import load_entry

    return load_entry("importer", name, IMPORTERS)
