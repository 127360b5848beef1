"""Dataset-card templates (Markdown with Hugging Face YAML front matter).

Each ``<dataset>.md`` here is a :class:`string.Template` (``$name`` placeholders, so the
YAML and Markdown need no escaping), filled by the builder at build time and written as
the dataset folder's ``README.md``.
"""

from __future__ import annotations

from importlib import resources
from string import Template

__all__ = ["list_cards", "render_card"]


def list_cards() -> list[str]:
    """Names of the shipped card templates."""
    return sorted(p.name[:-3] for p in resources.files(__name__).iterdir() if p.name.endswith(".md"))


def render_card(name: str, **values) -> str:
    """Fill the template ``<name>.md``; every placeholder must be given (KeyError otherwise)."""
    text = resources.files(__name__).joinpath(f"{name}.md").read_text(encoding="utf-8")
    return Template(text).substitute(**{k: str(v) for k, v in values.items()})
