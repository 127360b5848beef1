"""Build NAC, noun–attribute contrast pairs generated with FLUX (paper §3, App. F.1): ``vgrc build-nac``.

Stages (all resumable; files are written atomically):

1. Prompts (:mod:`vgrc.generators.nac.prompts`): ``prompts.jsonl``, one row per pair.
   ``--dry-run`` stops here.
2. Generation: the real diffusers ``FluxPipeline.from_pretrained(--model)`` (bf16 on GPU,
   float32 on CPU, optional ``--cpu-offload``). Both images of a pair come from ONE
   batched call with the pair's seed, using one ``torch.Generator`` per image (``[g] * 2``
   would draw different noise for the two images). Seeds derive from (seed, noun,
   attributes, sample). A pair whose two images exist is skipped. Pairs are split
   round-robin over ``--num-shards`` × the processes of ``accelerate launch``, so a
   cluster job array or a multi-GPU launch each take a disjoint share.
3. Merge (automatic for a single shard, or ``--merge`` once every shard is done):
   verification by the judge (:mod:`vgrc.evaluators.judges.verify`), the steerability filter,
   then ``pairs/metadata.jsonl``, ``steering.jsonl``, ``stats.csv`` / ``stats.md``, the
   dataset card, and the manifest last.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgrc.evaluators.dataset import (
    atomic_write_bytes,
    check_output,
    mark_unfinished,
    read_manifest,
    atomic_write_text,
    dumps_row,
    prepare_output,
    remove_stale_temporaries,
)
from vgrc.evaluators.errors import InvalidInputError, VgrcError
from vgrc.generators.nac.layout import DATASET, SPLIT, image_paths, nac_files
from vgrc.generators.nac.prompts import NACPair, load_nac_contrasts, load_plausible, make_pairs
from vgrc.generators._util.png import encode_rgb_png

__all__ = ["NACConfig", "NACResult", "build_nac", "shard_of", "load_flux"]

DEFAULT_MODEL = "black-forest-labs/FLUX.1-dev"
ProgressFn = Callable[[int, int], None]


#: options applied at merge time (verification and filter); they never touch the images
MERGE_OPTIONS = ("plausible", "judge", "judge_model", "min_confidence", "min_samples", "clipscore_model", "clipscore_min")


@dataclass(frozen=True)
class NACConfig:
    """Everything that determines the output (worker and shard layout excluded)."""

    model: str = DEFAULT_MODEL
    contrasts: str | None = None
    plausible: str | None = None
    samples_per_contrast: int = 10
    steps: int = 28
    guidance: float = 3.5
    height: int = 1024
    width: int = 1024
    seed: int = 0
    limit: int | None = None
    max_sequence_length: int = 256
    judge: str = "qwen2.5-vl"
    judge_model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    min_confidence: float = 0.8
    min_samples: int = 10
    clipscore_model: str | None = None
    clipscore_min: float = 0.2

    def check(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise InvalidInputError(f"--limit must be ≥ 1, got {self.limit}")
        if self.samples_per_contrast < 1:
            raise InvalidInputError(f"--samples-per-contrast must be ≥ 1, got {self.samples_per_contrast}")
        if self.clipscore_min < 0:
            raise InvalidInputError(f"--clipscore-min must be ≥ 0 (CLIPScore is in [0, 2.5]), got {self.clipscore_min}")
        if self.steps < 1:
            raise InvalidInputError(f"--steps must be ≥ 1, got {self.steps}")
        from vgrc.evaluators.encoders.model_refs import check_clip_model, check_model_reference

        check_model_reference("--model", self.model, kind="diffusers")
        if self.judge != "none":
            check_model_reference("--judge-model", self.judge_model, kind="transformers")
        if self.clipscore_model:
            check_clip_model("--clipscore-model", self.clipscore_model)
        for name, v in (("--height", self.height), ("--width", self.width)):
            if v < 16 or v % 16:
                raise InvalidInputError(f"{name} must be a multiple of 16 and ≥ 16, got {v}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise InvalidInputError(f"--min-confidence must be in [0, 1], got {self.min_confidence}")
        if self.min_samples < 1:
            raise InvalidInputError(f"--min-samples must be ≥ 1, got {self.min_samples}")

    def _fields(self, names) -> dict:
        rec = {k: getattr(self, k) for k in names}
        for k in ("contrasts", "plausible"):
            if k in rec:
                rec[k] = os.path.abspath(rec[k]) if rec[k] else "shipped"
        return rec

    def record(self) -> dict:
        """The dataset's identity: only the options that change generated pixels.

        Merge-time options (judge, filter, prefilter, plausibility file) are not part of
        it: changing them re-merges with the existing images and cached judgments.
        """
        return self._fields(k for k in self.__dataclass_fields__ if k not in MERGE_OPTIONS)

    def merge_record(self) -> dict:
        """The merge-time options, recorded in the manifest under ``merge``."""
        return self._fields(MERGE_OPTIONS)


@dataclass
class NACResult:
    out: Path
    state: str
    pairs: int = 0
    generated: int = 0
    skipped: int = 0
    merged: bool = False
    counts: dict = field(default_factory=dict)


def shard_of(n_items: int, num_shards: int, shard_index: int) -> list[int]:
    """Indices this process generates: round-robin over shards × ``accelerate`` processes."""
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    total, index = num_shards * world, shard_index * world + rank
    return [i for i in range(n_items) if i % total == index]


def _model_reachable(model: str) -> None:
    """One line, at once, when FLUX weights are neither local nor fetchable."""
    from vgrc.evaluators.encoders.model_refs import require_model

    require_model("--model", model, "diffusers", "model", "or pass a local folder: --model PATH/TO/FLUX.1-dev")


def _check_cpu_offload(cpu_offload: bool) -> None:
    if not cpu_offload:
        return
    import torch

    if not torch.cuda.is_available():
        raise VgrcError("--cpu-offload needs a CUDA GPU and none is available; drop --cpu-offload to run on the CPU (slow)")


def load_flux(model: str, *, cpu_offload: bool = False, device: str | None = None):
    """``FluxPipeline.from_pretrained(model)`` on the right device and dtype."""
    import torch

    _check_cpu_offload(cpu_offload)
    _model_reachable(model)
    from diffusers import FluxPipeline

    if os.environ.get("VGRC_QUIET_LIBRARIES"):  # the CLI without --verbose: no "Loading pipeline components" bar
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
    cuda = torch.cuda.is_available()
    try:
        pipe = FluxPipeline.from_pretrained(model, torch_dtype=torch.bfloat16 if cuda else torch.float32)
    except (OSError, ValueError) as exc:
        raise VgrcError(f"cannot load --model {model}: {str(exc).splitlines()[0]}") from exc
    if cpu_offload:
        pipe.enable_model_cpu_offload()
    else:
        local = os.environ.get("LOCAL_RANK")
        pipe.to(device or (f"cuda:{local}" if cuda and local else "cuda" if cuda else "cpu"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate_pair(pipe, pair: NACPair, config: NACConfig):
    """The two images of a pair: ONE batched call, the same seed, one generator per image."""
    import torch

    gens = [torch.Generator(device="cpu").manual_seed(pair.seed) for _ in range(2)]
    result = pipe(
        prompt=[pair.prompt_a, pair.prompt_b],
        generator=gens,
        num_inference_steps=config.steps,
        guidance_scale=config.guidance,
        height=config.height,
        width=config.width,
        max_sequence_length=config.max_sequence_length,
        output_type="np",
    )
    return [(np.clip(img, 0, 1) * 255).round().astype(np.uint8) for img in result.images]


def _check_models(config: NACConfig, cpu_offload: bool, generating: bool) -> None:
    """Every model reference and the offload flag, before prompts, folders or hours of generation."""
    from vgrc.evaluators.encoders.model_refs import check_model_reference
    from vgrc.evaluators.judges.verify import check_judge

    _check_cpu_offload(cpu_offload)  # a wrong flag wastes nothing
    check_judge(config.judge, config.judge_model)
    if config.clipscore_model:
        check_model_reference("--clipscore-model", config.clipscore_model, kind="open_clip")
    if generating:
        _model_reachable(config.model)


def _generate(out: Path, result: NACResult, pairs, mine, config: NACConfig, cpu_offload: bool, device, on_progress) -> None:
    """This shard's pairs that have no images yet, generated and written atomically."""
    (out / SPLIT / "images").mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out / SPLIT / "images", {path.name for p in pairs for path in image_paths(out, p)})
    todo = [p for p in mine if not all(path.exists() for path in image_paths(out, p))]
    result.skipped = len(mine) - len(todo)
    if todo:
        pipe = load_flux(config.model, cpu_offload=cpu_offload, device=device)
        for n, pair in enumerate(todo, 1):
            for img, path in zip(generate_pair(pipe, pair, config), image_paths(out, pair)):
                atomic_write_bytes(path, encode_rgb_png(img))
            result.generated += 1
            if on_progress:
                on_progress(result.skipped + n, len(mine))


def build_nac(
    out: str | os.PathLike,
    config: NACConfig,
    *,
    dry_run: bool = False,
    num_shards: int = 1,
    shard_index: int = 0,
    merge: bool | None = None,
    cpu_offload: bool = False,
    device: str | None = None,
    overwrite: bool = False,
    command: str = "vgrc build-nac",
    on_progress: ProgressFn | None = None,
) -> NACResult:
    """Prompts, generation (this shard's pairs) and, when all shards are done, the merge.

    ``merge``: None = merge when this is the only shard and process; True = merge only
    (every pair must have its images); False = never.
    """
    config.check()
    if num_shards < 1:
        raise InvalidInputError(f"--num-shards must be ≥ 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise InvalidInputError(f"--shard-index must be in [0, --num-shards) = [0, {num_shards}), got {shard_index}")
    contrasts = load_nac_contrasts(config.contrasts)
    load_plausible(config.plausible)  # read and checked now (--dry-run too), not after hours of generation
    pairs = make_pairs(contrasts, config.samples_per_contrast, config.seed, config.limit)
    out = Path(out)
    files = nac_files(pairs)
    # ---- pre-flight: everything that can fail is checked before anything is written
    # builds before issue 9 recorded the merge options in their identity: compare without them
    state = check_output(out, DATASET, config.record(), overwrite=overwrite, files=files, legacy_keys=MERGE_OPTIONS)
    merge_only = merge is True
    mine = [] if merge_only else [pairs[i] for i in shard_of(len(pairs), num_shards, shard_index)]
    todo = mine if state in ("new", "replace") else [p for p in mine if not all(path.exists() for path in image_paths(out, p))]
    if not dry_run:
        _check_models(config, cpu_offload, bool(todo))
    if state == "complete":
        manifest = read_manifest(out)
        if dry_run or (not todo and manifest.get("merge") == config.merge_record()):
            return NACResult(out=out, state=state, pairs=len(pairs), skipped=len(mine),
                             merged=not dry_run, counts=dict(manifest.get("counts") or {}))
        # images to restore, or merge-time options changed: re-merge from the kept images
        # and cached judgments; not declared finished while its files are rewritten
        mark_unfinished(out, DATASET, config.record(), files=files)
        state = "refilter" if not todo else "resume"
    else:
        state = prepare_output(out, DATASET, config.record(), overwrite=overwrite, files=files, legacy_keys=MERGE_OPTIONS)
    result = NACResult(out=out, state=state, pairs=len(pairs))
    atomic_write_text(out / "prompts.jsonl", "".join(dumps_row(p.row()) + "\n" for p in pairs))
    if dry_run:
        return result
    _generate(out, result, pairs, mine, config, cpu_offload, device, on_progress)
    single = num_shards == 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1
    if merge is False or (merge is None and not single):
        return result
    missing = [p.pair_id for p in pairs if not all(path.exists() for path in image_paths(out, p))]
    if missing:
        raise VgrcError(f"cannot merge: {len(missing)} pair(s) have no images yet (first: {missing[0]}); finish every shard first")
    from vgrc.generators.nac.merge import merge_nac

    result.counts = merge_nac(out, pairs, config, device=device, command=command)
    result.merged = True
    return result
