"""The choices of ``--index``: how stage 1 searches the gallery (declarations; the search
itself is :mod:`.exact` / :mod:`.device_exact` / :mod:`.faiss_index`)."""

from __future__ import annotations

from dataclasses import dataclass

from vgrc.evaluators.registry import Component, option

__all__ = ["Exact", "Flat", "IVF", "HNSW"]


class Index(Component):
    kind = "index"
    faiss = True

    def check(self, options, manifest) -> None:
        from vgrc.evaluators.index.faiss_index import require_faiss

        require_faiss()

    def notes(self, options, data_info) -> list[str]:
        return [f"stage 1 searched a FAISS {self.name} index; its shortlist recall against exact search is in "
                "stage1_index_recall@K (a sample of queries); relevant images beyond the index's top-K count as not retrieved"]


class Exact(Index):
    name = "exact"
    help = ("exact inner-product search in chunks (numpy + compiled top-k; in torch on the GPU with --device cuda from 10^10 scores), "
            "the default")
    faiss = False

    def check(self, options, manifest) -> None:
        pass

    def notes(self, options, data_info) -> list[str]:
        return []


class Flat(Index):
    name = "flat"
    help = "FAISS IndexFlatIP: exact, FAISS's kernels (GPU when faiss-gpu and a GPU are present)"


@dataclass
class IVFOptions:
    nprobe: int = option(32, "--nprobe", "--index ivf: inverted lists searched per query.", minimum=1)


class IVF(Index):
    name = "ivf"
    help = "FAISS IndexIVFFlat: approximate, √N lists, --nprobe of them searched"
    Options = IVFOptions


@dataclass
class HNSWOptions:
    ef_search: int = option(128, "--ef-search", "--index hnsw: candidates kept per query while searching.", minimum=1)


class HNSW(Index):
    name = "hnsw"
    help = "FAISS IndexHNSWFlat: approximate graph search, --ef-search"
    Options = HNSWOptions
