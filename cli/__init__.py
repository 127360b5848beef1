"""vgrc.cli — the thin Typer layer over :mod:`vgrc.generators` and :mod:`vgrc.evaluators`."""
