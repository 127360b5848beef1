"""Second stages of ``vgrc eval --rerank``: one module per reranker, each a registry
component (:class:`~vgrc.evaluators.rerankers.component.Reranker`); the shared machinery
(object tables, the context, size-bucketed solving) is :mod:`.context`."""
