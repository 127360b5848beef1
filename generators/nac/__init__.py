"""Near-Attribute Contrasts: prompts, layout, generation and the merge of parts."""
