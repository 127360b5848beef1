"""The first stages of ``vgrc eval --stage1`` as registry components: names, help,
options, flags, checks, and the work method ``queries(run, options)``, which sets
``run.queries`` (Q, d), unit rows, from what the encode stage left in the
:class:`~vgrc.evaluators.tasks.stages.RetrievalRun` (``q_text``, ``ev_img``, ``fit`` /
``fit_img`` when ``needs_fit``, the phrase table when ``query_objects``, the steering
directions when ``steered_objects``); it may set ``run.mapper`` (object-image rerankers
map their query objects with it), ``run.steered`` and ``run.diagnostics``. The work
methods import numpy when they run, so ``--help`` reads these declarations without it.

Flags: ``needs_fit`` (fits on held-out rows: ``--fit-fraction`` / ``--fit-split``),
``maps_query`` (a ridge mapper moves queries into image space; object-image rerankers
map their query objects the same way), ``query_objects`` (reads the queries' per-object
sets), ``steered_objects`` (needs App. J's per-object steering directions).
"""

from __future__ import annotations

from dataclasses import dataclass

from vgrc.evaluators.registry import Component, option

__all__ = ["SteerAlphaOptions", "Stage1", "Cosine", "Ridge", "RidgeSteer", "ObjectsAvg", "ObjectsSteerAvg", "steer_alpha_option", "fit_fraction_option"]


def steer_alpha_option():
    """``--steer-alpha``: one option shared by every steered component (stage 1, rerankers, task)."""
    return option(0.5, "--steer-alpha", "Steering strength α of ridge+steer, objects-steer-avg, steer-min/-softmin and --task steering.", minimum=0.0)


def fit_fraction_option():
    return option(0.2, "--fit-fraction", "--stage1 ridge / ridge+steer: share of the split held out to fit on (left out of their queries and gallery; "
                  "other first stages evaluate the whole split).", minimum=0.0, maximum=1.0, open_max=True, unused_hint="hold rows out to fit on")


def ridge_lambda_option():
    return option(1.0, "--ridge-lambda", "L2 penalty λ of the ridge mapper.", minimum=0.0)


class Stage1(Component):
    """Cosine by default: the captions' embeddings are the queries."""

    kind = "stage1"
    needs_fit = False
    maps_query = False
    query_objects = False
    steered_objects = False
    #: steers the query vectors by the words of their objects (the objects are required, not embedded)
    steers_queries = False

    def queries(self, run, options) -> None:
        run.queries = run.q_text


class Cosine(Stage1):
    name = "cosine"
    help = "cosine similarity of the caption and image embeddings (Eq. 1)"


@dataclass
class RidgeOptions:
    fit_fraction: float = fit_fraction_option()
    ridge_lambda: float = ridge_lambda_option()


class Ridge(Stage1):
    name = "ridge"
    help = "caption mapped by a text→image ridge mapper fitted on disjoint rows (§4.2)"
    Options = RidgeOptions
    needs_fit = True
    maps_query = True

    def queries(self, run, options) -> None:
        """§4.2: a closed-form ridge mapper fitted on the fit rows' captions → images."""
        from vgrc.evaluators.first_stage.ridge import RidgeMapper

        run.fit_text = run.setup.encode_texts(run.fit.captions, run.progress)
        run.mapper = RidgeMapper(ridge_lambda=options.ridge_lambda).fit(run.fit_text, run.fit_img)
        run.queries = run.mapper.transform(run.q_text)
        run.diagnostics["ridge"] = {"fit_rows": len(run.fit), **run.mapper.distance_reduction(run.q_text, run.ev_img)}


@dataclass
class RidgeSteerOptions(RidgeOptions):
    steer: list = option([], "--steer", "SOURCE:TARGET steering pair, e.g. pentagon:hexagon (repeatable) [default: derived from cosine confusions "
                         "on the fit rows, colour held fixed (App. E)].", show_default=False)
    steer_alpha: float = steer_alpha_option()
    steer_top: int = option(3, "--steer-top", "Confusion pairs derived when no --steer is given.", minimum=0)


class RidgeSteer(Ridge):
    name = "ridge+steer"
    help = "ridge, then steering vectors toward the query's words (§6.3, App. E, I)"
    Options = RidgeSteerOptions
    steers_queries = True

    def check(self, options, manifest) -> None:
        from vgrc.evaluators.first_stage.steering import parse_steer_pairs

        parse_steer_pairs(options.steer)

    def queries(self, run, options) -> None:
        """Ridge, then §6.3's steering vectors toward the query's words (App. E pairs from
        the fit rows' cosine confusions when no --steer is given)."""
        from vgrc.evaluators.first_stage.steering import Steering, confusion_steering_pairs, parse_steer_pairs

        super().queries(run, options)
        pairs = parse_steer_pairs(options.steer)
        if not pairs and options.steer_top > 0:
            pairs = confusion_steering_pairs(options.steer_top, run.fit, run.fit_text, run.fit_img, run.diagnostics)
        steering = Steering(pairs, options.steer_alpha).fit(lambda phrases: run.setup.encode_phrases(phrases, run.progress), run.mapper)
        run.queries, run.steered = steering.transform(run.queries, run.query_sets)
        run.diagnostics["steering"] = {"pairs": [list(p) for p in pairs], "steer_alpha": options.steer_alpha, "queries_steered": int(run.steered.sum())}


class ObjectsAvg(Stage1):
    name = "objects-avg"
    help = "average of the query's per-object embeddings, unsteered (App. A)"
    query_objects = True

    def queries(self, run, options) -> None:
        from vgrc.evaluators.first_stage.search import normalize
        from vgrc.evaluators.rerankers.context import ObjectTable, steer_objects

        table = ObjectTable.build(run.q_phrases, run.phrase_index, run.phrase_emb)
        objs = table.emb()
        if self.steered_objects:
            objs = steer_objects(objs, run.directions[table.index], options.steer_alpha)
            run.steered[:] = True
        run.queries = normalize((objs * (table.weight > 0)[..., None]).sum(1))


@dataclass
class SteerAlphaOptions:
    """``--steer-alpha`` alone: the options of objects-steer-avg, steer-min and --task steering."""

    steer_alpha: float = steer_alpha_option()


class ObjectsSteerAvg(ObjectsAvg):
    name = "objects-steer-avg"
    help = "average of the query's per-object embeddings, each steered along its attribute direction (App. J)"
    Options = SteerAlphaOptions
    steered_objects = True
