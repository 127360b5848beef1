"""Packaging and architecture: the wheel, the console script, the import direction."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"cli": 2, "generators": 1, "evaluators": 0}  # imports may only point to lower layers


def _vgrc_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_imports_run_one_way(layer):
    for path in (ROOT / layer).rglob("*.py"):
        for name in _vgrc_imports(path):
            parts = name.split(".")
            if parts[0] == "vgrc" and len(parts) > 1 and parts[1] in LAYERS:
                assert LAYERS[parts[1]] <= LAYERS[layer], f"{path.relative_to(ROOT)} imports {name}"
            if layer != "cli":
                assert parts[0] not in {"typer", "rich"}, f"library module {path.relative_to(ROOT)} imports {name}"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["vgrc", *parts])


def test_no_import_circles_inside_the_package():
    """Lazy (in-function) imports count too: a circle is a circle (DESIGN §7)."""
    modules = {_module_name(p): p for layer in LAYERS for p in (ROOT / layer).rglob("*.py")}

    def targets(path: Path) -> set[str]:
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                # `from pkg import sub` depends on the submodule when `sub` is one
                subs = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
                out |= subs or {node.module}
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
        return out

    graph = {m: {n for n in targets(p) if n in modules and n != m} for m, p in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_help_imports_nothing_heavy():
    code = (
        "import sys; from vgrc.cli.main import app; "
        "heavy = [m for m in ('torch', 'open_clip', 'diffusers', 'transformers', 'cairosvg', 'numpy', 'datasets', 'PIL') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_wheel_builds_and_imports(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("vgrc-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    assert {"vgrc/cli/main.py", "vgrc/generators/shapes/build.py", "vgrc/evaluators/dataset.py", "vgrc/data_cards/shapes.md"} <= names
    # every source module and shipped data file, in every sub-package (pyproject's package list is complete)
    shipped = {f"vgrc/{p.relative_to(ROOT)}" for folder in ("cli", "generators", "evaluators", "data_cards") for p in (ROOT / folder).rglob("*")
               if p.is_file() and p.suffix in (".py", ".json", ".yaml", ".md") and "__pycache__" not in p.parts}
    assert shipped <= names, sorted(shipped - names)
    assert not any(n.startswith("vgrc/__init__") for n in names)  # vgrc is a namespace package
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "vgrc = vgrc.cli.main:main" in (tmp_path / "site" / entry).read_text()
    code = (
        "import vgrc.cli.main, vgrc.generators.shapes.build, vgrc.data_cards as c; "
        "print(vgrc.cli.main.__file__); print(c.list_cards())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    )
    file_line, cards = out.stdout.splitlines()
    assert file_line.startswith(str(tmp_path / "site"))
    assert "shapes" in cards


def test_functions_and_modules_stay_small():
    """Issue 23: no function over 80 lines and no module over 450 lines, outside the numba
    kernels (evaluators/solvers/_kernels.py: one compiled loop per solver, kept whole)."""
    import ast

    exempt = {"evaluators/solvers/_kernels.py"}
    too_long = []
    for folder in ("cli", "generators", "evaluators", "data_cards"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel in exempt:
                continue
            text = path.read_text(encoding="utf-8")
            if len(text.splitlines()) > 450:
                too_long.append(f"{rel}: {len(text.splitlines())} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                    too_long.append(f"{rel}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not too_long, "\n".join(too_long)
