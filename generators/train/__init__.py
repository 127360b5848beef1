"""``vgrc train``: an open_clip model trained (or fine-tuned) on a vgrc dataset folder by
open_clip's own trainer (``open_clip_train``), with a seeded held-out share of the rows
kept out of training and written as a dataset of its own (``OUT/heldout``)."""
