"""Encoding images and texts with open_clip: models, pixels, workers, the embedding cache."""
