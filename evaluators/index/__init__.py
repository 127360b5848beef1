"""First-stage search over a gallery of unit vectors (issue 13 §2).

- :mod:`.exact` — exact top-k by inner product, in query × gallery chunks: memory
  O(query chunk × gallery chunk + queries × k), never the full score matrix; ties ordered
  by gallery index; the full-gallery rank of each query's first relevant image.
- :mod:`.device_exact` — the same search in torch on ``--device cuda``; ties exact through
  64-bit (score, index) keys.
- :mod:`.components` — the choices of ``--index`` as registry components.
- :mod:`.faiss_index` — FAISS indices (``--index flat|ivf|hnsw``) built from the embedding
  cache, saved beside it and reused; their shortlist recall against exact search is
  measured on a sample of queries and reported in the run.
"""
