"""``vgrc eval``: its options (:class:`EvalConfig`, every check before any heavy import)
and :func:`run_eval`, which dispatches to the task (``vgrc.evaluators.tasks``: retrieval,
steering, itm). The retrieval task loads the dataset, encodes it with caching, runs the
first stage and the reranker, computes the metrics at both stages, and writes the output
folder:

``metrics.json``
    flat name -> value (final ranking: ``t2i_R@1``…; first stage: ``stage1_t2i_R@1``…), plus
    ``config``.
``metrics.csv`` / ``metrics.md``
    the same metrics as a one-row table.
``per_query.parquet``
    ``query_id``, ``caption``, ``rank_stage1``, ``rank_final`` (0-based rank of the first
    relevant image in the full ranking; -1 when no relevant image is in the gallery),
    ``top1_stage1``, ``top1_final``, ``steered``.
``run.json``
    full config, package versions, git commit, seed, timings, encode statistics,
    skipped items, data partition, ridge/steering diagnostics.
``recall_curve.png``
    R@K for K = 1…k, before and after reranking.

The final ranking is the reranked shortlist followed by the stage-1 order beyond it, so a
query whose relevant image is not shortlisted keeps its stage-1 rank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


from vgrc.evaluators.dataset import read_manifest
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.first_stage import parse_steer_pairs
from vgrc.evaluators.ownership import check_run_folder, check_writable_folder
from vgrc.evaluators.rerank import RERANKERS
from vgrc.evaluators.registry import DEFAULT_TEMPLATES, FIT_STAGES, RELEVANCE, STAGE1, TASKS, check_choice
from vgrc.evaluators.runs import Timer

__all__ = ["EvalConfig", "STAGE1", "TASKS", "DEFAULT_TEMPLATES", "list_stage1", "run_eval", "default_run_folder"]

def list_stage1() -> list[str]:
    return list(STAGE1)


#: (option, field, applies to this configuration?, where it does something)
INERT_OPTIONS = (
    ("--fit-fraction", "fit_fraction", lambda c: c.stage1 in FIT_STAGES, "only --stage1 ridge / ridge+steer hold rows out to fit on"),
    ("--fgw-alpha", "fgw_alpha", lambda c: c.rerank == "fgw", "only --rerank fgw uses it"),
    ("--solver", "solver", lambda c: c.rerank == "fgw", "only --rerank fgw uses it (Hungarian solves its assignment exactly)"),
    ("--epsilon", "epsilon", lambda c: c.rerank == "fgw" and c.solver == "sinkhorn", "only --rerank fgw --solver sinkhorn uses it"),
    ("--tau", "tau", lambda c: c.rerank in ("softmin", "steer-softmin"), "only --rerank softmin / steer-softmin use it"),
    ("--unmatched-cost", "unmatched_cost", lambda c: c.rerank == "hungarian", "only --rerank hungarian uses it"),
    ("--surplus-cost", "surplus_cost", lambda c: c.rerank == "hungarian", "only --rerank hungarian uses it"),
    ("--nprobe", "nprobe", lambda c: c.index == "ivf", "only --index ivf uses it"),
    ("--ef-search", "ef_search", lambda c: c.index == "hnsw", "only --index hnsw uses it"),
    ("--judge-model", "judge_model", lambda c: c.relevance == "vlm", "only --relevance vlm uses it"),
    ("--judge-mode", "judge_mode", lambda c: c.relevance == "vlm", "only --relevance vlm uses it"),
    ("--judge-batch-size", "judge_batch_size", lambda c: c.relevance == "vlm", "only --relevance vlm uses it"),
)


@dataclass
class EvalConfig:
    """All options of ``vgrc eval`` (see ``vgrc eval --help`` for their meaning).

    Names carry one meaning each: ``fgw_alpha`` is FGW's feature/structure trade-off,
    ``ridge_lambda`` the ridge mapper's L2 penalty, ``steer_alpha`` the steering strength.
    """

    data: str | None = None
    out: str | None = None
    model: str = "clip"
    pretrained: str | None = None
    stage1: str = "cosine"
    rerank: str = "none"
    k: int = 50
    fgw_alpha: float = 0.5
    solver: str = "cg"
    epsilon: float = 0.01
    tau: float = 0.05
    #: Hungarian's costs; None: the dataset's recommendation (manifest ``recommended``), else 1.0 / 0.0
    unmatched_cost: float | None = None
    surplus_cost: float | None = None
    split: str | None = None
    fit_split: str | None = None
    fit_fraction: float = 0.2
    ridge_lambda: float = 1.0
    steer: list[str] = field(default_factory=list)
    steer_alpha: float = 0.5
    steer_top: int = 3
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))
    limit: int | None = None
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 64
    decode_workers: int | None = None
    preprocess: str = "exact"
    index: str = "exact"
    nprobe: int = 32
    ef_search: int = 128
    precision: str = "fp32"
    cache_dir: str | None = None
    skip_bad: bool = False
    task: str = "retrieval"
    overwrite: bool = False
    relevance: str = "symbolic"
    judge_model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    judge_batch_size: int = 8
    judge_mode: str = "logits"
    #: where each of Hungarian's costs came from (set by :meth:`resolve_costs`; not an option)
    costs_from: dict | None = None

    def check(self, *, run_folder: bool = True, run_kind: str | None = None) -> None:
        """Validate every option before any work or heavy import (``check_inputs`` style).

        Writes nothing. Model names are checked against open_clip's shipped configs without
        importing torch; the dataset's manifest is read; the output folder is checked
        (unless ``run_folder`` is false: ``vgrc diagnose all`` checks its subfolders) for
        a run of ``run_kind`` (default ``eval-TASK``; an unfinished run of that kind resumes).
        """
        self.check_options()
        if self.data is None:
            raise InvalidInputError("--data is required here (the CLI builds Synthetic Shapes when it is left out)")
        manifest = read_manifest(self.data)
        self.resolve_costs(manifest)
        circular = manifest.get("image_objects_from_captions") or str(manifest.get("objects_source", "")).startswith("parsed from the positive captions")
        if self.task == "itm" and self.rerank != "none" and circular:
            raise InvalidInputError(
                f"--task itm --rerank {self.rerank} on {self.data}: its images' objects were parsed from their positive captions, so the "
                "positive caption always matches at cost 0 and accuracy is 1 - ties (circular); import SugarCrepe with "
                "--coco-annotations instances_val2017.json, or use --rerank none"
            )
        if self.split is not None and self.split not in manifest["splits"]:
            raise InvalidInputError(f"--split {self.split!r}: {self.data} has no such split; its splits: {', '.join(manifest['splits'])}")
        if self.fit_split is not None and self.fit_split not in manifest["splits"]:
            raise InvalidInputError(f"--fit-split {self.fit_split!r}: {self.data} has no such split; its splits: {', '.join(manifest['splits'])}")
        if self.out is None:
            self.out = str(default_run_folder(self, manifest))
        if run_folder:
            check_run_folder(self.out, self.overwrite, run_kind or f"eval-{self.task}")

    @property
    def held_out_fraction(self) -> float:
        """The share of the split held out of the evaluation to fit on: ``--fit-fraction``
        for the ridge first stages, which fit on it; 0 for every other first stage, which
        evaluates the whole split (the paper's 1,000 CLEVR-HOPE and Urban1K images, not 800).
        docs/FIDELITY.md row 13."""
        return self.fit_fraction if self.stage1 in FIT_STAGES else 0.0

    def resolve_costs(self, manifest: dict) -> None:
        """Hungarian's costs left unset take the dataset's recommendation (its manifest's
        ``recommended``: 1.0 / 1.0 for whole-scene captions such as Synthetic Shapes and
        CLEVR-HOPE), else 1.0 / 0.0; ``costs_from`` records which (docs/FIDELITY.md row 11)."""
        rec = manifest.get("recommended") or {}
        sources = self.costs_from or {}
        for name, fallback in (("unmatched_cost", 1.0), ("surplus_cost", 0.0)):
            if getattr(self, name) is None:
                setattr(self, name, float(rec.get(name, fallback)))
                sources[name] = "the dataset's recommendation" if name in rec else "vgrc's default"
            else:
                sources.setdefault(name, "given")
        self.costs_from = sources

    def inert_options(self) -> list[str]:
        """One line per option set to a non-default value that does nothing here."""
        from dataclasses import fields

        defaults = {f.name: f.default for f in fields(self)}
        lines = []
        for option, name, applies, where in INERT_OPTIONS:
            if getattr(self, name) not in (defaults[name], None) and not applies(self):
                lines.append(f"{option} {getattr(self, name)} does nothing here: {where}")
        return lines

    def check_options(self) -> None:
        """Every check that needs neither the dataset nor the output folder."""
        import math

        from vgrc.evaluators.encoders import PRECISIONS
        from vgrc.evaluators.model_refs import check_clip_model
        from vgrc.evaluators.solvers import list_fgw_solvers

        check_choice("--task", self.task, TASKS)
        check_choice("--stage1", self.stage1, STAGE1)
        check_choice("--rerank", self.rerank, RERANKERS)
        check_choice("--solver", self.solver, list_fgw_solvers())
        check_choice("--precision", self.precision, PRECISIONS)
        if self.task == "steering" and (self.stage1 != "cosine" or self.rerank != "none"):
            raise InvalidInputError("--task steering scores steered queries by cosine: use it without --stage1 / --rerank")
        if self.task == "itm" and (self.stage1 != "cosine" or self.rerank not in ("none", "hungarian", "fgw")):
            raise InvalidInputError(f"--task itm compares two captions per image by cosine, or by --rerank hungarian / fgw; not --stage1 {self.stage1} --rerank {self.rerank}")
        check_clip_model("--model", self.model, self.pretrained)
        dev = self.device
        if not (dev == "cpu" or dev == "mps" or dev == "cuda" or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise InvalidInputError(f"--device {dev!r}: expected cpu, cuda, cuda:N or mps")
        for option, value in (("--k", self.k), ("--batch-size", self.batch_size)):
            if value < 1:
                raise InvalidInputError(f"{option} must be ≥ 1, got {value}")
        if self.limit is not None and self.limit < 1:
            raise InvalidInputError(f"--limit must be ≥ 1, got {self.limit}")
        for option, value, lo, hi in (("--fgw-alpha", self.fgw_alpha, 0.0, 1.0), ("--fit-fraction", self.fit_fraction, 0.0, 0.999999)):
            if not (math.isfinite(value) and lo <= value <= hi):
                raise InvalidInputError(f"{option} must be in [{lo:g}, {1 if hi < 1 else hi:g}{')' if hi < 1 else ']'}, got {value}")
        for option, value in (("--tau", self.tau), ("--epsilon", self.epsilon)):
            if not (math.isfinite(value) and value > 0):
                raise InvalidInputError(f"{option} must be > 0, got {value}")
        for option, value in (("--unmatched-cost", self.unmatched_cost or 0.0), ("--surplus-cost", self.surplus_cost or 0.0), ("--ridge-lambda", self.ridge_lambda), ("--steer-alpha", self.steer_alpha)):
            if not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(f"{option} must be ≥ 0, got {value}")
        if self.steer_top < 0:
            raise InvalidInputError(f"--steer-top must be ≥ 0, got {self.steer_top}")
        check_choice("--relevance", self.relevance, RELEVANCE)
        check_choice("--judge-mode", self.judge_mode, ("logits", "json"))
        from vgrc.evaluators.index import INDEXES

        check_choice("--index", self.index, INDEXES)
        if self.index != "exact":
            from vgrc.evaluators.index.faiss_index import require_faiss

            if self.task != "retrieval" or self.stage1 not in ("cosine", "ridge", "ridge+steer", "objects-avg", "objects-steer-avg"):
                raise InvalidInputError(f"--index {self.index} searches the retrieval task's gallery; --task {self.task} has its own search")
            require_faiss()
        for option, value in (("--nprobe", self.nprobe), ("--ef-search", self.ef_search)):
            if value < 1:
                raise InvalidInputError(f"{option} must be ≥ 1, got {value}")
        if self.decode_workers is not None and self.decode_workers < 0:
            raise InvalidInputError(f"--decode-workers must be ≥ 0, got {self.decode_workers}")
        from vgrc.evaluators.pixels import PREPROCESS_MODES

        check_choice("--preprocess", self.preprocess, PREPROCESS_MODES)
        if self.judge_batch_size < 1:
            raise InvalidInputError(f"--judge-batch-size must be ≥ 1, got {self.judge_batch_size}")
        if self.relevance == "vlm":
            from vgrc.evaluators.model_refs import check_model_reference

            if self.task not in ("retrieval", "steering"):
                raise InvalidInputError(f"--relevance vlm grades retrieval and steering lists; --task {self.task} has its own relevance")
            check_model_reference("--judge-model", self.judge_model, kind="transformers")
        if not self.templates or any("{}" not in t for t in self.templates):
            bad = next((t for t in self.templates if "{}" not in t), "")
            raise InvalidInputError(f"--template {bad!r} has no '{{}}' where the object phrase goes, e.g. 'a photo of a {{}}.'")
        if self.stage1 in ("ridge", "ridge+steer") and self.fit_fraction <= 0 and not self.fit_split:
            raise InvalidInputError(f"--stage1 {self.stage1} needs fit rows: give --fit-split or a --fit-fraction > 0")
        if self.steer and self.stage1 != "ridge+steer":
            raise InvalidInputError("--steer applies to --stage1 ridge+steer only")
        parse_steer_pairs(self.steer)
        from vgrc.evaluators.embedding_cache import default_cache_dir

        # before a model loads or a picture is encoded: a cache that cannot take shards fails now, not after the work
        check_writable_folder("--cache-dir", self.cache_dir if self.cache_dir is not None else default_cache_dir())

    def run_name(self, dataset: str) -> str:
        """``shapes-clip-cosine-fgw``: names the default output folder."""
        model = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.model)
        if self.task == "steering":
            return f"{dataset}-{model}-steering-a{self.steer_alpha:g}"
        if self.task == "itm":
            return f"{dataset}-{model}-itm-{self.rerank}"
        return f"{dataset}-{model}-{self.stage1.replace('+', '-')}-{self.rerank}"


def default_run_folder(config: EvalConfig, manifest: dict) -> Path:
    """``results/<dataset>-<model>-<stage1>-<rerank>`` in the working folder."""
    return Path("results") / config.run_name(str(manifest.get("dataset") or Path(config.data).name))


def run_eval(config: EvalConfig, *, on_progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run one evaluation and write its output folder; return the metrics dict.

    ``on_progress(phase, done, total)`` reports long phases (encoding, reranking). Nothing
    is written before every check has passed and the metrics exist: the output folder is
    created (or a previous run in it cleared, with ``overwrite``) only at the end.
    """
    config.check()
    timer = Timer()
    progress = on_progress or (lambda phase, done, total: None)
    out = Path(config.out)
    from vgrc.evaluators.tasks import get_task_runner

    return get_task_runner(config.task)(config, out, progress, timer)
