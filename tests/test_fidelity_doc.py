"""docs/FIDELITY.md stays true to the code (issue 22): every code pointer in its tables
names a file that exists and, after " · ", names defined in that file; every row states
its status in the document's vocabulary."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "FIDELITY.md"
STATUSES = ("exact", "reading", "choice", "deviation", "beyond the paper")


def _rows() -> list[list[str]]:
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| ") and not line.startswith("|---") and not line.startswith("| #") and not line.startswith("| Dataset"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if len(cells) >= 5 and re.match(r"^\d+[a-z]?$", cells[0]):
                rows.append(cells)
    return rows


def _defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names |= {f"{node.name}.{n.name}" for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(target, ast.Name):
                    names.add(target.id)
    return names


def test_the_document_has_its_rows():
    assert len(_rows()) >= 50


def test_every_code_pointer_exists():
    missing = []
    for cells in _rows():
        pointer = cells[3]
        for part in re.split(r";\s*", pointer):
            files = re.findall(r"`((?:evaluators|generators|cli|tests|benchmarks)/[\w/.-]+\.py)`", part)
            for f in files:
                path = ROOT / f
                if not path.is_file():
                    missing.append(f"row {cells[0]}: {f} does not exist")
                    continue
                after = part.split(f"`{f}`", 1)[1]
                if after.lstrip().startswith("·"):
                    # the names right after " · ", up to a parenthesis (which holds options or fields, not definitions)
                    listed = after.split("`evaluators/")[0].split("`generators/")[0].split("(")[0]
                    names = re.findall(r"`([A-Za-z_][\w.]*)`", listed)
                    defined = _defined(path)
                    missing += [f"row {cells[0]}: {f} defines no {n}" for n in names if n not in defined]
    assert not missing, "\n".join(missing)


def test_every_row_states_its_status():
    bad = [cells[0] for cells in _rows() if not any(f"**{s}" in cells[4] for s in STATUSES)]
    assert not bad, f"rows without a status ({', '.join(STATUSES)}): {bad}"
