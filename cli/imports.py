"""``vgrc import``: one subcommand per public format, each converting a release into the
dataset folder contract (the importers live in ``vgrc.generators.importers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vgrc.cli.console import command_line, progress_bar, stdout, user_errors
from vgrc.cli.options import Debug, OutDir, Overwrite, Quiet, Seed

import_app = typer.Typer(
    name="import",
    help="Import a public dataset release (SugarCrepe, CLEVR-HOPE, Urban1K) or your own captioned images into a vgrc dataset folder.",
    no_args_is_help=True,
)

ObjectParser = Annotated[str, typer.Option("--object-parser", help="How objects are parsed from captions without annotations: rules (deterministic, no model), spacy (needs spaCy's en_core_web_sm) or llm (a transformers instruct model, --parser-model).")]
ParserModel = Annotated[Optional[str], typer.Option("--parser-model", help="Instruct model of --object-parser llm: hub id or local folder [default: Qwen/Qwen2.5-1.5B-Instruct].", show_default=False)]


def _summary(result, what: str) -> None:
    verb = {"complete": "already complete", "new": "imported"}.get(result.state, result.state)
    missing = f"; {result.missing_images:,} skipped (image missing)" if result.missing_images else ""
    stdout.print(f"{result.out}: {verb}, {what}{missing}")


@import_app.command("sugarcrepe")
def sugarcrepe_command(
    src: Annotated[Path, typer.Option("--src", help="SugarCrepe release folder (holding data/*.json, or the *.json files).", show_default=False)],
    coco_images: Annotated[Path, typer.Option("--coco-images", help="COCO val2017 image folder.", show_default=False)],
    out: OutDir,
    coco_annotations: Annotated[Optional[Path], typer.Option("--coco-annotations", help="COCO instances_val2017.json: the images' objects from annotations [default: parsed from the positive caption].", show_default=False)] = None,
    object_parser: ObjectParser = "rules",
    parser_model: ParserModel = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """SugarCrepe's seven categories as one split with a category column (Table 4).

    Example:

        vgrc import sugarcrepe --src ~/sugar-crepe --coco-images ~/coco/val2017 --out data/sugarcrepe
    """
    from vgrc.generators.importers import get_importer

    with user_errors(debug):
        result = get_importer("sugarcrepe")(src, coco_images, out, coco_annotations=coco_annotations, object_parser=object_parser, parser_model=parser_model,
                                            overwrite=overwrite, command=command_line())
    if not quiet:
        per = ", ".join(f"{c} {n:,}" for c, n in result.counts["per_category"].items())
        _summary(result, f"{result.counts['records']:,} records ({per})")


@import_app.command("clevr-hope")
def clevr_hope_command(
    scenes: Annotated[Path, typer.Option("--scenes", help="CLEVR(-HOPE) scenes JSON.", show_default=False)],
    images: Annotated[Path, typer.Option("--images", help="Folder of the scenes' images.", show_default=False)],
    out: OutDir,
    subset: Annotated[int, typer.Option("--subset", help="Images drawn (seeded) among the eligible scenes.")] = 1000,
    min_objects: Annotated[int, typer.Option("--min-objects", help="Fewest objects an eligible scene has.")] = 2,
    template: Annotated[str, typer.Option("--template", help="Query template with {objects}.")] = "a photo of {objects}",
    seed: Seed = 0,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """A seeded subset of CLEVR(-HOPE) scenes with annotation-built queries (Table 3).

    Example:

        vgrc import clevr-hope --scenes CLEVR_val_scenes.json --images CLEVR_v1.0/images/val --out data/clevr-hope
    """
    from vgrc.generators.importers import get_importer

    with user_errors(debug):
        with progress_bar("reading scenes", quiet) as on_progress:
            result = get_importer("clevr-hope")(scenes, images, out, subset=subset, min_objects=min_objects, seed=seed, template=template,
                                                overwrite=overwrite, command=command_line(), on_progress=on_progress)
    if not quiet:
        c = result.counts
        _summary(result, f"{c['rows']:,} scenes drawn from {c['eligible']:,} eligible of {c['scenes_in_file']:,}")


@import_app.command("urban1k")
def urban1k_command(
    src: Annotated[Path, typer.Option("--src", help="Urban1K folder holding image/ and caption/.", show_default=False)],
    out: OutDir,
    first_line: Annotated[bool, typer.Option("--first-line", help="Read only each caption file's first line, as Long-CLIP's loader does [default: the whole file].")] = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Urban1K long-caption pairs, with caption parts as per-object sets.

    Example:

        vgrc import urban1k --src ~/Urban1k --out data/urban1k
    """
    from vgrc.generators.importers import get_importer

    with user_errors(debug):
        result = get_importer("urban1k")(src, out, first_line=first_line, overwrite=overwrite, command=command_line())
    if not quiet:
        _summary(result, f"{result.counts['pairs']:,} pairs")


@import_app.command("captions")
def captions_command(
    images: Annotated[Path, typer.Option("--images", help="Your image folder.", show_default=False)],
    captions: Annotated[Path, typer.Option("--captions", help=".jsonl or .csv with file_name, caption (and optional objects, id).", show_default=False)],
    out: OutDir,
    object_parser: ObjectParser = "rules",
    parser_model: ParserModel = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Your own captioned images, so vgrc evaluates any collection.

    Example:

        vgrc import captions --images photos/ --captions captions.csv --out data/mine
    """
    from vgrc.generators.importers import get_importer

    with user_errors(debug):
        result = get_importer("captions")(images, captions, out, object_parser=object_parser, parser_model=parser_model, overwrite=overwrite, command=command_line())
    if not quiet:
        _summary(result, f"{result.counts['rows']:,} images")


def _plugin_importer_command(name: str, component):
    """``vgrc import NAME`` for an importer another package registers (entry-point group
    ``vgrc.importers``): a component whose ``Options`` are the command's options and whose
    ``run(out, options, *, overwrite, command)`` builds the dataset folder (returning an
    object with ``out`` and ``state``, as vgrc's importers do)."""

    def command(**values) -> None:
        out, overwrite, quiet, debug = values.pop("out"), values.pop("overwrite"), values.pop("quiet"), values.pop("debug")
        with user_errors(debug):
            lists = _list_fields(component)
            options = component.Options(**{k: list(v or []) if k in lists else v for k, v in values.items()})
            registry.check_options(options)
            component.check(options, None)
            result = component.run(out, options, overwrite=overwrite, command=command_line())
        if not quiet:
            stdout.print(f"{getattr(result, 'out', out)}: {getattr(result, 'state', 'imported')} ({name}, a plug-in)")

    import inspect

    from vgrc.cli.component_options import component_parameters
    from vgrc.evaluators import registry

    own = [inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=OutDir),
           inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Overwrite),
           inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Quiet),
           inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Debug)]
    command.__signature__ = inspect.Signature([*own, *component_parameters(component, "Options")])
    command.__doc__ = component.help
    return command


def _list_fields(component) -> set[str]:
    from dataclasses import fields

    return {f.name for f in fields(component.Options) if str(f.type).startswith("list")}


def register_plugin_importers() -> None:
    """A subcommand for every importer installed from another package."""
    from vgrc.evaluators import registry

    for name in registry.names("importer"):
        if name not in registry.BUILTIN["importer"]:
            import_app.command(name)(_plugin_importer_command(name, registry.get("importer", name)))


register_plugin_importers()
