"""The golden matrix: every task × stage 1 × reranker × relevance source × solver, plus
``report`` and each ``diagnose`` analysis, run through the CLI on the tests' tiny fixtures.

:func:`collect` runs them and returns their outputs in a canonical, comparable form:
``metrics.json`` and ``per_query.parquet`` of every eval run; every table (``.csv`` /
``.md``) and the ``run.json`` summary of every analysis; the report's table. Paths are
replaced by ``<tmp>``; timings, versions and plots are left out. The structure of the code
may change; these outputs may not (issue 23: "same numbers, byte for byte").

``python tests/golden/record.py`` writes ``expected.json.gz``; ``--check`` compares exactly.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

EXPECTED = Path(__file__).with_name("expected.json.gz")

_EVAL = ["--model", "tiny-random", "--k", "20", "-q"]
#: name -> eval arguments (after `vgrc eval --data DATA --cache-dir C --out OUT`); {sugar} / {vg} / {qwen} name fixtures
EVAL_RUNS: dict[str, list[str]] = {
    "cosine-none": [],
    "cosine-hungarian": ["--rerank", "hungarian"],
    "cosine-hungarian-costs": ["--rerank", "hungarian", "--unmatched-cost", "0.5", "--surplus-cost", "0"],
    "cosine-fgw-cg": ["--rerank", "fgw"],
    "cosine-fgw-cg-a0.2": ["--rerank", "fgw", "--fgw-alpha", "0.2"],
    "cosine-fgw-global": ["--rerank", "fgw", "--solver", "global"],
    "cosine-fgw-pot": ["--rerank", "fgw", "--solver", "pot"],
    "cosine-fgw-sinkhorn": ["--rerank", "fgw", "--solver", "sinkhorn", "--epsilon", "0.05"],
    "cosine-min": ["--rerank", "min"],
    "cosine-softmin": ["--rerank", "softmin", "--tau", "0.1"],
    "cosine-steer-min": ["--rerank", "steer-min"],
    "cosine-steer-softmin": ["--rerank", "steer-softmin", "--steer-alpha", "0.7"],
    "ridge-none": ["--stage1", "ridge"],
    "ridge-hungarian": ["--stage1", "ridge", "--rerank", "hungarian", "--ridge-lambda", "0.5"],
    "ridge-steer-fgw": ["--stage1", "ridge+steer", "--rerank", "fgw"],
    "ridge-steer-pair-none": ["--stage1", "ridge+steer", "--steer", "pentagon:hexagon", "--fit-fraction", "0.3"],
    "objects-avg-none": ["--stage1", "objects-avg"],
    "objects-steer-avg-min": ["--stage1", "objects-steer-avg", "--rerank", "min"],
    "cosine-none-template": ["--template", "a {} shape."],
    "cosine-fgw-flat": ["--index", "flat", "--rerank", "fgw"],
    "cosine-none-limit": ["--limit", "30", "--seed", "3"],
    "steering": ["--data", "{vg}", "--skip-bad", "--task", "steering", "--steer-alpha", "0.8"],
    "vg-cosine-hungarian": ["--data", "{vg}", "--skip-bad", "--rerank", "hungarian", "--k", "5"],
    "vg-ridge-fgw": ["--data", "{vg}", "--skip-bad", "--stage1", "ridge", "--rerank", "fgw", "--k", "5"],
    "retrieval-vlm": ["--relevance", "vlm", "--judge-model", "{qwen}", "--judge-batch-size", "4", "--limit", "12", "--k", "10"],
    "steering-vlm": ["--data", "{vg}", "--skip-bad", "--task", "steering", "--relevance", "vlm", "--judge-model", "{qwen}", "--judge-batch-size", "4"],
    "itm-none": ["--data", "{sugar}", "--task", "itm"],
    "itm-hungarian": ["--data", "{sugar}", "--task", "itm", "--rerank", "hungarian"],
    "itm-fgw": ["--data", "{sugar}", "--task", "itm", "--rerank", "fgw"],
}
_DIAG = ["--model", "tiny-random", "-q"]
DIAGNOSES: dict[str, list[str]] = {
    "substitution": ["substitution", "--top-k", "3"],
    "geometry": ["geometry"],
    "composition": ["composition"],
    "k-sweep": ["k-sweep", "--k", "20", "--k-values", "5,10,20,40"],
    "alpha-sweep": ["alpha-sweep", "--steer-alpha", "0,0.5,1", "--steer", "pentagon:hexagon"],
    "fgw-alpha": ["fgw-alpha", "--k", "10", "--fgw-alpha", "1,0,0.5"],
    "alpha-sweep-vg": ["alpha-sweep", "--data", "{vg}", "--skip-bad"],
}


def _canonical(value, tmp: dict):
    """JSON-ready, paths replaced (``tmp``: path -> placeholder), numpy values made plain."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _canonical(v, tmp) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_canonical(v, tmp) for v in value]
    if isinstance(value, np.generic):
        return _canonical(value.item(), tmp)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return _clean(value, tmp)
    return value


def _clean(text: str, tmp: dict) -> str:
    for path in sorted(tmp, key=len, reverse=True):
        text = text.replace(path, tmp[path])
    return text


def _frame(path: Path, tmp: dict) -> dict:
    import pandas as pd

    frame = pd.read_parquet(path)
    return {"columns": list(frame.columns), "dtypes": [str(t) for t in frame.dtypes],
            "rows": _canonical(frame.to_dict(orient="list"), tmp)}


def _invoke(args: list[str]) -> None:
    from typer.testing import CliRunner

    from vgrc.cli.main import app

    result = CliRunner().invoke(app, args)
    if result.exit_code != 0:
        raise RuntimeError(f"vgrc {' '.join(args)} failed ({result.exit_code}): {result.output}")


def collect(work: Path, shapes: Path, sugar: Path, vg: Path, qwen: Path) -> dict:
    """Run the matrix in ``work`` and return its canonical outputs."""
    tmp = {str(work): "<tmp>", str(shapes): "<shapes>", str(sugar): "<sugar>", str(vg): "<vg>", str(qwen): "<qwen>"}
    cache = work / "cache"
    subs = {"{sugar}": str(sugar), "{vg}": str(vg), "{qwen}": str(qwen)}
    got: dict = {"eval": {}, "diagnose": {}}
    for name, extra in EVAL_RUNS.items():
        out = work / "runs" / name
        args = [subs.get(a, a) for a in extra]
        data = [] if "--data" in args else ["--data", str(shapes)]
        _invoke(["eval", *data, "--cache-dir", str(cache), "--out", str(out), *_EVAL, *args])
        metrics = json.loads((out / "metrics.json").read_text())
        got["eval"][name] = {"metrics": _canonical(metrics, tmp), "per_query": _frame(out / "per_query.parquet", tmp)}
    retrieval = [str(work / "runs" / n) for n in EVAL_RUNS if not n.startswith(("itm", "steering", "vg"))]
    _invoke(["report", *retrieval, "--out", str(work / "table.md")])
    got["report"] = _clean((work / "table.md").read_text(), tmp)
    for name, args in DIAGNOSES.items():
        out = work / "diagnose" / name
        args = [subs.get(a, a) for a in args]
        data = [] if "--data" in args else ["--data", str(shapes)]
        _invoke(["diagnose", *args, *data, "--cache-dir", str(cache), "--out", str(out), *_DIAG])
        files = {p.name: _clean(p.read_text(), tmp) for p in sorted(out.iterdir()) if p.suffix in (".csv", ".md")}
        summary = json.loads((out / "run.json").read_text())["summary"]
        got["diagnose"][name] = {"files": files, "summary": _canonical(summary, tmp)}
    return got


def load_expected() -> dict:
    with gzip.open(EXPECTED, "rt", encoding="utf-8") as f:
        return json.load(f)


def save_expected(got: dict) -> None:
    with gzip.GzipFile(EXPECTED, "wb", mtime=0) as f:
        f.write(json.dumps(got, indent=1, sort_keys=True).encode())


def differences(expected, got, where: str = "", rel: float = 0.0) -> list[str]:
    """Every place the two differ (floats within ``rel`` relative tolerance count as equal)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        out = [f"{where}/{k}: missing" for k in expected if k not in got] + [f"{where}/{k}: new" for k in got if k not in expected]
        for k in expected:
            if k in got:
                out += differences(expected[k], got[k], f"{where}/{k}", rel)
        return out
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        out = []
        for i, (a, b) in enumerate(zip(expected, got)):
            out += differences(a, b, f"{where}[{i}]", rel)
        return out
    if isinstance(expected, float) and isinstance(got, float) and rel > 0:
        return [] if math.isclose(expected, got, rel_tol=rel, abs_tol=rel) else [f"{where}: {expected!r} != {got!r}"]
    return [] if expected == got and type(expected) is type(got) else [f"{where}: {str(expected)[:200]!r} != {str(got)[:200]!r}"]
