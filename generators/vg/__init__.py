"""Visual Genome: the dataset builder (``build``) and its contrast rules (``contrasts``)."""
