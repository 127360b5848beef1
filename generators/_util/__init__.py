"""Small helpers of the builders: PNG writing, streamed JSON, YAML vocabularies."""
