"""Synthetic Shapes: the generator (``build``) and its SVG renderer (``svg``)."""
