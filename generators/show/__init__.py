"""``vgrc show``: a static site to look at runs (issue 27)."""
