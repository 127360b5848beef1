"""Per-object sets of queries and candidates: caption parsers (and, later, candidate object sets)."""
