"""vgrc.generators — dataset builders (library code: no typer, no rich).

Each builder writes the dataset folder contract of :mod:`vgrc.evaluators.dataset` and
reports progress through an ``on_progress(done, total)`` callback.
"""
