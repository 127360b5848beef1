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

__all__ = ["SteerAlphaOptions", "Stage1", "Cosine", "Ridge", "RidgeSteer", "ObjectsAvg", "ObjectsSteerAvg", "Ensemble", "steer_alpha_option", "fit_fraction_option"]


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
    #: searches vectors of its own, not the image embeddings (run.search_gallery): no --index
    own_gallery = False

    def queries(self, run, options) -> None:
        run.queries = run.q_text

    def fits(self, options) -> bool:
        """Whether this stage, with these options, fits on held-out rows (``needs_fit``, or an
        option that asks for it: the ensemble's ``--weights fit``)."""
        return self.needs_fit


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


@dataclass
class EnsembleOptions:
    fit_fraction: float = fit_fraction_option()
    models: str | None = option(None, "--models", "ensemble: further open_clip models (comma-separated, e.g. siglip2,clip-l) fused with --model.",
                                show_default=False)
    weights: str | None = option(None, "--weights", "ensemble: one weight per model (--model first), comma-separated, or 'fit': chosen by "
                                 "R@1 on the fit rows (--fit-fraction / --fit-split) [default: equal].", show_default=False)


class Ensemble(Stage1):
    name = "ensemble"
    help = "z-scored cosine scores of --model and --models, summed with --weights (Beyond Vision's encoder ensemble)"
    Options = EnsembleOptions
    own_gallery = True

    def check(self, options, manifest) -> None:
        from vgrc.evaluators.encoders.model_refs import check_clip_model
        from vgrc.evaluators.errors import InvalidInputError
        from vgrc.evaluators.first_stage.ensemble import parse_weights

        models = ensemble_models(options)
        if not models:
            raise InvalidInputError("--stage1 ensemble needs --models (the models fused with --model), e.g. --models siglip2")
        for m in models:
            check_clip_model("--models", m)
        parse_weights(options.weights, 1 + len(models))

    def fits(self, options) -> bool:
        return options.weights == "fit"

    def unused_options(self, options) -> list[str]:
        return [] if self.fits(options) else ["fit_fraction"]

    def queries(self, run, options) -> None:
        """Each model's caption and image embeddings (cached per model), fused exactly
        (:func:`~vgrc.evaluators.first_stage.ensemble.fusion_vectors`)."""
        from vgrc.evaluators.first_stage.ensemble import fusion_vectors, parse_weights

        from vgrc.evaluators.first_stage.ensemble import fit_weights

        models = ensemble_models(options)
        texts, images = [run.q_text], [run.ev_img]
        fit_texts, fit_images = [], []
        if self.fits(options):
            fit_texts, fit_images = [run.setup.encode_texts(run.fit.captions, run.progress)], [run.fit_img]
        for m in models:
            t, i, ft, fi = encode_with(run, m, fit=self.fits(options))
            texts.append(t)
            images.append(i)
            fit_texts.append(ft)
            fit_images.append(fi)
        if self.fits(options):
            weights = fit_weights(fit_texts, fit_images, run.fit.relevant)
        else:
            weights = parse_weights(options.weights, 1 + len(models)) or (1.0,) * (1 + len(models))
        run.queries, run.search_gallery = fusion_vectors(texts, images, weights)
        run.diagnostics["ensemble"] = {"models": [run.config.model, *models], "weights": list(weights), "normalisation": "z-score per query and model",
                                       "weights_from": f"R@1 grid search (step 0.1) on the {len(run.fit)} fit rows" if self.fits(options) else "given"}


def ensemble_models(options) -> list[str]:
    return [m.strip() for m in (options.models or "").split(",") if m.strip()]


def images_with(config, model: str, paths, progress):
    """``(setup, embeddings)``: ``paths`` embedded by another model of an ensemble (its own
    cache); an image it cannot read stops the run with one line."""
    from vgrc.evaluators.encoders.setup import EncodingSetup
    from vgrc.evaluators.errors import InvalidInputError

    setup = EncodingSetup(config.replace(model=model, pretrained=None))
    images, failed, bad = setup.encode_images(paths, progress)
    if failed.any():
        raise InvalidInputError(f"--models {model}: {int(failed.sum())} image(s) could not be encoded (first: {bad[0] if bad else '?'})")
    return setup, images


def encode_with(run, model: str, fit: bool = False):
    """Captions and images of the evaluated rows (and of the fit rows when ``fit``) embedded
    by another model (its own cache): ``(texts, images, fit texts, fit images)``."""
    sets = [run.ev, *([run.fit] if fit else [])]
    setup, images = images_with(run.config, model, [p for s in sets for p in s.image_paths], run.progress)
    n = len(run.ev)
    texts = setup.encode_texts(run.ev.captions, run.progress)
    fit_texts = setup.encode_texts(run.fit.captions, run.progress) if fit else None
    return texts, images[:n], fit_texts, images[n:] if fit else None
