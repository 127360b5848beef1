"""``vgrc report``: merge evaluation runs into one paper-style table (Tables 1–4).

Rows are runs, sorted by dataset, model, Stage 1 and Stage 2 (registry order); every row
names its run folder, model and dataset, so two runs never give indistinguishable rows.
Columns R@1/5/10 (in %) and nDCG@1/5/10, then the reranker's settings. Paths that are not
run folders (say, the table.csv of a previous report caught by ``results/*``) are
skipped and listed. A CSV with the unrounded values is written beside the Markdown.

The table says where each run's per-object sets came from and how relevance was graded
(the run's notes), below the table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vgrc.evaluators import registry
from vgrc.evaluators.encoders.model_refs import MODEL_ALIASES
from vgrc.evaluators.errors import DatasetFolderError, InvalidInputError, OutputError
from vgrc.evaluators.ownership import check_output_file
from vgrc.evaluators.paper_tables import APP_J_FIGURES, APP_J_VS_TABLE_3, PAPER_FGW_SOLVER, PAPER_SETTINGS, PAPER_STATISTICS, paper_table, statistics_table
from vgrc.evaluators.runs import write_report_files


__all__ = ["load_run", "report_table", "paper_comparison", "write_report", "REPORT_MARK"]

COLUMNS = ("t2i_R@1", "t2i_R@5", "t2i_R@10", "t2i_nDCG@1", "t2i_nDCG@5", "t2i_nDCG@10", "t2i_CAS-gen@10", "t2i_CAS-noun@10")
#: first line of every Markdown table vgrc report writes: what it may replace with --overwrite
REPORT_MARK = "<!-- written by vgrc report -->"
CSV_HEADER = ",".join(["run", "dataset", "model", "stage1", "rerank", "settings", *COLUMNS])
PAPER_CSV_HEADER = ",".join(["paper_table", "dataset", "model", "stage1", "rerank", "metric", "paper", "vgrc", "difference", "run"])


def csv_row(cells) -> str:
    """One CSV line, fields quoted where they hold a comma, a quote or a line break
    (settings carry counts such as "13,244 queries")."""
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(cells)
    return buf.getvalue()


def load_run(run: str | Path) -> dict:
    """``metrics.json`` of a run folder, with its config."""
    path = Path(run) / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetFolderError(f"{run} is not a vgrc eval run (no metrics.json)") from None
    except (OSError, ValueError) as exc:
        raise DatasetFolderError(f"{path} cannot be read: {exc}") from exc
    if not isinstance(metrics, dict) or not isinstance(metrics.get("config"), dict):
        raise DatasetFolderError(f"{path} has no config: was it written by vgrc eval?")
    return metrics


def _order(value: str, order: Sequence[str]) -> int:
    return order.index(value) if value in order else len(order)


def _settings(cfg: dict) -> str:
    parsed = f" query_objects={cfg['query_objects']}" if cfg.get("query_objects", "annotations") != "annotations" else ""
    regions = f" candidate_objects={cfg['candidate_objects']}" if _from_pixels(cfg) else ""
    ensemble = f" models={cfg['model']},{cfg['models']} weights={cfg.get('weights') or 'equal'}" if cfg.get("models") else ""
    return _component_settings(cfg) + parsed + regions + ensemble


def _from_pixels(cfg: dict) -> bool:
    """The run compared object sets, and its candidates' sets were not the annotations."""
    if cfg.get("candidate_objects", "annotations") == "annotations" or cfg.get("rerank") not in registry.names("reranker"):
        return False
    return registry.get("reranker", cfg["rerank"]).candidate_objects


def oracle_gain_kept(run: dict, oracle: dict, metric: str = "t2i_R@1") -> float | None:
    """``(method − stage 1) / (oracle − stage 1)`` of ``metric``: how much of the annotation
    oracle's gain over its own first stage a run keeps (1 = all of it, 0 = none, negative:
    worse than not reranking). None when the oracle gains nothing."""
    gain = oracle[metric] - oracle[f"stage1_{metric}"]
    return None if gain <= 0 else (run[metric] - run[f"stage1_{metric}"]) / gain


def _oracle_table(loaded: list[tuple[Path, dict]]) -> list[str]:
    """For every run whose candidates' sets came from the pixels, the share of the oracle's
    R@1 gain it keeps, against the run among ``loaded`` that differs only in taking both
    sides' sets from the annotations."""
    def key(cfg):
        return tuple(str(cfg.get(k)) for k in ("data", "split", "model", "pretrained", "stage1", "rerank", "k", "limit", "seed"))

    oracles = {key(m["config"]): m for _, m in loaded
               if m["config"].get("candidate_objects", "annotations") == "annotations" and m["config"].get("query_objects", "annotations") == "annotations"}
    lines = []
    for path, m in loaded:
        cfg = m["config"]
        if not _from_pixels(cfg):
            continue
        oracle = oracles.get(key(cfg))
        if oracle is None:
            lines.append(f"| {path.name} | {cfg['candidate_objects']} | {cfg.get('query_objects', 'annotations')} | — | — | — | no oracle run given "
                         f"(the same with --candidate-objects annotations) |")
            continue
        kept = oracle_gain_kept(m, oracle)
        lines.append(f"| {path.name} | {cfg['candidate_objects']} | {cfg.get('query_objects', 'annotations')} | {100 * m['stage1_t2i_R@1']:.1f} | "
                     f"{100 * m['t2i_R@1']:.1f} | {100 * oracle['t2i_R@1']:.1f} | {'—' if kept is None else f'{kept:+.2f}'} |")
    if not lines:
        return []
    return ["", "Oracle gain kept: (R@1 − stage-1 R@1) / (oracle R@1 − stage-1 R@1), the oracle being the same run with both sides' object sets "
            "from the annotations.", "", "| Run | Candidates' sets | Queries' sets | Stage-1 R@1 | R@1 | Oracle R@1 | Gain kept |", "|---|---|---|---|---|---|---|",
            *lines]


def _component_settings(cfg: dict) -> str:
    rerank = cfg.get("rerank")
    plugin = (cfg.get("plugins") or {}).get("reranker")
    if plugin:  # a plug-in's own options, and where it came from
        options = " ".join(f"{k}={v}" for k, v in plugin.get("options", {}).items())
        return f"{options} k={cfg.get('k')} ({plugin.get('package')} {plugin.get('version') or ''})".replace("  ", " ").strip()
    if rerank == "fgw":
        return f"fgw_alpha={cfg.get('fgw_alpha', cfg.get('alpha'))} solver={cfg.get('solver')} k={cfg.get('k')}"
    if rerank == "hungarian":
        return f"unmatched={cfg.get('unmatched_cost')} surplus={cfg.get('surplus_cost')} k={cfg.get('k')}"
    if cfg.get("task") == "steering":
        return f"steer_alpha={cfg.get('steer_alpha')}"
    return f"k={cfg.get('k')}"


def _counts(m: dict, sep: str = " · ") -> str:
    """The evaluated set's size, so runs on different sets are never compared unawares."""
    if "n_queries" not in m:
        return ""
    return f"{sep}{m['n_queries']:,.0f} queries / {m.get('n_gallery', m['n_queries']):,.0f} images"


def _load_runs(runs: Sequence[str | Path]) -> tuple[list[tuple[Path, dict]], list[tuple[str, str]]]:
    loaded, skipped = [], []
    for r in runs:
        if not Path(r).is_dir():
            skipped.append((str(r), "not a folder"))
            continue
        try:
            loaded.append((Path(r), load_run(r)))
        except DatasetFolderError as exc:
            skipped.append((str(r), str(exc)))
    if not loaded:
        raise DatasetFolderError(f"none of the {len(runs)} path(s) is a vgrc eval run folder (first: {runs[0] if runs else 'none given'})")
    return loaded, skipped


def _dataset(cfg: dict) -> str:
    return str(cfg.get("dataset") or Path(str(cfg.get("data"))).name)


def _table_key(item):
    path, m = item
    c = m["config"]
    return (str(c.get("data")), str(c.get("model")), _order(c.get("stage1", ""), registry.names("stage1")), _order(c.get("rerank", ""), registry.names("reranker")), path.name)


def report_table(runs: Sequence[str | Path]) -> tuple[str, str, list[tuple[str, str]]]:
    """(markdown, csv, skipped) for the given paths; ``skipped`` = (path, reason) for the
    paths that are not run folders."""
    loaded, skipped = _load_runs(runs)
    loaded.sort(key=_table_key)
    itm = [(p, m) for p, m in loaded if m["config"].get("task") == "itm"]  # accuracies, not rankings: a table of their own
    loaded = [(p, m) for p, m in loaded if m["config"].get("task") != "itm"]
    head = ["Run", "Dataset", "Model", "Stage 1", "Stage 2", "R@1", "R@5", "R@10", "nDCG@1", "nDCG@5", "nDCG@10", "CAS-gen@10", "CAS-noun@10", "Settings"]
    md = [REPORT_MARK, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    csv = [CSV_HEADER]
    notes: dict[str, list[str]] = {}
    for path, m in loaded:
        cfg = m["config"]
        dataset = _dataset(cfg)
        stage1 = cfg.get("stage1") if cfg.get("task", "retrieval") == "retrieval" else cfg.get("task")
        if cfg.get("task") == "i2i":  # image queries: the same columns, read from the i2i_ metrics
            m = {**m, **{k.replace("i2i_", "t2i_", 1): v for k, v in m.items() if k.startswith("i2i_")}}
            stage1 = f"{cfg.get('stage1')} (image queries)"
        cells = [path.name, dataset, str(cfg.get("model")), str(stage1), str(cfg.get("rerank"))]
        cells += [f"{100 * m[c]:.1f}" if c in m else "—" for c in COLUMNS[:3]]
        cells += [f"{m[c]:.3f}" if c in m else "—" for c in COLUMNS[3:]]  # nDCG and CAS
        cells.append(_settings(cfg) + _counts(m))
        md.append("| " + " | ".join(cells) + " |")
        csv.append(csv_row([path.name, dataset, str(cfg.get("model")), str(stage1), str(cfg.get("rerank")), _settings(cfg) + _counts(m),
                            *(repr(float(m[c])) if c in m else "" for c in COLUMNS)]))
        for note in m.get("notes", []):
            notes.setdefault(note, []).append(path.name)
    if not loaded:
        md = [REPORT_MARK]
    md += _oracle_table(loaded)
    if itm:
        md += _itm_table(itm, csv, notes)
    if notes:
        md.append("")
        md += [f"- {note} ({', '.join(names)})" for note, names in notes.items()]
    return "\n".join(md) + "\n", "\n".join(csv) + "\n", skipped


ITM_COLUMNS = ("itm_acc_add", "itm_acc_replace", "itm_acc_swap", "itm_acc_macro", "stage1_itm_acc_macro")


def _itm_table(runs: Sequence[tuple[Path, dict]], csv: list[str], notes: dict[str, list[str]]) -> list[str]:
    """``--task itm`` runs: SugarCrepe's accuracies (%) per group and macro, stage 1's macro
    beside the reranked one. Their CSV rows carry the ITM columns after the ranking ones."""
    head = ["Run", "Dataset", "Model", "Rerank", "add", "replace", "swap", "macro", "stage 1 macro", "Settings"]
    md = ["", "## Image–text matching (`--task itm`, SugarCrepe's protocol: accuracy in %)", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if csv[0] == CSV_HEADER:
        csv[0] = CSV_HEADER + "," + ",".join(ITM_COLUMNS)
    for path, m in runs:
        cfg = m["config"]
        cells = [path.name, _dataset(cfg), str(cfg.get("model")), str(cfg.get("rerank"))]
        cells += [f"{100 * m[c]:.1f}" if c in m else "—" for c in ITM_COLUMNS]
        md.append("| " + " | ".join([*cells, _settings(cfg)]) + " |")
        csv.append(csv_row([path.name, _dataset(cfg), str(cfg.get("model")), "itm", str(cfg.get("rerank")), _settings(cfg),
                            *("" for _ in COLUMNS), *(repr(float(m[c])) if c in m else "" for c in ITM_COLUMNS)]))
        for note in m.get("notes", []):
            notes.setdefault(note, []).append(path.name)
    return md


def _fmt_cell(metric: str, value: float | None, units: str = "percent1") -> str:
    """A value in the paper table's own units and precision: Table 3 prints every metric
    as a fraction with three decimals (0.091); the others print R@K in % and nDCG with one
    decimal (3.5, 0.4)."""
    if value is None:
        return "—"
    if units == "fraction3":
        return f"{value:.3f}"
    return f"{100 * value:.1f}" if metric.startswith("t2i_R@") else f"{value:.1f}"


def _fmt_diff(metric: str, diff: float, units: str) -> str:
    if units == "fraction3":
        return f"{diff:+.3f}"
    return f"{100 * diff:+.1f}" if metric.startswith("t2i_R@") else f"{diff:+.1f}"


def _same_model(run_model: str, paper_model: str) -> bool:

    arch, tag = MODEL_ALIASES[paper_model]
    return run_model in (paper_model, f"{arch}:{tag}")


def _differences(cfg: dict, m: dict, row: dict, dataset: str) -> list[str]:
    """The settings in which a run departs from what the paper states for ``row``."""

    paper = PAPER_SETTINGS.get(dataset, {})
    out = []
    if not _same_model(str(cfg.get("model")), row["model"]):
        out.append(f"model: {cfg.get('model')} (paper: {row['model'].upper() if row['model'] == 'clip' else row['model']})")
    relevance = cfg.get("relevance", "symbolic")
    if "relevance" in paper and relevance != paper["relevance"]:
        out.append(f"relevance: {relevance} (paper: {paper['relevance']})")
    elif relevance == "vlm" and "judge_mode" in paper and cfg.get("judge_mode", "logits") != paper["judge_mode"]:
        out.append(f"judge mode: {cfg.get('judge_mode', 'logits')} (paper: {paper['judge_mode']})")
    if row["rerank"] == "fgw" and cfg.get("solver", "cg") != PAPER_FGW_SOLVER:
        out.append(f"FGW solver: {cfg.get('solver', 'cg')} (paper: {PAPER_FGW_SOLVER})")
    if "n_gallery" in paper and "n_gallery" in m and int(m["n_gallery"]) != paper["n_gallery"]:
        out.append(f"gallery: {int(m['n_gallery']):,} images (paper: {paper['n_gallery']:,})")
    return out


def _run_notes(cfg: dict, m: dict) -> str:
    """What stands behind a run's numbers, beside the paper's: relevance source, object
    sets, evaluated set, k and the reranker's settings."""
    relevance = cfg.get("relevance", "symbolic")
    parts = [f"relevance: {relevance}" + (f" ({cfg.get('judge_mode', 'logits')})" if relevance == "vlm" else ""), _settings(cfg)]
    objects = next((n.split(": ", 1)[1] for n in m.get("notes", []) if n.startswith("per-object sets")), None)
    if objects:
        parts.append(f"objects: {objects}")
    if "n_queries" in m:
        parts.append(_counts(m, sep=""))
    return "; ".join(parts)


def paper_comparison(runs: Sequence[str | Path], number: int) -> tuple[str, str, list[tuple[str, str]]]:
    """(markdown, csv, skipped): the paper's Table ``number`` with vgrc's matching runs
    beside it, cell by cell: "vgrc / paper (Δ)", in the table's own units.

    A row's candidates are the retrieval runs (``--task retrieval``: the paper's tables
    report retrieval, never steering or ITM) on its dataset with its Stage 1 and Stage 2.
    Among them the run with the fewest departures from the paper's settings
    (:data:`~vgrc.evaluators.paper_tables.PAPER_SETTINGS`: model, relevance source and judge
    mode, FGW solver, gallery size) is shown, every departure named, never silently; each
    row also gives the run's notes (relevance, objects, evaluated set, settings). Runs that
    fit no row are listed as skipped with the reason."""

    table = paper_table(number)
    if number in PAPER_STATISTICS:
        loaded, skipped = _load_runs(runs)
        md, csv = statistics_table(number)
        return f"{REPORT_MARK}\n\n{md}\n", csv + "\n", skipped + [(str(p), f"Table {number} holds dataset statistics: no run is compared") for p, _ in loaded]
    units = table.get("units", "percent1")
    loaded, skipped = _load_runs(runs)
    metrics = [c for c in COLUMNS if any(c in row["values"] for row in table["rows"])]
    used = set()
    head = ["Dataset", "Model", "Stage 1", "Stage 2", *(c.removeprefix("t2i_") for c in metrics), "Run", "Differs from the paper", "Run's notes"]
    unit_text = "fractions, as the table prints them" if units == "fraction3" else "R@K in %, nDCG as printed"
    md = [REPORT_MARK, "", f"{table['title']}: vgrc / paper (difference), {unit_text}"
          + (" — the table's dataset is inferred (see vgrc.evaluators.paper_tables)" if table["inferred"] else ""), "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    csv = [PAPER_CSV_HEADER + ",differs"]
    for row in table["rows"]:
        datasets = (row["dataset"],) if "dataset" in row else table["datasets"]
        candidates = [(p, m) for p, m in loaded if _dataset(m["config"]) in datasets and m["config"].get("task", "retrieval") == "retrieval"
                      and m["config"].get("stage1") == row["stage1"] and m["config"].get("rerank") == row["rerank"]]
        scored = sorted(((len(_differences(m["config"], m, row, _dataset(m["config"]))), str(p), p, m) for p, m in candidates if p not in used),
                        key=lambda t: (t[0], t[1]))
        match = (scored[0][2], scored[0][3]) if scored else None
        differs = _differences(match[1]["config"], match[1], row, _dataset(match[1]["config"])) if match else []
        cells = [datasets[0], row["model"], row["stage1"], row["rerank"]]
        for metric in metrics:
            paper = row["values"].get(metric)
            ours = match[1].get(metric) if match else None
            if ours is None:
                cells.append(f"— / {_fmt_cell(metric, paper, units)}")
            elif paper is None:
                cells.append(f"{_fmt_cell(metric, ours, units)} / —")
            else:
                cells.append(f"{_fmt_cell(metric, ours, units)} / {_fmt_cell(metric, paper, units)} ({_fmt_diff(metric, ours - paper, units)})")
            csv.append(csv_row([str(number), datasets[0], row["model"], row["stage1"], row["rerank"], metric,
                                "" if paper is None else repr(paper), "" if ours is None else repr(float(ours)),
                                "" if paper is None or ours is None else repr(float(ours) - paper), match[0].name if match else "",
                                "; ".join(differs)]))
        cells += [match[0].name if match else "—", "; ".join(differs) or ("none" if match else "—"),
                  _run_notes(match[1]["config"], match[1]) if match else "—"]
        if match:
            used.add(match[0])
        md.append("| " + " | ".join(cells) + " |")
    for p, m in loaded:
        if p in used:
            continue
        task = m["config"].get("task", "retrieval")
        why = (f"--task {task}: the paper's Table {number} reports retrieval" if task != "retrieval"
               else f"matches no row of the paper's Table {number} (dataset, Stage 1 and Stage 2), or another run took its row")
        skipped.append((str(p), why))
    if number == 3:
        md += ["", "App. J's figures on CLEVR-HOPE given in prose (the paper's sentence beside each):", "",
               "| Figure | Paper | Sentence |", "|---|---|---|"]
        md += [f"| {what} | {value} | \u201c{sentence}\u201d |" for what, value, sentence in APP_J_FIGURES]
        md += ["", f"- {APP_J_VS_TABLE_3}"]
    return "\n".join(md) + "\n", "\n".join(csv) + "\n", skipped


def write_report(runs: Sequence[str | Path], out: str | Path, *, overwrite: bool = False, paper: int | None = None,
                 bootstrap: int = 0, seed: int = 0, categories: bool = True) -> tuple[str, list[tuple[str, str]]]:
    """Write ``out`` (Markdown) and ``out`` with suffix ``.csv``; return the Markdown and
    the skipped paths. Checks everything before writing anything: the folder must exist
    (no parents are created), and only an earlier vgrc report is replaced, with
    ``overwrite``.

    ``bootstrap`` > 0 adds paired bootstrap intervals of every metric difference between
    runs on the same queries (and writes them to ``out`` with suffix ``.bootstrap.csv``);
    ``categories`` adds the per-category breakdown where runs record categories
    (:mod:`vgrc.evaluators.report_stats`).
    """

    out = Path(out)
    if out.suffix.lower() == ".csv":
        raise OutputError(f"--out {out}: give the Markdown file (e.g. table.md); the .csv is written beside it")
    if bootstrap < 0 or (0 < bootstrap < 100):
        raise InvalidInputError(f"--bootstrap {bootstrap}: give 0 (off) or at least 100 resamples (1000 or more for a 95% interval)")
    if bootstrap and paper is not None:
        raise InvalidInputError("--bootstrap compares runs with each other; it cannot be combined with --paper")
    csv_path = out.with_suffix(".csv")
    boot_path = out.with_suffix(".bootstrap.csv")
    check_output_file(out, overwrite, lambda line: line == REPORT_MARK, "vgrc report")
    check_output_file(csv_path, overwrite, lambda line: line in (CSV_HEADER, PAPER_CSV_HEADER), "vgrc report")
    if bootstrap:
        from vgrc.evaluators.report_stats import BOOTSTRAP_CSV_HEADER

        check_output_file(boot_path, overwrite, lambda line: line == BOOTSTRAP_CSV_HEADER, "vgrc report")
    own = {out.resolve(), csv_path.resolve(), boot_path.resolve()}
    mine = [r for r in runs if Path(r).resolve() not in own]
    md, csv, skipped = paper_comparison(mine, paper) if paper is not None else report_table(mine)
    skipped += [(str(r), "the report's own output") for r in runs if Path(r).resolve() in own]
    boot_csv = None
    if paper is None and (bootstrap or categories):
        from vgrc.evaluators.report_stats import bootstrap_table, category_table

        loaded, _ = _load_runs(mine)
        loaded.sort(key=_table_key)
        extra = category_table(loaded) if categories else []
        if bootstrap:
            lines, boot_csv, notes = bootstrap_table(loaded, bootstrap, seed)
            extra = lines + ([""] if extra else []) + extra
            skipped += notes
        if extra:
            md = md + "\n" + "\n".join(extra) + "\n"
    write_report_files(Path(out), md, csv, None if boot_csv is None else (boot_path, "\n".join(boot_csv) + "\n"))
    return md, skipped
