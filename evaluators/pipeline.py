"""``vgrc eval``: its options (:class:`EvalConfig`, every check before any heavy import)
and :func:`run_eval`, which runs the chosen task component (retrieval, steering, itm).

The retrieval task loads the dataset, encodes it with caching, runs the first stage and
the reranker, computes the metrics at both stages, and writes the output folder through
:mod:`vgrc.evaluators.runs`:

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
    full config (grouped: data, encode, output, and each chosen component with its own
    options and package), package versions, git commit, seed, timings, encode
    statistics, skipped items, data partition, ridge/steering diagnostics.
``recall_curve.png``
    R@K for K = 1…k, before and after reranking.
``plans.parquet`` (``--save-plans N``, Hungarian / FGW)
    the first N queries' transport plans with their final top 10 (and first relevant
    image): the solver's inputs M, C1, C2, p, q, its plan and cost (= minus the score),
    the object labels and, for box regions, their boxes; ``vgrc show`` draws them.

The final ranking is the reranked shortlist followed by the stage-1 order beyond it, so a
query whose relevant image is not shortlisted keeps its stage-1 rank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vgrc.evaluators import registry
from vgrc.evaluators.dataset import read_manifest
from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.ownership import check_run_folder, check_writable_folder
from vgrc.evaluators.registry import DEFAULT_TEMPLATES, SELECTED, check_choice, check_option_value, declared_options, default_of, option_fields
from vgrc.evaluators.runs import Timer

__all__ = ["EvalConfig", "DataOptions", "EncodeOptions", "Choices", "OutputOptions", "run_eval", "default_run_folder"]


@dataclass
class DataOptions:
    """Which rows: the dataset folder, its split, the fit rows, a seeded subset."""

    data: str | None = None
    split: str | None = None
    fit_split: str | None = None
    limit: int | None = None
    seed: int = 0
    skip_bad: bool = False
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))


@dataclass
class EncodeOptions:
    """How images and texts become embeddings (and where they are cached)."""

    model: str = "clip"
    pretrained: str | None = None
    device: str = "cpu"
    batch_size: int = 64
    decode_workers: int | None = None
    preprocess: str = "exact"
    precision: str = "fp32"
    cache_dir: str | None = None


@dataclass
class Choices:
    """Which component of each kind runs, and the shortlist size between the stages."""

    task: str = "retrieval"
    stage1: str = "cosine"
    rerank: str = "none"
    k: int = 50
    index: str = "exact"
    relevance: str = "symbolic"
    #: where each query's object set comes from: "annotations" (the paper's oracle) or an object parser
    query_objects: str = "annotations"
    parser_model: str | None = None
    #: where each candidate's object set comes from: "annotations" (the paper's oracle) or regions cut from its pixels
    candidate_objects: str = "annotations"


@dataclass
class OutputOptions:
    out: str | None = None
    overwrite: bool = False
    #: the first N queries' transport plans (Hungarian / FGW) are written to plans.parquet (0: none)
    save_plans: int = 0


GROUPS = {"data": DataOptions, "encode": EncodeOptions, "choices": Choices, "output": OutputOptions}


class EvalConfig:
    """All options of ``vgrc eval``, grouped: :class:`DataOptions`, :class:`EncodeOptions`,
    :class:`Choices` (which component of each kind), :class:`OutputOptions`, and the
    chosen components' own options, each declared once on its component (``fgw_alpha`` on
    FGW, ``tau`` on the softmin rerankers …; :meth:`options_of` gives a component its own
    ``Options``).

    Built from flat keywords (``EvalConfig(data=…, rerank="fgw", fgw_alpha=0.3)``), each
    routed to its group; reading ``config.fgw_alpha`` reads it there. Names carry one
    meaning each: ``fgw_alpha`` is FGW's feature/structure trade-off, ``ridge_lambda``
    the ridge mapper's L2 penalty, ``steer_alpha`` the steering strength.
    """

    def __init__(self, **values):
        groups = {name: cls() for name, cls in GROUPS.items()}
        object.__setattr__(self, "_groups", groups)
        object.__setattr__(self, "_options", {name: default_of(f) for name, (f, _) in declared_options().items()})
        #: where each of Hungarian's costs came from (set by :meth:`resolve_costs`; not an option)
        object.__setattr__(self, "costs_from", values.pop("costs_from", None))
        for name, value in values.items():
            setattr(self, name, value)

    def _home(self, name: str):
        for group in self._groups.values():
            if name in group.__dataclass_fields__:
                return group
        return None

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        group = self._home(name)
        if group is not None:
            return getattr(group, name)
        if name in self._options:
            return self._options[name]
        raise AttributeError(f"EvalConfig has no option {name!r}")

    def __setattr__(self, name: str, value) -> None:
        group = self._home(name)
        if group is not None:
            setattr(group, name, value)
        elif name in self._options:
            self._options[name] = value
        elif name == "costs_from":
            object.__setattr__(self, name, value)
        else:
            raise TypeError(f"EvalConfig got an unknown option {name!r}")

    def __eq__(self, other) -> bool:
        return isinstance(other, EvalConfig) and self.flat() == other.flat()

    def flat(self) -> dict:
        """Every option by name (groups and component options together)."""
        out = {k: v for group in self._groups.values() for k, v in asdict(group).items()}
        return {**out, **self._options, "costs_from": self.costs_from}

    def replace(self, **changes) -> "EvalConfig":
        """A copy with ``changes`` (``dataclasses.replace`` for this class)."""
        return EvalConfig(**{**self.flat(), **changes})

    def component(self, kind: str):
        """The chosen component of ``kind`` (``reranker`` → ``--rerank``'s)."""
        return registry.get(kind, getattr(self, SELECTED[kind]))

    def options_of(self, kind: str):
        """The chosen component's own ``Options``, filled from this config."""
        component = self.component(kind)
        return component.Options(**{f.name: self._options[f.name] for f in option_fields(component.Options)})

    def record(self) -> dict:
        """``run.json``'s config: the groups, and each chosen component with its options and
        package (a plug-in names its distribution and version)."""
        out = {name: asdict(group) for name, group in self._groups.items()}
        for kind in SELECTED:
            out[kind] = self.component(kind).record(self.options_of(kind))
        out["costs_from"] = self.costs_from
        return out

    # ------------------------------------------------------------------------- checks

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
        for option, split in (("--split", self.split), ("--fit-split", self.fit_split)):
            if split is not None and split not in manifest["splits"]:
                raise InvalidInputError(f"{option} {split!r}: {self.data} has no such split; its splits: {', '.join(manifest['splits'])}")
        for kind in SELECTED:  # now with the dataset's manifest (check_options ran them without one)
            self.component(kind).check(self.options_of(kind), manifest)
        if self.out is None:
            self.out = str(default_run_folder(self, manifest))
        if run_folder:
            check_run_folder(self.out, self.overwrite, run_kind or f"eval-{self.task}")

    def check_options(self) -> None:
        """Every check that needs neither the dataset nor the output folder."""
        from vgrc.evaluators.encoders.model_refs import check_clip_model
        from vgrc.evaluators.encoders.models import PRECISIONS
        from vgrc.evaluators.encoders.pixels import PREPROCESS_MODES

        for kind, attr in SELECTED.items():
            check_choice(registry.KINDS[kind], getattr(self, attr), registry.names(kind))
        check_choice("--precision", self.precision, PRECISIONS)
        check_choice("--query-objects", self.query_objects, ["annotations", *registry.names("object_parser")])
        task, stage1 = self.component("task"), self.component("stage1")
        task.check_stages(stage1, self.component("reranker"))
        check_clip_model("--model", self.model, self.pretrained)
        dev = self.device
        if not (dev in ("cpu", "mps", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise InvalidInputError(f"--device {dev!r}: expected cpu, cuda, cuda:N or mps")
        for option, value in (("--k", self.k), ("--batch-size", self.batch_size), ("--limit", 1 if self.limit is None else self.limit)):
            if value < 1:
                raise InvalidInputError(f"{option} must be ≥ 1, got {value}")
        self._check_option_values()
        if self.component("relevance").judged and not task.judged_relevance:
            raise InvalidInputError(f"--relevance {self.relevance} grades retrieval and steering lists; --task {self.task} has its own relevance")
        if self.candidate_objects != "annotations" and not task.region_candidates:
            raise InvalidInputError(f"--candidate-objects {self.candidate_objects} cuts the retrieval gallery's regions; --task {self.task} "
                                    "compares the annotations' sets: leave --candidate-objects out")
        if stage1.fits(self.options_of("stage1")) and not task.fit_rows:
            raise InvalidInputError(f"--task {self.task} holds no rows out to fit --stage1 {self.stage1} on; give its weights (--weights 0.5,0.5)")
        if self.component("index").faiss and stage1.own_gallery:
            raise InvalidInputError(f"--stage1 {self.stage1} searches fused vectors of its own; use it with --index exact")
        if self.component("index").faiss and not task.searches:
            raise InvalidInputError(f"--index {self.index} searches the retrieval task's gallery; --task {self.task} has its own search")
        if self.save_plans < 0:
            raise InvalidInputError(f"--save-plans must be ≥ 0 (queries whose plans are saved), got {self.save_plans}")
        if self.save_plans and not (getattr(self.component("reranker"), "saves_plans", False) and task.name == "retrieval"):
            raise InvalidInputError(f"--save-plans {self.save_plans}: only --task retrieval with --rerank "
                                    f"{' / '.join(n for n in registry.names('reranker') if getattr(registry.get('reranker', n), 'saves_plans', False))} "
                                    f"has transport plans to save (got --task {self.task} --rerank {self.rerank}); leave --save-plans out")
        if self.decode_workers is not None and self.decode_workers < 0:
            raise InvalidInputError(f"--decode-workers must be ≥ 0, got {self.decode_workers}")
        check_choice("--preprocess", self.preprocess, PREPROCESS_MODES)
        for kind in SELECTED:
            self.component(kind).check(self.options_of(kind), None)
        if not self.templates or any("{}" not in t for t in self.templates):
            bad = next((t for t in self.templates if "{}" not in t), "")
            raise InvalidInputError(f"--template {bad!r} has no '{{}}' where the object phrase goes, e.g. 'a photo of a {{}}.'")
        if stage1.fits(self.options_of("stage1")) and self.fit_fraction <= 0 and not self.fit_split:
            raise InvalidInputError(f"--stage1 {self.stage1} needs fit rows: give --fit-split or a --fit-fraction > 0")
        if self.steer and "steer" not in {f.name for f in option_fields(stage1.Options)}:
            raise InvalidInputError(f"--steer applies to {_users_text(declared_options()['steer'][1])} only")
        from vgrc.evaluators.encoders.cache import default_cache_dir

        # before a model loads or a picture is encoded: a cache that cannot take shards fails now, not after the work
        check_writable_folder("--cache-dir", self.cache_dir if self.cache_dir is not None else default_cache_dir())

    def _check_option_values(self) -> None:
        """Ranges and choices of every component option, chosen component or not (a bad
        value is refused even where it would do nothing)."""
        for name, (f, _) in declared_options().items():
            check_option_value(f, self._options[name])

    @property
    def held_out_fraction(self) -> float:
        """The share of the split held out of the evaluation to fit on: ``--fit-fraction``
        for the first stages that fit (ridge, ridge+steer, ensemble with ``--weights fit``); 0 for every
        other first stage, which evaluates the whole split (the paper's 1,000 CLEVR-HOPE
        and Urban1K images, not 800). docs/FIDELITY.md row 13."""
        return self.fit_fraction if self.component("stage1").fits(self.options_of("stage1")) else 0.0

    def resolve_costs(self, manifest: dict) -> None:
        """Hungarian's costs left unset take the dataset's recommendation (its manifest's
        ``recommended``: 1.0 / 1.0 for whole-scene captions such as Synthetic Shapes and
        CLEVR-HOPE), else 1.0 / 0.0; ``costs_from`` records which (docs/FIDELITY.md row 11)."""
        rec = dict(manifest.get("recommended") or {})
        sources = self.costs_from or {}
        regions = not self.component("candidate_objects").one_per_object
        if regions:  # a region is not an object: a surplus region is no surplus object (docs/FIDELITY.md row 63)
            rec.pop("surplus_cost", None)
        for name, fallback in (("unmatched_cost", 1.0), ("surplus_cost", 0.0)):
            if getattr(self, name) is None:
                setattr(self, name, float(rec.get(name, fallback)))
                sources[name] = "the dataset's recommendation" if name in rec else (
                    f"vgrc's default for --candidate-objects {self.candidate_objects}" if regions and name == "surplus_cost" else "vgrc's default")
            else:
                sources.setdefault(name, "given")
        self.costs_from = sources

    def inert_options(self) -> list[str]:
        """One line per component option set to a non-default value that does nothing
        here: no chosen component declares it, or the one that does ignores it with its
        other options (FGW's ``--epsilon`` without ``--solver sinkhorn``)."""
        used = set()
        compares_sets = self.component("reranker").candidate_objects
        for kind in SELECTED:
            if kind == "candidate_objects" and not compares_sets:
                continue  # no chosen reranker reads the candidates' sets: their options do nothing
            component, options = self.component(kind), self.options_of(kind)
            used |= {f.name for f in option_fields(component.Options)} - set(component.unused_options(options))
        lines = []
        if self.candidate_objects != "annotations" and not compares_sets:
            users = [n for n, c in registry.components("reranker").items() if c.candidate_objects]
            lines.append(f"--candidate-objects {self.candidate_objects} does nothing here: only --rerank {' / '.join(users)} compare object sets")
        for name, (f, users) in declared_options().items():
            value = self._options[name]
            if value in (default_of(f), None) or name in used:
                continue
            hint = f.metadata["unused_hint"]
            where = hint if hint.startswith("only ") else f"only {_users_text(users)} " + (
                hint if hint and not hint.startswith("(") else ("uses it" if len(users) == 1 else "use it") + (f" {hint}" if hint else ""))
            lines.append(f"{f.metadata['flag']} {value} does nothing here: {where}")
        return lines

    def run_name(self, dataset: str) -> str:
        """``shapes-clip-cosine-fgw``: names the default output folder."""
        model = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.model)
        if self.task == "steering":
            return f"{dataset}-{model}-steering-a{self.steer_alpha:g}"
        if self.task in ("itm", "i2i"):
            return f"{dataset}-{model}-{self.task}-{self.rerank}"
        regions = f"-{self.candidate_objects}" if self.candidate_objects != "annotations" and self.component("reranker").candidate_objects else ""
        return f"{dataset}-{model}-{self.stage1.replace('+', '-')}-{self.rerank}{regions}"


def _users_text(users: list[tuple[str, str]]) -> str:
    """``--stage1 ridge / ridge+steer, --rerank steer-min``: the components that use an option."""
    by_kind: dict[str, list[str]] = {}
    for kind, name in users:
        by_kind.setdefault(registry.KINDS[kind] or kind, []).append(name)
    return ", ".join(f"{flag} {' / '.join(names)}" for flag, names in by_kind.items())


def default_run_folder(config: EvalConfig, manifest: dict) -> Path:
    """``results/<dataset>-<model>-<stage1>-<rerank>`` in the working folder."""
    return Path("results") / config.run_name(str(manifest.get("dataset") or Path(config.data).name))


def run_eval(config: EvalConfig, *, on_progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run one evaluation and write its output folder; return the metrics dict.

    ``on_progress(phase, done, total)`` reports long phases (encoding, reranking). Nothing
    is written before every check has passed and the metrics exist: the output folder is
    claimed only when the task writes.
    """
    config.check()
    timer = Timer()
    progress = on_progress or (lambda phase, done, total: None)
    return config.component("task").run(config, Path(config.out), progress, timer)
