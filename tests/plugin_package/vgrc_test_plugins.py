"""Plug-ins of every other entry-point group, for tests/test_plugins.py: a first stage, a
task, an importer and a NAC judge, each a vgrc component in a package of its own."""

from dataclasses import dataclass
from pathlib import Path

from vgrc.evaluators.first_stage.components import Stage1
from vgrc.evaluators.judges.components import Verifier
from vgrc.evaluators.registry import Component, option
from vgrc.evaluators.tasks.components import Retrieval


class ImageOracle(Stage1):
    """Each query is its own image's embedding: R@1 is 1 whenever the images differ."""

    name = "image-oracle"
    help = "each query is its own image's embedding (a test plug-in)"

    def queries(self, run, options):
        run.queries = run.ev_img


class RetrievalAgain(Retrieval):
    name = "retrieval-again"
    help = "the retrieval task under another name (a test plug-in)"


@dataclass
class StemsOptions:
    src: str = option("", "--src", "Folder of images whose file names are their captions.")
    separator: str = option("_", "--separator", "Character that stands for a space in the file names.")


class Stems(Component):
    """Images named by their captions (red_circle.png → "red circle"), through vgrc's own
    captions importer."""

    kind = "importer"
    name = "stems"
    help = "images whose file names are their captions (a test plug-in)"
    Options = StemsOptions

    def check(self, options, manifest):
        from vgrc.evaluators.errors import InvalidInputError

        if not Path(options.src).is_dir():
            raise InvalidInputError(f"--src {options.src!r} is not a folder")

    def run(self, out, options, *, overwrite, command):
        import json
        import tempfile

        from vgrc.generators.importers.captions import import_captions

        images = sorted(p for p in Path(options.src).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        with tempfile.TemporaryDirectory() as tmp:
            captions = Path(tmp) / "captions.jsonl"
            captions.write_text("".join(json.dumps({"file_name": p.name, "caption": p.stem.replace(options.separator, " ")}) + "\n" for p in images))
            return import_captions(options.src, captions, out, overwrite=overwrite, command=command)


class AlwaysYes(Verifier):
    name = "always-yes"
    help = "answers yes to every question (a test plug-in)"

    def make(self, model, device):
        class Judge:
            model_id = "always-yes"

            def score(self, images, nouns, attributes):
                return [1.0] * len(images)

        return Judge()
