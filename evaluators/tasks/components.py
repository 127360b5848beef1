"""The choices of ``vgrc eval --task`` as registry components: each declares its options
and what it accepts, and ``run(config, out, progress, timer) -> metrics`` runs it (one
module per task: :mod:`.retrieval`, :mod:`.steering`, :mod:`.itm`)."""

from __future__ import annotations

from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage.components import SteerAlphaOptions
from dataclasses import dataclass

from vgrc.evaluators.registry import Component, option

__all__ = ["Task", "Retrieval", "SteeringTask", "ITM", "ImageToImage"]


class Task(Component):
    kind = "task"
    #: the task searches a gallery with a first stage and an --index
    searches = False
    #: --relevance vlm can grade its lists
    judged_relevance = False
    #: --candidate-objects other than annotations: the candidates' sets can be cut from the pixels
    region_candidates = False
    #: holds rows out for a first stage that fits on them (ridge, ensemble --weights fit)
    fit_rows = False
    runner = ""

    def check_stages(self, stage1, reranker) -> None:
        """Refuse a first stage or reranker the task cannot use (one line)."""

    def run(self, config, out, progress, timer) -> dict:
        from importlib import import_module

        module, _, attr = self.runner.partition(":")
        return getattr(import_module(module), attr)(config, out, progress, timer)


class Retrieval(Task):
    name = "retrieval"
    help = "captions as queries, the dataset's images as the gallery"
    searches = True
    judged_relevance = True
    region_candidates = True
    fit_rows = True
    runner = "vgrc.evaluators.tasks.retrieval:run_retrieval"

    def check_stages(self, stage1, reranker) -> None:
        if reranker.image_pairs:
            raise InvalidInputError(f"--rerank {reranker.name} compares query images with candidates: use it with --task i2i")


class SteeringTask(Task):
    name = "steering"
    help = "the dataset's steering.jsonl rows, queries steered with --steer-alpha (App. H, I)"
    Options = SteerAlphaOptions
    judged_relevance = True
    runner = "vgrc.evaluators.tasks.steering:run_steering_eval"

    def check_stages(self, stage1, reranker) -> None:
        if stage1.name != "cosine" or reranker.name != "none":
            raise InvalidInputError("--task steering scores steered queries by cosine: use it without --stage1 / --rerank")


class ITM(Task):
    name = "itm"
    help = "SugarCrepe's positive-vs-negative caption accuracy (with --rerank none, hungarian or fgw)"
    runner = "vgrc.evaluators.tasks.itm:run_itm_eval"

    def check_stages(self, stage1, reranker) -> None:
        if stage1.name != "cosine" or not (reranker.name == "none" or reranker.candidate_objects):
            raise InvalidInputError(f"--task itm compares two captions per image by cosine, or by --rerank hungarian / fgw; "
                                    f"not --stage1 {stage1.name} --rerank {reranker.name}")

    def check(self, options, manifest) -> None:
        pass


@dataclass
class I2IOptions:
    gallery_split: str | None = option(None, "--gallery-split", "--task i2i: the gallery's split [default: the manifest's gallery_split "
                                       "(build-copies: originals), else the query split].", show_default=False)
    queries: str | None = option(None, "--queries", "--task i2i: query images from a folder (searched recursively) or a .txt list of paths, "
                                 "instead of a split; a query's relevant gallery image is the one with its file name's stem as id.", show_default=False)


class ImageToImage(Task):
    name = "i2i"
    help = "images as queries (the dataset's query split), the gallery split's images as candidates"
    Options = I2IOptions
    runner = "vgrc.evaluators.tasks.i2i:run_i2i"

    def check(self, options, manifest) -> None:
        from pathlib import Path

        where = Path(options.queries) if options.queries else None
        if where is not None and not (where.is_dir() or (where.is_file() and where.suffix.lower() == ".txt")):
            raise InvalidInputError(f"--queries {where}: expected a folder of images or a .txt file listing image paths")

    def check_stages(self, stage1, reranker) -> None:
        if stage1.name not in ("cosine", "ensemble") or not (reranker.name == "none" or reranker.image_pairs):
            raise InvalidInputError(f"--task i2i ranks images by cosine (or an ensemble), then by --rerank none / orb / sift / orb+sift; not "
                                    f"--stage1 {stage1.name} --rerank {reranker.name}")
