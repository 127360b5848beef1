r"""Where the candidates' object sets come from: ``vgrc eval --candidate-objects``.

The paper builds both sides of every Hungarian / FGW problem from scene annotations
encoded as text (§4.4: "both constructed using the text-based encoding described in
Section 4.3. This construction requires no object detector or region encoder; it operates
entirely on scene annotations and CLIP's text encoder") — an oracle on the candidate side. The components of kind
``candidate_objects`` replace the candidates' sets with regions cut from the pixels:

``annotations`` (default)
    the annotated objects' phrases, embedded by the text tower: the paper's set-up.
``boxes``
    the annotated *boxes* (not their labels) cropped and embedded by the image tower.
``detector``
    boxes from an open-vocabulary detector (OWLv2 / OWL-ViT / Grounding DINO through
    transformers' ``from_pretrained``), prompted with the queries' nouns, then cropped and
    embedded as ``boxes``.
``patches``
    the vision tower's dense patch features projected into the joint space
    (MaskCLIP's value path), grouped into regions by seeded k-means; a region's weight is
    its share of the patches.
``grid``
    multi-scale grid crops, the simple baseline.

Every component returns a :class:`RegionSets` (per image: region embeddings, unit rows, and
their weights) — or None for ``annotations``, whose sets stay in the shared phrase table.
Region embeddings live in the image tower's space, so the cost :math:`M_{ij} = 1 -
\langle x_i, y_j \rangle` compares text objects with image regions, :math:`C_1` is measured
in text space and :math:`C_2` in region space: the two spaces §4.4's Gromov–Wasserstein term
is meant to relate. The weights enter the solvers' marginals (Hungarian reads only which
regions are present).
"""

from __future__ import annotations

from dataclasses import dataclass

from vgrc.evaluators.registry import Component, option

__all__ = ["CandidateObjects", "RegionSets", "Annotations", "region_pixels_option"]


@dataclass
class RegionSets:
    """Per-image regions: ``emb`` (R, d) unit rows, ``weight`` (R,) positive, and
    ``offsets`` (N + 1,): image ``i`` owns rows ``offsets[i]:offsets[i + 1]`` (possibly none).
    ``boxes`` (R, 4), where regions are boxes: each one's ``(left, top, right, bottom)`` in
    its image's pixels (None for regions that are not boxes: ``patches``' clusters)."""

    emb: object
    weight: object
    offsets: object
    boxes: object = None

    def counts(self):
        """Regions per image."""
        import numpy as np

        return np.diff(self.offsets)

    @classmethod
    def from_lists(cls, embs: list, weights: list, dim: int) -> "RegionSets":
        import numpy as np

        counts = [len(w) for w in weights]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        emb = np.concatenate([np.asarray(e, np.float32).reshape(-1, dim) for e in embs]) if embs else np.zeros((0, dim), np.float32)
        weight = np.concatenate([np.asarray(w, np.float64).ravel() for w in weights]) if weights else np.zeros(0)
        return cls(emb, weight, offsets)


def region_pixels_option():
    """``--region-pixels``: shared by every component that encodes boxes as images."""
    return option("crop", "--region-pixels", "boxes / detector / grid: how a region becomes an embedding: crop (cut out, then the model's "
                  "preprocessing); mask (kept in place, the rest of the image filled with its border colour); occlude (what the image loses "
                  "when the region is filled with that colour: normalize(e(image) − e(occluded))).", choices=("crop", "mask", "occlude"))


class CandidateObjects(Component):
    """The protocol. ``sets(run, options)`` returns the gallery's :class:`RegionSets` (one
    entry per ``run.ev`` row) or None (the annotations' phrases). Flags: ``from_pixels``
    (regions are embedded by the image tower; the gallery needs no object annotations),
    ``needs_boxes`` (reads the annotations' ``bbox``), ``one_per_object`` (a region stands
    for one object, so the dataset's recommended Hungarian ``surplus_cost`` applies; region
    sets that over- or under-segment take 0, docs/FIDELITY.md row 63)."""

    kind = "candidate_objects"
    from_pixels = True
    needs_boxes = False
    one_per_object = False

    def sets(self, run, options) -> RegionSets | None:  # pragma: no cover - the protocol
        raise NotImplementedError

    def cache_tag(self, options) -> str:
        """What the cached regions depend on besides the model and the image (a new tag, a new namespace)."""
        from dataclasses import asdict

        return self.name + "-" + "-".join(f"{k}={v}" for k, v in sorted(asdict(options).items()))


class Annotations(CandidateObjects):
    name = "annotations"
    help = "the annotated objects' phrases through the text tower (the paper's oracle)"
    from_pixels = False
    one_per_object = True

    def sets(self, run, options) -> None:
        return None
