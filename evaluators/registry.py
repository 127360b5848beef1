"""One registry of vgrc's components: every stage 1, reranker, FGW solver, task, relevance
source, index, judge, diagnostic, importer and object parser, by kind and name.

A **component** is a small class (:class:`Component`) that carries its ``name``, a one-line
``help``, an ``Options`` dataclass whose fields are its CLI options (declared once, with
:func:`option`), capability flags, ``check(options, manifest)`` and its work method (a
reranker's ``score``, a task's ``run`` …). Components of the kinds in
:data:`ENTRY_POINT_GROUPS` may also come from other packages, through entry points::

    [project.entry-points."vgrc.rerankers"]
    cosine-of-means = "my_package.rerank:CosineOfMeans"

:func:`names` lists a kind without importing anything; :func:`get` imports one component
("module:attr", lazily) with "did you mean" on a typo; :func:`components` loads a whole
kind, for ``--help`` and the CLI's options. Declarations import neither numpy nor torch
(their work methods import what they need), so ``vgrc --help`` stays instant.
"""

from __future__ import annotations

import difflib
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from typing import Any, ClassVar

__all__ = [
    "KINDS", "ENTRY_POINT_GROUPS", "Component", "NoOptions", "option", "option_fields", "names", "get", "components", "origin",
    "check_choice", "check_option_value", "check_options", "DEFAULT_TEMPLATES", "SELECTED", "declared_options", "default_of",
]

#: kind -> the CLI option that chooses one (None: chosen elsewhere)
KINDS: dict[str, str | None] = {
    "stage1": "--stage1", "reranker": "--rerank", "solver": "--solver", "task": "--task", "relevance": "--relevance",
    "index": "--index", "judge": "--judge", "diagnostic": None, "importer": None, "object_parser": "--query-objects",
    "candidate_objects": "--candidate-objects",
}
#: kinds that other packages may add to, and the entry-point group of each
ENTRY_POINT_GROUPS: dict[str, str] = {
    "stage1": "vgrc.stage1", "reranker": "vgrc.rerankers", "task": "vgrc.tasks", "importer": "vgrc.importers", "judge": "vgrc.judges",
}
DEFAULT_TEMPLATES = ("a photo of a {}.", "a {}.", "an image of a {}.")

_E = "vgrc.evaluators"
#: vgrc's own components: kind -> name -> "module:attr" (registry order = help and report order)
BUILTIN: dict[str, dict[str, str]] = {
    "stage1": {
        "cosine": f"{_E}.first_stage.components:Cosine",
        "ridge": f"{_E}.first_stage.components:Ridge",
        "ridge+steer": f"{_E}.first_stage.components:RidgeSteer",
        "objects-avg": f"{_E}.first_stage.components:ObjectsAvg",
        "objects-steer-avg": f"{_E}.first_stage.components:ObjectsSteerAvg",
        "ensemble": f"{_E}.first_stage.components:Ensemble",
    },
    "reranker": {
        "none": f"{_E}.rerankers.none:NoRerank",
        "hungarian": f"{_E}.rerankers.hungarian:Hungarian",
        "fgw": f"{_E}.rerankers.fgw:FGW",
        "min": f"{_E}.rerankers.object_image:Min",
        "softmin": f"{_E}.rerankers.object_image:Softmin",
        "steer-min": f"{_E}.rerankers.object_image:SteerMin",
        "steer-softmin": f"{_E}.rerankers.object_image:SteerSoftmin",
        "orb": f"{_E}.rerankers.geometric:ORB",
        "sift": f"{_E}.rerankers.geometric:SIFT",
        "orb+sift": f"{_E}.rerankers.geometric:ORBSIFT",
    },
    "solver": {
        "cg": f"{_E}.rerankers.fgw_solvers:ConditionalGradient",
        "global": f"{_E}.rerankers.fgw_solvers:GlobalMinimum",
        "pot": f"{_E}.rerankers.fgw_solvers:POT",
        "sinkhorn": f"{_E}.rerankers.fgw_solvers:Sinkhorn",
    },
    "task": {
        "retrieval": f"{_E}.tasks.components:Retrieval",
        "steering": f"{_E}.tasks.components:SteeringTask",
        "itm": f"{_E}.tasks.components:ITM",
        "i2i": f"{_E}.tasks.components:ImageToImage",
    },
    "relevance": {
        "symbolic": f"{_E}.judges.components:Symbolic",
        "vlm": f"{_E}.judges.components:VLM",
    },
    "index": {
        "exact": f"{_E}.index.components:Exact",
        "flat": f"{_E}.index.components:Flat",
        "ivf": f"{_E}.index.components:IVF",
        "hnsw": f"{_E}.index.components:HNSW",
    },
    "judge": {
        "qwen2.5-vl": f"{_E}.judges.components:QwenVerifier",
        "none": f"{_E}.judges.components:NoVerifier",
    },
    "diagnostic": {
        "substitution": f"{_E}.diagnostics.substitution:run_substitution",
        "geometry": f"{_E}.diagnostics.geometry:run_geometry",
        "composition": f"{_E}.diagnostics.composition:run_composition",
        "k-sweep": f"{_E}.diagnostics.k_sweep:run_k_sweep",
        "alpha-sweep": f"{_E}.diagnostics.alpha_sweep:run_alpha_sweep",
        "fgw-alpha": f"{_E}.diagnostics.fgw_alpha:run_fgw_alpha",
        "all": f"{_E}.diagnostics.run_all:run_all",
    },
    # importers are builders (the generators layer); the registry only names them
    "importer": {
        "sugarcrepe": "vgrc.generators.importers.sugarcrepe:import_sugarcrepe",
        "clevr-hope": "vgrc.generators.importers.clevr_hope:import_clevr_hope",
        "urban1k": "vgrc.generators.importers.urban1k:import_urban1k",
        "captions": "vgrc.generators.importers.captions:import_captions",
    },
    "object_parser": {
        "rules": f"{_E}.objects.parsers:parse_rules",
        "spacy": f"{_E}.objects.parsers:parse_spacy",
        "llm": f"{_E}.objects.parsers:LLMObjectParser",
    },
    "candidate_objects": {
        "annotations": f"{_E}.objects.candidates:Annotations",
        "boxes": f"{_E}.objects.crops:Boxes",
        "detector": f"{_E}.objects.detector:Detector",
        "patches": f"{_E}.objects.patches:Patches",
        "grid": f"{_E}.objects.crops:Grid",
    },
}


# ----------------------------------------------------------------------------- declarations


def option(default: Any, flag: str, help: str, *, choices: str | tuple | None = None,
           minimum: float | None = None, maximum: float | None = None, open_min: bool = False, open_max: bool = False, unused_hint: str = "",
           show_default: Any = True):
    """A dataclass field that is one CLI option of a component.

    ``choices`` is a tuple of values or the name of a registry kind (its names);
    ``minimum`` / ``maximum`` bound numbers (``open_min`` / ``open_max``: the bound itself is
    refused);
    ``unused_hint`` follows the "does nothing here" warning; ``show_default`` False (or a
    text) when the default is computed at run time.
    """
    meta = {"flag": flag, "help": help, "choices": choices, "minimum": minimum, "maximum": maximum,
            "open_min": open_min, "open_max": open_max, "unused_hint": unused_hint, "show_default": show_default}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class NoOptions:
    """A component without options."""


def option_fields(options_class) -> list:
    """The dataclass fields of an ``Options`` class that :func:`option` declared."""
    return [f for f in fields(options_class) if "flag" in f.metadata]


def default_of(f) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


def check_option_value(f, value) -> None:
    """One line when ``value`` is outside the declared option's choices or range."""
    import math

    meta = f.metadata
    if meta["choices"] is not None:
        check_choice(meta["flag"], value, names(meta["choices"]) if isinstance(meta["choices"], str) else meta["choices"])
    if value is None or meta["minimum"] is None or isinstance(value, (bool, str, list)):
        return
    from vgrc.evaluators.errors import InvalidInputError

    lo, hi = meta["minimum"], meta["maximum"]
    finite = not isinstance(value, float) or math.isfinite(value)
    if hi is not None:
        if not (finite and lo <= value and (value < hi if meta["open_max"] else value <= hi)):
            raise InvalidInputError(f"{meta['flag']} must be in [{lo:g}, {hi:g}{')' if meta['open_max'] else ']'}, got {value}")
    elif meta["open_min"] and not (finite and value > lo):
        raise InvalidInputError(f"{meta['flag']} must be > {lo:g}, got {value}")
    elif not (finite and value >= lo):
        raise InvalidInputError(f"{meta['flag']} must be ≥ {lo:g}, got {value}")


def check_options(options) -> None:
    """:func:`check_option_value` for every declared field of an ``Options`` instance."""
    for f in option_fields(type(options)):
        check_option_value(f, getattr(options, f.name))


class Component:
    """Base of every component. Subclasses set the class attributes and override methods.

    ``check`` runs before any model loads and raises
    :class:`~vgrc.evaluators.errors.InvalidInputError` with one line; ``notes`` are
    plain-language statements every output of a run carries; ``unused_options`` names
    the component's own options that its other options make inert (e.g. FGW's
    ``--epsilon`` without ``--solver sinkhorn``).
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def check(self, options, manifest: dict | None) -> None:
        """Refuse bad option values or an unsuitable dataset (one line each). Called twice
        by ``vgrc eval``: in the pre-flight check with ``manifest`` None (before the default
        dataset is built or any model loads), then with the dataset's manifest."""

    def notes(self, options, data_info: dict) -> list[str]:
        return []

    def unused_options(self, options) -> list[str]:
        """Field names of this component's options that do nothing with these values."""
        return []

    def record(self, options) -> dict:
        """What ``run.json`` says about this component: name, options, where it came from."""
        from dataclasses import asdict

        return {"name": self.name, "options": asdict(options), **origin(self.kind, self.name)}


# ----------------------------------------------------------------------------- lookup


@lru_cache(maxsize=None)
def _entry_points(kind: str) -> dict[str, Any]:
    """Third-party components of ``kind``: name -> importlib.metadata EntryPoint."""
    group = ENTRY_POINT_GROUPS.get(kind)
    if group is None:
        return {}
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=group) if ep.name not in BUILTIN.get(kind, {})}


def names(kind: str) -> list[str]:
    """Every registered name of ``kind``: vgrc's own first, then installed plug-ins."""
    _check_kind(kind)
    return [*BUILTIN.get(kind, {}), *_entry_points(kind)]


def get(kind: str, name: str, option: str | None = None):
    """The component (or function) registered as ``name``, imported now; an unknown name
    gets one line naming ``option`` (default: the kind's CLI option), the closest name and
    every valid one."""
    valid = names(kind)
    check_choice(option or KINDS.get(kind) or kind, name, valid)
    return _load(kind, name)


@lru_cache(maxsize=None)
def _load(kind: str, name: str):
    from importlib import import_module

    if name in BUILTIN.get(kind, {}):
        module, _, attr = BUILTIN[kind][name].partition(":")
        obj = getattr(import_module(module), attr)
    else:
        obj = _entry_points(kind)[name].load()
    return obj() if isinstance(obj, type) and issubclass(obj, Component) else obj


def components(kind: str) -> dict[str, Component]:
    """Every component of ``kind``, loaded (for ``--help``, choices and option panels)."""
    return {name: _load(kind, name) for name in names(kind)}


def origin(kind: str, name: str) -> dict:
    """``{"package": "vgrc"}`` for vgrc's own components; a plug-in's distribution name and
    version (``run.json`` records them, so a run says which code scored it)."""
    if name in BUILTIN.get(kind, {}):
        return {"package": "vgrc"}
    ep = _entry_points(kind).get(name)
    dist = getattr(ep, "dist", None)
    return {"package": getattr(dist, "name", None) or (ep.value.split(":")[0] if ep else None),
            "version": getattr(dist, "version", None), "entry_point": getattr(ep, "value", None)}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")


#: component kind -> the Choices field that names the chosen one (in check order)
SELECTED = {"stage1": "stage1", "reranker": "rerank", "candidate_objects": "candidate_objects", "index": "index", "relevance": "relevance", "task": "task"}


@lru_cache(maxsize=None)
def declared_options() -> dict[str, tuple]:
    """Every option a selectable component declares: field name -> (field, [(kind, component
    name), …]). An option shared by several components (``--steer-alpha``) is declared
    alike by each; a conflicting declaration is a bug, refused here."""
    out: dict[str, tuple] = {}
    for kind in SELECTED:
        for name, component in components(kind).items():
            for f in option_fields(component.Options):
                if f.name in out:
                    first = out[f.name][0]
                    if (first.metadata["flag"], default_of(first)) != (f.metadata["flag"], default_of(f)):
                        raise TypeError(f"option {f.name!r} of {kind} {name!r} conflicts with its declaration by {out[f.name][1][0]}")
                    out[f.name][1].append((kind, name))
                else:
                    out[f.name] = (f, [(kind, name)])
    return out


def check_choice(option: str, value: str, valid) -> None:
    """One line naming the option, the bad value, the closest valid name and all of them."""
    from vgrc.evaluators.errors import InvalidInputError

    valid = list(valid)
    if value not in valid:
        close = difflib.get_close_matches(value, valid, n=1)
        near = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidInputError(f"unknown {option} {value!r}{near}; valid: {', '.join(valid)}")
