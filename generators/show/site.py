"""``vgrc show RUN [RUN2 …] --out DIR``: a self-contained static site to look at runs.

The site is ``index.html`` (Jinja2 templates: the header — each run's settings, notes and
metrics, and for several runs the ``vgrc report`` table — rendered here; the query rows
rendered by the page's script from ``data/queries.js``), ``thumbs/`` (one JPEG per
gallery image shown) and, for runs with ``eval --save-plans``, ``data/plans-R-C.js``
(the saved transport plans, loaded when a detail view opens). It needs no server: data
arrive as ``<script>`` files, which browsers load from disk (``fetch`` does not work on
``file://``).

One row per query: the caption, its objects and categories (image queries, ``--task i2i``:
the query image), the target (its first relevant image), the top ``top`` of stage 1 and of
each run's final ranking, relevant images framed and graded (App. H's symbolic grade, where
the runs grade from annotations), and the rank of the target before and after reranking. Filters:
improved / degraded / unchanged by the chosen run's reranker, category, text; sort by
rank change; pages of ``page_size`` rows.

The plans are those ``eval --save-plans`` solved with the run's own solver and options
(the same floats as its scores), never re-derived here.

Output folder rules: ``site.json`` (format ``vgrc-show/1``) lists every file vgrc wrote; a
folder holding anything else is refused, a finished site is replaced only with
``--overwrite`` (and only the files it lists are removed), an interrupted build resumes
and keeps its thumbnails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from vgrc.evaluators.atomic import temporary_target
from vgrc.evaluators.errors import DatasetFolderError, InvalidInputError, OutputError
from vgrc.generators.show.runs import ShownRun, check_site_inputs, gallery_rows, load_shown_runs

__all__ = ["ShowConfig", "SiteResult", "check_show", "build_site", "SITE_FORMAT"]

SITE_FORMAT = "vgrc-show/1"
PLAN_CHUNK = 500  # queries per plans file
METRICS = ("R@1", "R@5", "R@10", "nDCG@10", "CAS-gen@10")
MAX_RELEVANT = 20  # relevant images kept per query (framing; the target is the first)


@dataclass
class ShowConfig:
    runs: list
    out: str
    top: int = 5
    page_size: int = 50
    thumb_size: int = 96
    workers: int | None = None
    overwrite: bool = False

    def check(self) -> None:
        """Every option, before anything is read in bulk or written."""
        if not 1 <= self.top <= 10:
            raise InvalidInputError(f"--top must be 1–10 (per_query.parquet keeps each list's top 10), got {self.top}")
        if not 1 <= self.page_size <= 1000:
            raise InvalidInputError(f"--page-size must be 1–1000 rows, got {self.page_size}")
        if not 16 <= self.thumb_size <= 512:
            raise InvalidInputError(f"--thumb-size must be 16–512 pixels, got {self.thumb_size}")
        if self.workers is not None and self.workers < 1:
            raise InvalidInputError(f"--workers must be ≥ 1, got {self.workers}")


@dataclass
class SiteResult:
    out: Path
    state: str
    n_queries: int
    n_images: int
    thumbs_made: int
    unreadable: list


def _site_record(out: Path) -> dict | None:
    try:
        record = json.loads((out / "site.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == SITE_FORMAT else None


def _check_out(out: Path, overwrite: bool) -> str:
    """``new``, ``resume`` (an interrupted build) or ``replace``; one line otherwise. Writes nothing."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; choose a folder")
    if not out.exists() or not any(out.iterdir()):
        return "new"
    record = _site_record(out)
    if record is None and all(p.is_file() and temporary_target(p.name) == "site.json" for p in out.iterdir()):
        return "new"  # a build killed while it wrote its first site.json: only that file's temporary is there
    if record is None:
        first = sorted(p.name for p in out.iterdir())[0]
        raise OutputError(f"--out {out} is not empty and is not a vgrc show site (it holds {first!r}); choose an empty or new folder")
    listed = set(record.get("files", []))
    foreign = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and str(p.relative_to(out)) not in listed | {"site.json"}
                     and ".vgrc-tmp-" not in p.name)
    if foreign:
        raise OutputError(f"--out {out} holds a vgrc show site and {foreign[0]!r}, which vgrc did not write; choose another folder")
    if record.get("complete") is False:
        return "resume"
    if not overwrite:
        raise OutputError(f"--out {out} holds a vgrc show site; pass --overwrite to replace it, or choose another folder")
    return "replace"


def check_show(config: ShowConfig) -> tuple[list, str]:
    """Pre-flight: options, run folders, the output folder. Writes nothing."""
    config.check()
    checked = check_site_inputs([Path(r) for r in config.runs], Path(config.out))
    state = _check_out(Path(config.out), config.overwrite)
    return checked, state


def _write_text(path: Path, text: str) -> None:
    from vgrc.evaluators.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def _mark(out: Path, complete: bool, files: list[str], runs: list[str]) -> None:
    _write_text(out / "site.json", json.dumps({"format": SITE_FORMAT, "complete": complete, "runs": runs, "files": sorted(set(files))}, indent=1) + "\n")


def _metric_rows(run: ShownRun) -> list[tuple[str, str, str]]:
    """(metric, final, stage 1) of the run's headline metrics: t2i_… for text queries, i2i_… for image queries."""
    m, k = run.metrics, run.metrics.get("config", {}).get("k")
    prefix = "i2i_" if run.record.get("kind") == "eval-i2i" else "t2i_"
    names = [prefix + n for n in METRICS] + [f"{prefix}shortlist_recall@{k}"]
    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
    return [(n.removeprefix(prefix), fmt(m.get(n)), fmt(m.get(f"stage1_{n}")) if "shortlist" not in n else "") for n in names if n in m]


def _settings(run: ShownRun) -> list[tuple[str, str]]:
    cfg = run.config
    rows = [("dataset", f"{run.metrics.get('config', {}).get('dataset') or '?'} ({cfg.get('data', {}).get('data')})"),
            ("model", f"{cfg.get('encode', {}).get('model')} ({cfg.get('encode', {}).get('pretrained') or 'default weights'})")]
    for key, value in cfg.get("choices", {}).items():
        if value is not None:
            rows.append((key, str(value)))
    for kind in ("stage1", "reranker"):
        entry = cfg.get(kind)
        if isinstance(entry, dict) and entry.get("options"):
            rows.append((f"{kind} options", ", ".join(f"{k}={v}" for k, v in entry["options"].items())))
    return rows


def _report(runs: list[ShownRun]) -> dict | None:
    if len(runs) < 2:
        return None
    import csv
    import io

    from vgrc.evaluators.report import report_table

    _, table_csv, _ = report_table([r.path for r in runs])
    lines = list(csv.reader(io.StringIO(table_csv)))
    fmt = lambda v: f"{float(v):.4f}" if v.replace(".", "", 1).replace("e-", "", 1).isdigit() else v  # noqa: E731
    return {"header": lines[0], "rows": [[fmt(v) for v in row] for row in lines[1:]]}


@dataclass
class QuerySide:
    """What the page shows of the queries, whatever they are: ids, captions (image
    queries: none), object phrases, the relevant gallery ids of each, the key of each
    query's image (image queries) and the path of every image by key."""

    ids: list
    captions: list
    objects: list
    relevant: list
    image_keys: list | None
    paths: dict
    grade: object


def _text_queries(runs: list[ShownRun]) -> QuerySide:
    """Captions of the dataset's rows; the gallery is the same rows, relevance as every
    retrieval run grades it (same caption or same image file)."""
    from vgrc.evaluators.retrieval_data import object_phrase, relevant_rows

    first = runs[0]
    ids = [str(x) for x in first.per_query["query_id"]]
    rows = gallery_rows(first)
    missing = next((i for i in ids if i not in rows.paths), None)
    if missing is not None:
        raise DatasetFolderError(f"{first.path}: query {missing!r} is not in its dataset {first.config.get('data', {}).get('data')} any more; "
                                 "was the dataset rebuilt after the run?")
    relevant = relevant_rows([rows.captions[i] for i in ids], [rows.paths[i] for i in ids])  # the gallery is the queries' own rows
    return QuerySide(ids, [str(c) for c in first.per_query["caption"]],
                     [[object_phrase(o) for o in rows.query_objects.get(i, [])] for i in ids],
                     [[ids[j] for j in r[:MAX_RELEVANT]] for r in relevant], None, rows.paths, _grader(runs, ids, rows))


def _image_queries(runs: list[ShownRun]) -> QuerySide:
    """Image queries (``--task i2i``): the query and gallery rows read as the run read them
    (its splits, ``--queries``, ``--limit``), relevance by ``query_of`` (else the same id)."""
    from types import SimpleNamespace

    from vgrc.evaluators.tasks.i2i import load_i2i

    first = runs[0]
    cfg = first.config
    data, task = cfg.get("data", {}), cfg.get("task", {}).get("options", {})
    if not data.get("data") or not Path(data["data"]).is_dir():
        raise DatasetFolderError(f"{first.path}: its dataset folder {data.get('data')!r} is gone; vgrc show reads the images from it")
    queries, gallery, relevant, _ = load_i2i(SimpleNamespace(data=data["data"], split=data.get("split"), gallery_split=task.get("gallery_split"),
                                                             queries=task.get("queries"), limit=data.get("limit"), seed=data.get("seed", 0)))
    ids = [str(x) for x in first.per_query["query_id"]]
    if ids != list(queries.ids):
        raise DatasetFolderError(f"{first.path}: its queries are not the ones its dataset gives now; was the dataset rebuilt after the run?")
    paths = dict(zip(gallery.ids, gallery.paths))
    paths.update({f"query:{q}": p for q, p in zip(queries.ids, queries.paths)})
    return QuerySide(ids, [""] * len(ids), [[] for _ in ids], [[gallery.ids[j] for j in r] for r in relevant],
                     [f"query:{q}" for q in ids], paths, lambda lists, top: None)


def _site_data(runs: list[ShownRun], top: int) -> tuple[dict, dict[str, int], dict]:
    """The page's data (queries, runs' lists as indices into one image table, symbolic
    grades), each image key's index in that table, and every image's path."""
    side = _image_queries(runs) if runs[0].record.get("kind") == "eval-i2i" else _text_queries(runs)
    pq = runs[0].per_query
    image_index: dict[str, int] = {}

    def index(key: str) -> int:
        if key not in image_index:
            image_index[key] = len(image_index)
        return image_index[key]

    query_images = None if side.image_keys is None else [index(k) for k in side.image_keys]
    rel = [[index(g) for g in r] for r in side.relevant]
    stage1_lists, stage1_grades, run_data = [], [], []
    for run in runs:
        s1 = [[index(str(x)) for x in row[:top]] for row in run.per_query["top10_stage1"]]
        try:
            s = stage1_lists.index(s1)
        except ValueError:
            stage1_lists.append(s1)
            stage1_grades.append(side.grade(run.per_query["top10_stage1"], top))
            s = len(stage1_lists) - 1
        final = [[index(str(x)) for x in row[:top]] for row in run.per_query["top10_final"]]
        ndcg = [round(float(v), 4) for v in run.per_query["ndcg@10"]] if "ndcg@10" in run.per_query.columns else None
        saved = run.plans is not None and len(run.plans) > 0
        hint = ("" if saved else f"No saved plans: {run.rerank} has no transport plan." if run.rerank not in ("hungarian", "fgw")
                else "No saved plans: run its vgrc eval command again with --save-plans N (the first N queries).")
        run_data.append({"name": run.name, "label": run.label, "rerank": run.rerank, "stage1": s, "final": final,
                         "rankStage1": [int(v) for v in run.per_query["rank_stage1"]], "rankFinal": [int(v) for v in run.per_query["rank_final"]],
                         "ndcg": ndcg, "finalGrades": side.grade(run.per_query["top10_final"], top),
                         "plansChunk": PLAN_CHUNK if saved else 0, "planHint": hint})
    cats = [list(map(str, c)) if c is not None else [] for c in pq["categories"]] if "categories" in pq.columns else [[] for _ in side.ids]
    data = {
        "top": top,
        "queries": {"ids": side.ids, "captions": side.captions, "objects": side.objects, "categories": cats, "relevant": rel,
                    "images": query_images},
        "stage1Lists": stage1_lists,
        "stage1Grades": stage1_grades,
        "runs": run_data,
        "categories": sorted({c for row in cats for c in row}),
    }
    missing = next((k for k in image_index if k not in side.paths), None)
    if missing is not None:
        raise DatasetFolderError(f"{runs[0].path}: image {missing!r} of its lists is not in its dataset any more; was the dataset rebuilt after the run?")
    return data, image_index, side.paths


def _grader(runs: list[ShownRun], ids: list[str], rows) -> object:
    """``grade(lists of ids, top) -> (Q, top) grades or None``: App. H's symbolic relevance
    (0–4) of each listed image, as the runs' graded metrics compute it, when every run
    grades symbolically and the rows carry objects; None otherwise (a VLM judge's grades
    are not in the run folder)."""
    symbolic = all(r.config.get("choices", {}).get("relevance", "symbolic") == "symbolic" for r in runs)
    if not symbolic or not any(rows.query_objects.get(i) for i in ids):
        return lambda lists, top: None
    import numpy as np

    from vgrc.evaluators.grade_kernels import AnnotationIndex

    index = AnnotationIndex([rows.query_objects[i] for i in ids], [rows.image_objects[i] for i in ids])
    position = {rid: i for i, rid in enumerate(ids)}

    def grade(lists, top: int):
        lists = np.array([[position[str(x)] for x in row[:top]] for row in lists], dtype=np.int64)
        relevance = index.grades(lists)[0]
        return [[round(float(v), 2) for v in row] for row in relevance]

    return grade


def _plan_files(runs: list[ShownRun], query_pos: dict[str, int], image_index: dict[str, int], index_image) -> dict[str, str]:
    """``data/plans-R-C.js`` contents: each run's saved plans, by query position."""
    files = {}
    for r, run in enumerate(runs):
        if run.plans is None or not len(run.plans):
            continue
        chunks: dict[int, dict[int, list]] = {}
        for row in run.plans.itertuples(index=False):
            q = query_pos.get(str(row.query_id))
            if q is None:
                continue
            n, m = int(row.n), int(row.m)
            chunks.setdefault(q // PLAN_CHUNK, {}).setdefault(q, []).append({
                "g": index_image(str(row.gallery_id)), "rf": int(row.rank_final), "rs": int(row.rank_stage1), "rel": bool(row.relevant),
                "cost": float(row.cost), "score": float(row.score), "n": n, "m": m,
                "qo": [str(x) for x in row.query_objects], "co": [str(x) for x in row.candidate_objects],
                "M": [round(float(x), 6) for x in row.M], "plan": [float(x) for x in row.plan],
                "boxes": [] if getattr(row, "candidate_boxes", None) is None else [float(x) for x in row.candidate_boxes]})
        for c, by_query in chunks.items():
            for plans in by_query.values():
                plans.sort(key=lambda p: p["rf"])
            key = f"{r}-{c}"
            files[f"data/plans-{key}.js"] = ("window.VGRC_PLANS = window.VGRC_PLANS || {};\nwindow.VGRC_PLANS[" + json.dumps(key) + "] = "
                                             + json.dumps({str(q): v for q, v in by_query.items()}, separators=(",", ":")) + ";\n")
    return files


def _render(runs: list[ShownRun], data: dict, n_images: int, thumb_px: int) -> str:
    from importlib.resources import files

    import jinja2

    from vgrc.evaluators import __version__

    folder = files("vgrc.generators.show") / "templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined)
    css = env.get_template("style.css").render(thumb_px=thumb_px)
    app_js = (folder / "app.js").read_text(encoding="utf-8")
    title = runs[0].name if len(runs) == 1 else f"{len(runs)} runs on {len(data['queries']['ids']):,} queries"
    header = [{"name": r.name, "label": r.label, "path": str(r.path), "settings": _settings(r), "metrics": _metric_rows(r), "notes": r.notes}
              for r in runs]
    return env.get_template("index.html.j2").render(
        title=title, runs=header, report=_report(runs), n_queries=f"{len(data['queries']['ids']):,}", n_images=f"{n_images:,}",
        version=__version__, written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), css=css, app_js=app_js)


def _remove_temporaries(out: Path, listed: set[str]) -> None:
    """A killed build's half-written files: temporaries of the files its site.json lists,
    or of thumbnails (named ``<target>.vgrc-tmp-<pid>``: vgrc's own)."""
    from vgrc.evaluators.atomic import TMP_INFIX

    for path in out.rglob(f"*{TMP_INFIX}*"):
        target = temporary_target(path.relative_to(out).as_posix())
        if path.is_file() and target is not None and (target in listed | {"site.json"} or target.startswith("thumbs/")):
            path.unlink(missing_ok=True)


def build_site(config: ShowConfig, *, on_progress=None) -> SiteResult:
    """Check everything, then write the site into ``config.out``."""
    from vgrc.generators.show.thumbs import make_thumbnails, thumbnail_name

    checked, state = check_show(config)
    runs = load_shown_runs(checked)
    out = Path(config.out)
    progress = on_progress or (lambda phase, done, total: None)
    data, image_index, paths = _site_data(runs, config.top)

    query_pos = {q: i for i, q in enumerate(data["queries"]["ids"])}
    # plans may name candidates outside the shown lists (a target below the shown top): their images join the table first
    plan_files = _plan_files(runs, query_pos, image_index, lambda g: image_index.setdefault(g, len(image_index)))
    image_ids = list(image_index)
    image_paths = [paths[i] for i in image_ids]
    thumb_names = [f"thumbs/{thumbnail_name(p, config.thumb_size)}" for p in image_paths]
    written = ["index.html", "data/queries.js", *plan_files, *thumb_names]

    previous = set((_site_record(out) or {}).get("files", [])) if state != "new" else set()
    out.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(out, previous)
    run_names = [str(r.path) for r in runs]
    _mark(out, False, [*previous, *written], run_names)  # vouches for every file below before it is written
    made_before = sum((out / n).is_file() for n in set(thumb_names))
    names, unreadable = make_thumbnails(image_paths, out / "thumbs", config.thumb_size, config.workers,
                                        on_progress=lambda d, t: progress("thumbnails", d, t))
    data["images"] = {"ids": image_ids, "thumbs": [n if (out / n).is_file() else "" for n in names]}
    data["pageSize"] = config.page_size
    progress("page", 0, 1)
    for name, text in plan_files.items():
        _write_text(out / name, text)
    _write_text(out / "data/queries.js", "window.VGRC_DATA = " + json.dumps(data, separators=(",", ":")) + ";\n")
    _write_text(out / "index.html", _render(runs, data, len(image_ids), config.thumb_size))
    for stale in sorted(previous - set(written) - {"site.json"}):  # the replaced site's files this one does not use (listed: vgrc's)
        (out / stale).unlink(missing_ok=True)
    _mark(out, True, written, run_names)
    progress("page", 1, 1)
    made = sum((out / n).is_file() for n in set(thumb_names)) - made_before
    return SiteResult(out, state, len(data["queries"]["ids"]), len(image_ids), made, unreadable)
