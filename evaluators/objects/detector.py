"""``--candidate-objects detector``: boxes from an open-vocabulary detector, cropped and
embedded by the image tower like ``boxes``.

The detector is any transformers zero-shot object detector (OWLv2, OWL-ViT, Grounding
DINO), loaded with ``AutoProcessor`` / ``AutoModelForZeroShotObjectDetection
.from_pretrained`` (a hub id or a local folder: ``--detector-model``; the README names
``google/owlv2-base-patch16-ensemble``). It is prompted with the nouns of the queries'
object sets — one prompt list for the whole gallery, the most frequent
:data:`MAX_PROMPTS` nouns, since a candidate is shared by every query that shortlists it
(docs/FIDELITY.md row 63) — and its boxes above ``--detector-threshold`` are kept after
class-agnostic non-maximum suppression (IoU 0.5), at most ``--max-regions`` per image,
highest score first. Boxes are cached per image under a namespace naming the detector,
the prompts and these settings; their embeddings as every region's.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass

from vgrc.evaluators.objects.candidates import CandidateObjects, region_pixels_option
from vgrc.evaluators.registry import option

__all__ = ["Detector", "detector_prompts", "detect_boxes", "MAX_PROMPTS"]

MAX_PROMPTS = 100
NMS_IOU = 0.5


@dataclass
class DetectorOptions:
    region_pixels: str = region_pixels_option()
    detector_model: str | None = option(None, "--detector-model", "detector: a transformers zero-shot detector, hub id or local folder "
                                        "(e.g. google/owlv2-base-patch16-ensemble).", show_default=False)
    detector_threshold: float = option(0.1, "--detector-threshold", "detector: the lowest box score kept.", minimum=0.0, maximum=1.0)
    max_regions: int = option(8, "--max-regions", "detector: the most boxes kept per image (highest scores).", minimum=1, maximum=64)


def detector_prompts(query_sets: list[list[dict]]) -> list[str]:
    """The queries' nouns, most frequent first (ties alphabetical), at most :data:`MAX_PROMPTS`."""
    counts = Counter(o["noun"] for objs in query_sets for o in objs if o.get("noun"))
    return [n for n, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:MAX_PROMPTS]


def detect_boxes(model, processor, images: list, prompts: list[str], threshold: float, max_regions: int):
    """``(B, max_regions, 5)`` float array: ``[x0, y0, x1, y1, score]`` per kept box, score
    0 for none; boxes in pixels of each image."""
    import numpy as np
    import torch
    from torchvision.ops import nms

    inputs = processor(text=[list(prompts)] * len(images), images=images, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    sizes = [(im.height, im.width) for im in images]
    found = processor.post_process_grounded_object_detection(outputs, threshold=threshold, target_sizes=sizes)
    out = np.zeros((len(images), max_regions, 5), np.float32)
    for b, det in enumerate(found):
        boxes, scores = det["boxes"].float(), det["scores"].float()
        keep = nms(boxes, scores, NMS_IOU)[:max_regions]
        out[b, : len(keep), :4] = boxes[keep].numpy()
        out[b, : len(keep), 4] = scores[keep].numpy()
    return out


class Detector(CandidateObjects):
    name = "detector"
    help = "boxes from an open-vocabulary detector (--detector-model) prompted with the queries' nouns"
    Options = DetectorOptions

    def check(self, options, manifest) -> None:
        from vgrc.evaluators.encoders.model_refs import require_model
        from vgrc.evaluators.errors import InvalidInputError

        if options.detector_model is None:
            raise InvalidInputError("--candidate-objects detector needs --detector-model, e.g. google/owlv2-base-patch16-ensemble or a local folder")
        require_model("--detector-model", options.detector_model, "transformers", "detector model", "or pass a local folder: --detector-model PATH")

    def sets(self, run, options):
        import numpy as np

        from vgrc.evaluators.encoders.cache import EmbeddingCache, encode_cached
        from vgrc.evaluators.objects.crops import image_sizes
        from vgrc.evaluators.objects.regions import clamp_box, encode_boxes, image_keys, read_image

        prompts = detector_prompts(run.query_sets)
        if not prompts:
            from vgrc.evaluators.errors import InvalidInputError

            raise InvalidInputError("--candidate-objects detector: the queries' object sets name no nouns to prompt the detector with")
        loaded = {}

        def detector():
            if not loaded:
                from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

                loaded["processor"] = AutoProcessor.from_pretrained(options.detector_model)
                loaded["model"] = AutoModelForZeroShotObjectDetection.from_pretrained(options.detector_model).eval()
            return loaded["model"], loaded["processor"]

        paths = run.ev.image_paths
        ident = json.dumps([options.detector_model, prompts, options.detector_threshold, options.max_regions, NMS_IOU])
        cache = EmbeddingCache(run.setup.cache_root, "detector-" + hashlib.sha256(ident.encode()).hexdigest()[:20])
        found, _ = encode_cached(image_keys(run.setup, paths), lambda i: read_image(str(paths[i])),
                                 lambda imgs: detect_boxes(*detector(), imgs, prompts, options.detector_threshold, options.max_regions).reshape(len(imgs), -1),
                                 cache, options.max_regions * 5, chunk=8, on_progress=lambda d, t: run.progress("detecting objects", d, t))
        found = found.reshape(len(paths), options.max_regions, 5)
        boxes = []
        for rows, (w, h) in zip(found, image_sizes(paths)):
            kept = [clamp_box((x0, y0, x1 - x0, y1 - y0), w, h) for x0, y0, x1, y1, s in rows if s > 0]
            boxes.append([b for b in kept if b is not None])
        run.diagnostics["detector"] = {"model": options.detector_model, "prompts": len(prompts), "boxes_per_image": float(np.mean([len(b) for b in boxes]))}
        return encode_boxes(run.setup, paths, boxes, options.region_pixels, run.ev_img, run.progress, "encoding detected boxes")
