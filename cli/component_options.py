"""``vgrc eval``'s options, derived: its own option groups from one table, and every
component's options from the registry (each declared once, on its component), grouped in
``--help`` by Typer's ``rich_help_panel``. A plug-in's reranker and its options appear here
without any edit to vgrc.

:func:`command_signature` gives the ``inspect.Signature`` Typer reads; the command itself
takes ``**options``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vgrc.cli.options import BatchSize, CacheDir, DecodeWorkers, Debug, Device, Limit, Precision, PreprocessMode, Pretrained, Quiet, Seed, Split
from vgrc.evaluators import registry
from vgrc.evaluators.encoders.model_refs import MODEL_ALIASES
from vgrc.evaluators.registry import DEFAULT_TEMPLATES, declared_options

__all__ = ["command_signature", "component_parameters", "choices_help", "declared_help", "PANELS"]

#: the help panel of each component kind's options
PANELS = {"task": "Task", "stage1": "Stage 1", "reranker": "Reranker", "candidate_objects": "Candidate objects", "index": "Stage-1 index", "relevance": "Relevance"}
MODEL_HELP = f"open_clip model: {', '.join(MODEL_ALIASES)}, an open_clip ARCH:TAG, hf-hub:ORG/NAME, or ARCH with --pretrained PATH."


def choices_help(kind: str, lead: str) -> str:
    """``lead: name: help; name: help.`` over the registered components of ``kind``."""
    return f"{lead}: " + "; ".join(f"{name}: {c.help}" for name, c in registry.components(kind).items()) + "."


def declared_help(name: str) -> str:
    """The help of a component option as its component declares it (``unmatched_cost`` …)."""
    return declared_options()[name][0].metadata["help"]


def _opt(flag: str, help: str, panel: str, *names: str, show_default: Any = True):
    return typer.Option(flag, *names, help=help, rich_help_panel=panel, show_default=show_default)


def _in_panel(alias, panel: str):
    """A shared ``Annotated`` option alias (cli/options.py) shown in ``panel``."""
    import copy

    base, info = alias.__origin__, copy.copy(alias.__metadata__[0])
    info.rich_help_panel = panel
    return Annotated[base, info]


def _own_options() -> list[tuple[str, Any, Any]]:
    """(parameter, annotation, default) of eval's own options, by group."""
    data, model, pipe, out = "Data", "Model and encoding", "Pipeline", "Output"
    path = Optional[Path]
    return [
        ("data", Annotated[path, _opt("--data", "Dataset folder built by a vgrc builder [default: Synthetic Shapes, built once under the cache folder].",
                                      data, "-d", show_default=False)], None),
        ("split", _in_panel(Split, data), None),
        ("fit_split", Annotated[Optional[str], _opt("--fit-split", "Split used to fit ridge/steering [default: a seeded hold-out].", data, show_default=False)], None),
        ("limit", _in_panel(Limit, data), None),
        ("seed", _in_panel(Seed, data), 0),
        ("skip_bad", Annotated[bool, _opt("--skip-bad", "Skip missing or damaged images (recorded in run.json) instead of stopping.", data)], False),
        ("template", Annotated[Optional[list[str]], _opt("--template", f"Prompt template for object phrases, with {{}} (repeatable) [default: {' | '.join(DEFAULT_TEMPLATES)}].",
                                                         data, show_default=False)], None),
        ("model", Annotated[str, _opt("--model", MODEL_HELP, model, "-m")], "clip"),
        ("pretrained", _in_panel(Pretrained, model), None),
        ("device", _in_panel(Device, model), "cpu"),
        ("batch_size", _in_panel(BatchSize, model), 64),
        ("decode_workers", _in_panel(DecodeWorkers, model), None),
        ("preprocess", _in_panel(PreprocessMode, model), "exact"),
        ("precision", _in_panel(Precision, model), "fp32"),
        ("cache_dir", _in_panel(CacheDir, model), None),
        ("task", Annotated[str, _opt("--task", choices_help("task", "What is evaluated"), pipe)], "retrieval"),
        ("stage1", Annotated[str, _opt("--stage1", choices_help("stage1", "First stage"), pipe)], "cosine"),
        ("rerank", Annotated[str, _opt("--rerank", choices_help("reranker", "Second stage over the shortlist"), pipe)], "none"),
        ("k", Annotated[int, _opt("--k", "Shortlist size reranked by the second stage.", pipe)], 50),
        ("index", Annotated[str, _opt("--index", choices_help("index", "Stage-1 search"), pipe)], "exact"),
        ("relevance", Annotated[str, _opt("--relevance", choices_help("relevance", "Graded relevance of nDCG@K and CAS@K"), pipe)], "symbolic"),
        ("query_objects", Annotated[str, _opt("--query-objects", "Where each query's object set comes from: annotations (the dataset's; the paper's oracle) "
                                              f"or the caption parsed by {' / '.join(registry.names('object_parser'))} (rules: no model; spacy: en_core_web_sm; "
                                              "llm: --parser-model), so any free-text query has a set.", pipe)], "annotations"),
        ("candidate_objects", Annotated[str, _opt("--candidate-objects", choices_help("candidate_objects", "Where each candidate's object set for "
                                                  "--rerank hungarian / fgw comes from (annotations: the paper's oracle; the others cut regions from the "
                                                  "pixels and need no annotations, except boxes, which crops the annotated boxes)"), pipe)], "annotations"),
        ("parser_model", Annotated[Optional[str], _opt("--parser-model", "Instruct model of --query-objects llm: hub id or local folder "
                                                       "[default: Qwen/Qwen2.5-1.5B-Instruct].", pipe, show_default=False)], None),
        ("shards", Annotated[int, _opt("--shards", "Processes on this machine (one per GPU with --device cuda) that share the encoding, the judging and the "
                                       "reranking, launched with torch.distributed (torchrun); same results as 1. Across machines, start vgrc eval "
                                       "under torchrun yourself (README).", pipe)], 1),
        ("out", Annotated[path, _opt("--out", "Run folder [default: results/DATASET-MODEL-STAGE1-RERANK].", out, "-o", show_default=False)], None),
        ("overwrite", Annotated[bool, _opt("--overwrite", "Replace the vgrc run already in --out (never anything else).", out)], False),
        ("save_plans", Annotated[int, _opt("--save-plans", "Write the transport plans (Hungarian / FGW) of the first N queries' top candidates "
                                           "to plans.parquet, with their costs, for the detail view of vgrc show (0 = none).", out)], 0),
        ("quiet", _in_panel(Quiet, out), False),
        ("debug", _in_panel(Debug, out), False),
    ]


_TYPES = {"float": float, "int": int, "str": str, "bool": bool}


def _annotation_type(f) -> Any:
    """The Python type of a component option field (``float | None`` → Optional[float]),
    whether its module postpones annotations (strings) or not (types)."""
    if isinstance(f.type, type):
        return Optional[list[str]] if f.type is list else f.type
    text = getattr(f.type, "__name__", None) if isinstance(f.type, type) else str(f.type)
    text = text.replace(" ", "").replace("typing.", "").replace("Optional[", "").replace("]", "|None")
    if text.startswith("list"):
        return Optional[list[str]]
    base = _TYPES.get(text.split("|")[0], str)
    return Optional[base] if "None" in text else base


def _option_parameter(f, panel: str) -> tuple[str, Any, Any]:
    """(parameter, annotation, default) of one declared option field."""
    meta = f.metadata
    help = choices_help(meta["choices"], meta["help"]) if isinstance(meta["choices"], str) else meta["help"]
    default = registry.default_of(f)
    default = None if isinstance(default, list) else default
    option = typer.Option(meta["flag"], help=help, rich_help_panel=panel, show_default=meta["show_default"])
    return f.name, Annotated[_annotation_type(f), option], default


def component_parameters(component, panel: str) -> list[inspect.Parameter]:
    """One component's options as command parameters (a plug-in importer's subcommand)."""
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, annotation, default in (_option_parameter(f, panel) for f in registry.option_fields(component.Options))]


def _component_options() -> list[tuple[str, Any, Any]]:
    """(parameter, annotation, default) of every component option, in registry order."""
    out = []
    for name, (f, users) in declared_options().items():
        kinds = list(dict.fromkeys(kind for kind, _ in users))
        out.append(_option_parameter(f, " / ".join(PANELS.get(k, k) for k in kinds) + " options"))
    return out


def command_signature() -> inspect.Signature:
    """The signature of ``vgrc eval``: its own options, then every component's."""
    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
              for name, annotation, default in [*_own_options(), *_component_options()]]
    return inspect.Signature(params)
