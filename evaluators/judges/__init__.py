"""Judges: NAC's verification judge and CLIPScore, App. G's VLM relevance judges, their stores."""
