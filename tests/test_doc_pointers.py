"""Docstrings and documents name modules and functions that exist (issue 23: after the
move to the DESIGN §7 layout, stale names such as ``vgrc.generators.nac_judge`` were left
in docstrings). Every dotted ``vgrc.…`` reference in the package, README, docs/ and
BENCHMARKS.md must import, and every Sphinx-style relative reference (``:mod:`.merge```)
must resolve from its module's package; every ``evaluators/…py`` / ``generators/…py`` path
in the documents must exist."""

import importlib
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for folder in ("cli", "generators", "evaluators") for p in (ROOT / folder).rglob("*.py")]
DOCUMENTS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").glob("*.md")]


def _resolves(dotted: str) -> bool:
    """``a.b.c.attr``: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 1, -1):
        name = ".".join(parts[:i])
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except (ImportError, ValueError):
            continue
        obj = importlib.import_module(name)
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_dotted_vgrc_reference_resolves():
    bad = []
    for path in [*SOURCES, *DOCUMENTS]:
        for ref in sorted(set(re.findall(r"\bvgrc\.(?:evaluators|generators|cli)(?:\.\w+)+", path.read_text(encoding="utf-8")))):
            if ref.endswith("__file__"):
                continue
            if not _resolves(ref):
                bad.append(f"{path.relative_to(ROOT)}: {ref}")
    assert not bad, "\n".join(bad)


def test_every_relative_sphinx_reference_resolves():
    bad = []
    for path in SOURCES:
        package = "vgrc." + ".".join(path.relative_to(ROOT).parts[:-1])
        for ref in re.findall(r":(?:mod|func|class|data):`~?(\.[\w.]+)`", path.read_text(encoding="utf-8")):
            if not _resolves(f"{package}.{ref.lstrip('.')}"):
                bad.append(f"{path.relative_to(ROOT)}: {ref}")
    assert not bad, "\n".join(bad)


def test_every_source_path_in_the_documents_exists():
    bad = []
    for path in DOCUMENTS:
        for ref in sorted(set(re.findall(r"(?<![\w/])(?:evaluators|generators|cli)/[\w/]+\.py\b", path.read_text(encoding="utf-8")))):
            if not (ROOT / ref).is_file():
                bad.append(f"{path.relative_to(ROOT)}: {ref}")
    assert not bad, "\n".join(bad)
