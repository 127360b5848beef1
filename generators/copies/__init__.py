"""Near-duplicate copies of any image collection (``vgrc build-copies``)."""
