"""``vgrc diagnose``: the paper's analyses (issue 12), one subcommand each, with the same
model / cache / --limit options as ``vgrc eval``.

Examples::

    vgrc diagnose substitution --model clip --top-k 1
    vgrc diagnose geometry --model clip
    vgrc diagnose composition --data data/clevr-hope --steer-alpha 0.1,0.5,1
    vgrc diagnose k-sweep --k-values 5,10,20,50,100 --fgw-alpha 0.5
    vgrc diagnose alpha-sweep --data data/vg --steer-alpha 0,0.5,1,2
    vgrc diagnose fgw-alpha --fgw-alpha 0,0.25,0.5,0.75,1
    vgrc diagnose all --out results/diagnose-shapes
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vgrc.cli.console import phase_progress, stdout, user_errors
from vgrc.cli.component_options import choices_help, declared_help
from vgrc.cli.eval import use_default_dataset
from vgrc.cli.options import BatchSize, CacheDir, DecodeWorkers, Debug, Device, Limit, Overwrite, Precision, PreprocessMode, Pretrained, Quiet, Seed, Split
from vgrc.evaluators.encoders.model_refs import MODEL_ALIASES

diagnose_app = typer.Typer(name="diagnose", help="The paper's analyses: tables, plots and Markdown in an output folder.", no_args_is_help=True)

Data = Annotated[Optional[Path], typer.Option("--data", "-d", help="Dataset folder [default: Synthetic Shapes, built once under the cache folder].", show_default=False)]
Out = Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder [default: results/diagnose-ANALYSIS-DATASET-MODEL].", show_default=False)]
Model = Annotated[str, typer.Option("--model", "-m", help=f"open_clip model: {', '.join(MODEL_ALIASES)}, ARCH:TAG, hf-hub:ORG/NAME.")]
K = Annotated[int, typer.Option("--k", help="Shortlist size reranked by the second stage.")]
Solver = Annotated[str, typer.Option("--solver", help=choices_help("solver", "FGW solver"))]
Unmatched = Annotated[Optional[float], typer.Option("--unmatched-cost", help=declared_help("unmatched_cost"), show_default=False)]
Surplus = Annotated[Optional[float], typer.Option("--surplus-cost", help=declared_help("surplus_cost"), show_default=False)]


def _run(analysis: str, options: dict, analysis_options: dict, quiet: bool, debug: bool, line) -> None:
    """Check every option, build the default dataset if needed, run, print one summary line."""
    from vgrc.evaluators.diagnostics import get_diagnostic
    from vgrc.evaluators.pipeline import EvalConfig

    with user_errors(debug):
        options = {k: (None if v is None else str(v)) if k in ("data", "out", "cache_dir") else v for k, v in options.items()}
        config = EvalConfig(**options)
        config.check_options()
        run = get_diagnostic(analysis)
        checker = getattr(run, "check_options", None)
        if checker is not None:  # the analysis's own options, before any dataset is built
            analysis_options = checker(config, **analysis_options)
        use_default_dataset(config, quiet)
        if config.out is None:
            from vgrc.evaluators.dataset import read_manifest

            name = "".join(c if c.isalnum() or c in "-_." else "-" for c in config.model)
            config.out = str(Path("results") / f"diagnose-{analysis}-{read_manifest(config.data).get('dataset')}-{name}")
        config.check(run_folder=analysis != "all", run_kind=f"diagnose-{analysis}")
        with phase_progress(quiet) as on_progress:
            summary = run(config, progress=on_progress, **analysis_options)
    if not quiet:
        stdout.print(f"{config.out}: {line(summary)}")


def _common(data, out, model, pretrained, split, limit, seed, device, batch_size, precision, cache_dir, overwrite, **extra) -> dict:
    return dict(data=data, out=out, model=model, pretrained=pretrained, split=split, limit=limit, seed=seed, device=device,
                batch_size=batch_size, precision=precision, cache_dir=cache_dir, overwrite=overwrite, **extra)



@diagnose_app.command("substitution")
def substitution_command(
    data: Data = None, out: Out = None, model: Model = "clip", pretrained: Pretrained = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Retrieved positions counted per query (1 = the top-1 confusions of App. E).")] = 1,
    split: Split = None, limit: Limit = None, seed: Seed = 0, device: Device = "cpu", batch_size: BatchSize = 64, decode_workers: DecodeWorkers = None, preprocess: PreprocessMode = "exact",
    precision: Precision = "fp32", cache_dir: CacheDir = None, overwrite: Overwrite = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """App. E's shape substitution matrix: what the wrong top-K images show instead, colour held fixed.

    Example:

        vgrc diagnose substitution --model clip --top-k 1
    """
    def line(s):
        top = ", ".join(f"{c['query']}→{c['retrieved']} {c['count']}" for c in s["top_confusions"][:3]) or "none"
        return f"{s['substitutions']:,} substitutions in {s['queries']:,} queries' top-{top_k}; top: {top}"

    _run("substitution", _common(data, out, model, pretrained, split, limit, seed, device, batch_size, precision, cache_dir, overwrite, fit_fraction=0.0, decode_workers=decode_workers, preprocess=preprocess),
         {"top_k": top_k}, quiet, debug, line)


@diagnose_app.command("geometry")
def geometry_command(
    data: Data = None, out: Out = None, model: Model = "clip", pretrained: Pretrained = None,
    ridge_lambda: Annotated[float, typer.Option("--ridge-lambda", help="L2 penalty λ of the ridge mapper (fitted on the main split's captions → images).")] = 1.0,
    split: Split = None, limit: Limit = None, seed: Seed = 0, device: Device = "cpu", batch_size: BatchSize = 64, decode_workers: DecodeWorkers = None, preprocess: PreprocessMode = "exact",
    precision: Precision = "fp32", cache_dir: CacheDir = None, overwrite: Overwrite = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """§4.2: Pearson r of text vs image distances (overall, per noun), the ridge mapper's distance reduction, GW distance before/after it, and the single-item OT identity.

    The items are the dataset's single-object rows (Synthetic Shapes: its 42 primitives).

    Example:

        vgrc diagnose geometry --model clip
    """
    def line(s):
        return (f"{s['items']} items; Pearson r {s['pearson_all']:.3f}; ridge reduces distance by {100 * s['ridge']['reduction']:.0f}%; "
                f"GW {s['gw_before']:.4f} → {s['gw_after']:.4f}; OT identity {s['ot_identity']['ot_identity']:.2f}")

    _run("geometry", _common(data, out, model, pretrained, split, limit, seed, device, batch_size, precision, cache_dir, overwrite,
                             fit_fraction=0.0, ridge_lambda=ridge_lambda, decode_workers=decode_workers, preprocess=preprocess), {}, quiet, debug, line)


@diagnose_app.command("composition")
def composition_command(
    data: Data = None, out: Out = None, model: Model = "clip", pretrained: Pretrained = None,
    steer_alpha: Annotated[str, typer.Option("--steer-alpha", help="Steering strengths α of the interference sweep (comma-separated); the first is also the targeted-steering strength.")] = "0.1,0.25,0.5,1",
    tau: Annotated[float, typer.Option("--tau", help="Temperature of the softmin merge.")] = 0.05,
    split: Split = None, limit: Limit = None, seed: Seed = 0, device: Device = "cpu", batch_size: BatchSize = 64, decode_workers: DecodeWorkers = None, preprocess: PreprocessMode = "exact",
    precision: Precision = "fp32", cache_dir: CacheDir = None, overwrite: Overwrite = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """App. A and J: per-object retrieval, merged baselines vs CLIP, pairing errors by attribute, targeted steering, and interference under average-merged steering.

    For datasets whose rows carry multi-attribute `objects` (CLEVR-HOPE, Visual Genome; Synthetic Shapes works too).

    Example:

        vgrc diagnose composition --data data/clevr-hope --steer-alpha 0.1,0.5,1
    """
    def line(s):
        i = s["interference"][0]
        return (f"CLIP R@10 {s['baselines']['clip']['R@10']:.3f}, average merge {s['baselines']['avg']['R@10']:.3f}; "
                f"pairing errors {s['pairing']['pairing_error_share']:.1%} of the top-10; "
                f"{i['queries_degraded']}/{i['queries']} queries degrade on ≥1 slot at α={i['steer_alpha']:g}")

    _run("composition", _common(data, out, model, pretrained, split, limit, seed, device, batch_size, precision, cache_dir, overwrite,
                                fit_fraction=0.0, tau=tau, decode_workers=decode_workers, preprocess=preprocess), {"steer_alphas": steer_alpha}, quiet, debug, line)


@diagnose_app.command("k-sweep")
def k_sweep_command(
    data: Data = None, out: Out = None, model: Model = "clip", pretrained: Pretrained = None,
    k_values: Annotated[str, typer.Option("--k-values", help="Shortlist sizes k to sweep (comma-separated).")] = "5,10,20,30,40,50,75,100",
    k: K = 50,
    fgw_alpha: Annotated[Optional[float], typer.Option("--fgw-alpha", help="FGW trade-off α, fixed over the sweep [default: App. D's rule, the best α of the main FGW run over 0, 0.25, 0.5, 0.75, 1].", show_default=False)] = None,
    solver: Solver = "cg", unmatched_cost: Unmatched = None, surplus_cost: Surplus = None,
    trajectories: Annotated[int, typer.Option("--trajectories", help="Disagreement queries drawn in the per-query trajectory plot (Fig. 3).")] = 8,
    split: Split = None, limit: Limit = None, seed: Seed = 0, device: Device = "cpu", batch_size: BatchSize = 64, decode_workers: DecodeWorkers = None, preprocess: PreprocessMode = "exact",
    precision: Precision = "fp32", cache_dir: CacheDir = None, overwrite: Overwrite = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """App. D (Figs. 2–3): on the queries where Hungarian reaches R@1 at --k and FGW does not, sweep the shortlist size k; recovery rates and per-query trajectories.

    Example:

        vgrc diagnose k-sweep --k-values 5,10,20,50,100               # α: the main run's best (App. D)
        vgrc diagnose k-sweep --k-values 5,10,20,50,100 --fgw-alpha 0.5
    """
    def line(s):
        rows = s["sweep"]
        if not s["disagreements"]:
            return f"no query disagrees (of {s['queries']}): Hungarian and FGW rank the same queries first at k={s['k']}"
        return (f"{s['disagreements']} disagreement queries (of {s['queries']}); FGW recovers "
                + ", ".join(f"{r['fgw_recovery']:.2f}@k={r['k']}" for r in rows[:4]) + (" …" if len(rows) > 4 else ""))

    _run("k-sweep", _common(data, out, model, pretrained, split, limit, seed, device, batch_size, precision, cache_dir, overwrite,
                            fit_fraction=0.0, k=k, fgw_alpha=0.5 if fgw_alpha is None else fgw_alpha, solver=solver,
                            unmatched_cost=unmatched_cost, surplus_cost=surplus_cost, decode_workers=decode_workers, preprocess=preprocess),
         {"k_values": k_values, "trajectories": trajectories, "best_alpha": fgw_alpha is None}, quiet, debug, line)


@diagnose_app.command("alpha-sweep")
def alpha_sweep_command(
    data: Data = None, out: Out = None, model: Model = "clip", pretrained: Pretrained = None,
    steer_alpha: Annotated[str, typer.Option("--steer-alpha", help="Steering strengths α to sweep (comma-separated).")] = "0,0.25,0.5,0.75,1,1.5,2",
    query: Annotated[Optional[str], typer.Option("--query", help="Query (steering row or caption row id) of the qualitative top-5 grid [default: the first steered one].", show_default=False)] = None,
    steer: Annotated[Optional[list[str]], typer.Option("--steer", help="Retrieval datasets: steering pair SOURCE:TARGET (repeatable) [default: the fit rows' top confusions, App. E].", show_default=False)] = None,
    steer_top: Annotated[int, typer.Option("--steer-top", help="Retrieval datasets: confusion pairs used when --steer is not given.")] = 3,
    fit_fraction: Annotated[float, typer.Option("--fit-fraction", help="Retrieval datasets: share held out to fit the ridge mapper and the confusions.")] = 0.2,
    ridge_lambda: Annotated[float, typer.Option("--ridge-lambda", help="Retrieval datasets: L2 penalty λ of the ridge mapper.")] = 1.0,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Steering datasets: skip unreadable gallery images (counted in run.json) instead of stopping.")] = False,
    split: Split = None, limit: Limit = None, seed: Seed = 0, device: Device = "cpu", batch_size: BatchSize = 64, decode_workers: DecodeWorkers = None, preprocess: PreprocessMode = "exact",
    precision: Precision = "fp32", cache_dir: CacheDir = None, overwrite: Overwrite = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """App. I (Figs. 5–6): R@K, CAS@10 and source@10 against the steering strength α, and a grid of the top-5 images at three α.

    Datasets with a steering.jsonl (NAC, Visual Genome) sweep `--task steering`; other datasets (Synthetic Shapes) sweep `--stage1 ridge+steer`.

    Example:

        vgrc diagnose alpha-sweep --data data/vg --steer-alpha 0,0.5,1,2
    """
    def line(s):
        rows = s["sweep"]
        return f"{s['mode']}: R@10 " + ", ".join(f"{r['R@10']:.3f}@α={r['steer_alpha']:g}" for r in rows[:5]) + (" …" if len(rows) > 5 else "")

    _run("alpha-sweep", _common(data, out, model, pretrained, split, limit, seed, device, batch_size, precision, cache_dir, overwrite,
                                fit_fraction=fit_fraction, ridge_lambda=ridge_lambda, steer=list(steer or []), steer_top=steer_top, skip_bad=skip_bad, stage1="ridge+steer", decode_workers=decode_workers, preprocess=preprocess),
         {"steer_alphas": steer_alpha, "query": query}, quiet, debug, line)


@diagnose_app.command("fgw-alpha")
def fgw_alpha_command(
    data: Data = None, out: Out = None, model: Model = "clip", pretrained: Pretrained = None,
    fgw_alpha: Annotated[str, typer.Option("--fgw-alpha", help="FGW trade-offs α in [0, 1] to sweep (comma-separated).")] = "0,0.25,0.5,0.75,1",
    k: K = 50, solver: Solver = "cg", unmatched_cost: Unmatched = None, surplus_cost: Surplus = None,
    fit_fraction: Annotated[float, typer.Option("--fit-fraction", help="Hold this share of the split out and choose the best α on it (0: the best α is picked on the evaluated queries, and said so).")] = 0.0,
    fit_split: Annotated[Optional[str], typer.Option("--fit-split", help="Choose the best α on this split instead.", show_default=False)] = None,
    split: Split = None, limit: Limit = None, seed: Seed = 0, device: Device = "cpu", batch_size: BatchSize = 64, decode_workers: DecodeWorkers = None, preprocess: PreprocessMode = "exact",
    precision: Precision = "fp32", cache_dir: CacheDir = None, overwrite: Overwrite = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """§4.4's trade-off: FGW reranking across α from 0 (object features only) to 1 (structure only), with both failure modes.

    The Hungarian reference uses --unmatched-cost / --surplus-cost, by default the dataset's recommendation (1.0 / 1.0 on CLEVR-HOPE and Synthetic Shapes).

    Example:

        vgrc diagnose fgw-alpha --fgw-alpha 0,0.25,0.5,0.75,1 --k 50
    """
    def line(s):
        best = s["best"]
        first, last = s["sweep"][0], s["sweep"][-1]
        where = "fit rows" if s["best_chosen_on"].startswith("the ") and "fit rows" in s["best_chosen_on"] else "evaluated queries"
        return (f"best α={best['fgw_alpha']:g} (chosen on the {where}; R@1 {best['R@1']:.3f}); α={first['fgw_alpha']:g}: {first['R@1']:.3f}, "
                f"α={last['fgw_alpha']:g}: {last['R@1']:.3f}")

    _run("fgw-alpha", _common(data, out, model, pretrained, split, limit, seed, device, batch_size, precision, cache_dir, overwrite,
                              fit_fraction=fit_fraction, fit_split=fit_split, k=k, solver=solver, unmatched_cost=unmatched_cost,
                              surplus_cost=surplus_cost, decode_workers=decode_workers, preprocess=preprocess), {"fgw_alphas": fgw_alpha}, quiet, debug, line)


@diagnose_app.command("all")
def all_command(
    data: Data = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Parent folder; each analysis writes its own subfolder [default: results/diagnose-all-DATASET-MODEL].", show_default=False)] = None,
    model: Model = "clip", pretrained: Pretrained = None,
    split: Split = None, limit: Limit = None, seed: Seed = 0, device: Device = "cpu", batch_size: BatchSize = 64, decode_workers: DecodeWorkers = None, preprocess: PreprocessMode = "exact",
    precision: Precision = "fp32", cache_dir: CacheDir = None, overwrite: Overwrite = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """Every analysis with its defaults, in one process (rows and embeddings prepared once), each into OUT/ANALYSIS.

    Analyses that do not apply to the dataset are skipped with their reason.

    Example:

        vgrc diagnose all --model clip --out results/diagnose-shapes
    """
    def line(results):
        ran = [n for n, r in results.items() if "skipped" not in r]
        skipped = [f"{n} ({r['skipped']})" for n, r in results.items() if "skipped" in r]
        return f"ran {', '.join(ran) or 'nothing'}" + (f"; skipped {'; '.join(skipped)}" if skipped else "")

    _run("all", _common(data, out, model, pretrained, split, limit, seed, device, batch_size, precision, cache_dir, overwrite, fit_fraction=0.0, decode_workers=decode_workers, preprocess=preprocess),
         {}, quiet, debug, line)
