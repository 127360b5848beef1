r"""``--candidate-objects patches``: regions grouped from the vision tower's dense patch features.

Each image's patch features (:func:`vgrc.evaluators.encoders.dense.patch_features`, unit
rows in the joint space) are grouped by k-means on ``[f, s·xy]`` — the feature and the
patch's position in the unit square scaled by ``--spatial-weight`` s, so two same-looking
objects apart stay apart — with a seeded k-means++ start and Lloyd steps, all images of a
batch at once. ``--regions K`` fixes K; 0 (default) picks K ∈ {2 … 8} per image by the
largest mean silhouette. A region's embedding is the normalised mean of its patches'
features, its weight its share of the patches (so the weights sum to 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from vgrc.evaluators.encoders.dense import DENSE_VARIANTS
from vgrc.evaluators.objects.candidates import CandidateObjects
from vgrc.evaluators.registry import option

__all__ = ["Patches"]


@dataclass
class PatchesOptions:
    regions: int = option(0, "--regions", "patches: regions per image; 0 picks 2–8 per image by silhouette.", minimum=0, maximum=64)
    patch_features: str = option("maskclip", "--patch-features", "patches: the dense value path (maskclip: the last block without its attention "
                                 "map; clearclip: the value projection alone).", choices=DENSE_VARIANTS)
    spatial_weight: float = option(0.5, "--spatial-weight", "patches: weight of a patch's position next to its feature in the grouping.", minimum=0.0)


class Patches(CandidateObjects):
    name = "patches"
    help = "dense patch features (MaskCLIP's value path) grouped into regions by k-means"
    Options = PatchesOptions

    def sets(self, run, options):
        from vgrc.evaluators.encoders.dense import patch_features
        from vgrc.evaluators.objects.grouping import AUTO_K, group_patches
        from vgrc.evaluators.objects.regions import encode_region_sets

        seed = run.config.seed

        def compute(pixels):
            return group_patches(patch_features(run.setup.encoder.load().model, pixels, options.patch_features), options.regions,
                                 options.spatial_weight, seed)

        tag = f"{self.cache_tag(options)}-seed={seed}-v1"
        return encode_region_sets(run.setup, run.ev.image_paths, tag, options.regions or max(AUTO_K), run.ev_img.shape[1], compute, run.progress)
