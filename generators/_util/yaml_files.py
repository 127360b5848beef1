"""Reading the shipped and user-supplied YAML vocabularies, with one-line errors."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.user_files import read_text

__all__ = ["load_yaml"]


def load_yaml(path: str | Path | None, shipped: str, option: str) -> tuple[object, str]:
    """``(data, where)`` from ``path``, or from the packaged ``vocab/<shipped>`` when None.

    ``where`` names the source in messages. A missing or unreadable file, or invalid YAML
    (with line and column), raises :class:`InvalidInputError` naming ``option``.
    """
    import yaml

    if path is None:
        where = f"shipped {shipped}"
        text = resources.files("vgrc.generators").joinpath(f"vocab/{shipped}").read_text(encoding="utf-8")
    else:
        where = str(path)
        text = read_text(path, option)  # missing, unreadable, binary or not UTF-8: one line
    try:
        return yaml.safe_load(text), where
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidInputError(f"{where}: invalid YAML{at}: {getattr(exc, 'problem', exc)}") from exc
