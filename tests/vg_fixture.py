"""The hand-made Visual Genome folder (every quirk the reader repairs): the package's own
demo input (``vgrc demo``); see :mod:`vgrc.generators.demo` for what it holds."""

from vgrc.generators.demo import vg_records, write_vg

__all__ = ["vg_records", "write_vg"]
