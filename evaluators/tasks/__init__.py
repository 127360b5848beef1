"""Evaluation tasks of ``vgrc eval --task``: one module each, registered as components in
:mod:`vgrc.evaluators.registry` (declarations in :mod:`.components`).

Each task is ``run(config, out, progress, timer) -> metrics`` and writes its run folder
through :mod:`vgrc.evaluators.runs`, the one writer of run outputs.
"""
