r"""App. A's and App. J's object-versus-image rerankers: each query object (mapped into the
stage-1 space, and for ``steer-*`` first steered along its attribute direction) is scored
against the candidate's *image* embedding, and the scores are aggregated over the query's
objects by their minimum or a soft minimum :math:`-\tau \log \sum_o e^{-s_o/\tau}`."""

from __future__ import annotations

from dataclasses import dataclass

from vgrc.evaluators.first_stage.components import SteerAlphaOptions, steer_alpha_option
from vgrc.evaluators.registry import option
from vgrc.evaluators.rerankers.component import Reranker

__all__ = ["Min", "Softmin", "SteerMin", "SteerSoftmin"]


def _tau_option():
    return option(0.05, "--tau", "Temperature of the softmin rerankers.", minimum=0.0, open_min=True)


def _min(sims, present):
    import numpy as np

    return np.where(present, sims, np.inf).min(axis=2)


def _softmin(tau):
    def agg(sims, present):
        import numpy as np

        z = np.where(present, -sims / tau, -np.inf)
        zmax = z.max(axis=2, keepdims=True)
        return -tau * (np.log(np.exp(z - zmax).sum(axis=2)) + zmax[..., 0])

    return agg


@dataclass
class TauOptions:
    tau: float = _tau_option()


@dataclass
class SteerTauOptions:
    tau: float = _tau_option()
    steer_alpha: float = steer_alpha_option()


class Min(Reranker):
    name = "min"
    help = "minimum over query objects of their cosine with the image (App. A, unsteered)"
    query_objects = True

    def aggregate(self, options):
        return _min

    def score(self, ctx, shortlist, stage1_scores, options):
        from vgrc.evaluators.rerankers.context import aggregate_object_image_scores

        return aggregate_object_image_scores(ctx, shortlist, self.aggregate(options), options.steer_alpha if self.steered else None)


class Softmin(Min):
    name = "softmin"
    help = "soft minimum of the same (App. A, unsteered)"
    Options = TauOptions

    def aggregate(self, options):
        return _softmin(options.tau)


class SteerMin(Min):
    name = "steer-min"
    help = "min over per-object steered query vectors (App. J)"
    Options = SteerAlphaOptions
    steered = True


class SteerSoftmin(Softmin):
    name = "steer-softmin"
    help = "softmin over per-object steered query vectors (App. J)"
    Options = SteerTauOptions
    steered = True
