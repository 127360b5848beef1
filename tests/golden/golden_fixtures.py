"""The golden matrix's fixtures, built as the test session builds them (conftest.py)."""

from __future__ import annotations

from pathlib import Path


def build_shapes_fixture(out: Path) -> Path:
    from helpers import SMALL_SHAPES

    from vgrc.generators.shapes.build import ShapesConfig, build_shapes

    build_shapes(out, ShapesConfig(**SMALL_SHAPES), workers=2, command="vgrc gen-shapes (fixture)")
    return out


def build_sugar_fixture(root: Path) -> Path:
    """SugarCrepe imported with its COCO objects (so ITM can be reranked)."""
    from helpers import coco_instances, write_sugarcrepe

    from vgrc.generators.importers.sugarcrepe import import_sugarcrepe

    root.mkdir(parents=True, exist_ok=True)
    src, coco = write_sugarcrepe(root)
    import_sugarcrepe(src, coco, root / "sugar", coco_annotations=coco_instances(root))
    return root / "sugar"


def build_vg_fixture(root: Path) -> Path:
    """The demo's Visual Genome folder built into a dataset (one image missing: --skip-bad)."""
    from vgrc.generators.demo import write_vg
    from vgrc.generators.vg.build import VGConfig, build_vg

    vg = write_vg(root / "vg", images=True)
    build_vg(root / "data", VGConfig(str(vg), min_images=9))
    return root / "data"


def build_fixtures(root: Path) -> tuple[Path, Path, Path, Path]:
    from vgrc.generators.demo import build_tiny_qwen

    return (build_shapes_fixture(root / "shapes" / "data"), build_sugar_fixture(root / "sugar"), build_vg_fixture(root / "vg"),
            build_tiny_qwen(root / "tiny-qwen"))
