"""``--rerank orb|sift|orb+sift`` (``--task i2i``): *Beyond Vision*'s geometric re-ranking of
image neighbours — the shortlisted candidates ordered by the number of RANSAC inliers of
their ORB / SIFT matches with the query image (:mod:`.keypoints`), ``orb+sift`` by the sum
of both counts. ``--geo-weight w`` adds w × the stage-1 cosine (0: inliers alone, ties in
stage-1 order)."""

from __future__ import annotations

from dataclasses import dataclass

from vgrc.evaluators.registry import option
from vgrc.evaluators.rerankers.component import Reranker

__all__ = ["ORB", "SIFT", "ORBSIFT", "GeoOptions"]


@dataclass
class GeoOptions:
    geo_features: int = option(1000, "--geo-features", "orb / sift: keypoints per image (the strongest).", minimum=1)
    geo_ratio: float = option(0.75, "--geo-ratio", "orb / sift: Lowe's ratio test threshold.", minimum=0.0, maximum=1.0, open_min=True)
    geo_ransac: float = option(5.0, "--geo-ransac", "orb / sift: RANSAC reprojection threshold in pixels.", minimum=0.0, open_min=True)
    geo_weight: float = option(0.0, "--geo-weight", "orb / sift: add this multiple of the stage-1 cosine to the inlier count.", minimum=0.0)


class ORB(Reranker):
    name = "orb"
    help = "RANSAC inliers of ORB matches with the query image (--task i2i; Beyond Vision)"
    Options = GeoOptions
    image_pairs = True
    methods = ("orb",)

    def score(self, ctx, shortlist, stage1_scores, options):
        import numpy as np

        from vgrc.evaluators.rerankers.keypoints import KeypointStore, verify_pairs

        total = np.zeros(shortlist.shape)
        for method in self.methods:
            store = KeypointStore(ctx.cache_root, method, options.geo_features)
            features = ctx.features(store, np.unique(shortlist))
            pairs = [(features[("q", q)], features[("g", int(g))]) for q, row in enumerate(shortlist) for g in row]
            inliers = verify_pairs(pairs, method, options.geo_ratio, options.geo_ransac,
                                   on_progress=lambda d, t, m=method: ctx.progress(f"verifying pairs ({m})", d, t))
            total += inliers.reshape(shortlist.shape)
            ctx.computed[method] = store.computed
        return total + options.geo_weight * stage1_scores if options.geo_weight else total


class SIFT(ORB):
    name = "sift"
    help = "RANSAC inliers of SIFT matches with the query image (--task i2i)"
    methods = ("sift",)


class ORBSIFT(ORB):
    name = "orb+sift"
    help = "the sum of the ORB and SIFT inlier counts (--task i2i)"
    methods = ("orb", "sift")
