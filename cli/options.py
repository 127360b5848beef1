"""Option types shared by every command (``Annotated`` aliases, as in spaCy's CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vgrc.evaluators.encoders.pixels import PREPROCESS_MODES

OutDir = Annotated[Path, typer.Option("--out", "-o", help="Output folder.", show_default=False)]
Seed = Annotated[int, typer.Option("--seed", help="Seed of every random choice; same command + seed → same bytes.")]
Limit = Annotated[
    Optional[int],
    typer.Option("--limit", help="Keep a seeded, deterministic subset of N items (smoke runs).", show_default=False),
]
Workers = Annotated[
    Optional[int],
    typer.Option("--workers", help="Worker processes [default: CPU count, at most 8].", show_default=False),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace what vgrc wrote before at --out (never files vgrc did not write).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summaries; errors only.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]

# --- model and encoding options shared by `vgrc eval` and `vgrc diagnose`
Pretrained = Annotated[Optional[str], typer.Option("--pretrained", help="Local checkpoint file for --model ARCH.", show_default=False)]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Images or texts per forward pass.")]
PreprocessMode = Annotated[
    str,
    typer.Option("--preprocess", help="How images become pixels: " + "; ".join(f"{k}: {v}" for k, v in PREPROCESS_MODES.items()) + ". fast and device keep their own embedding caches; with device, --decode-workers counts host decode threads."),
]
DecodeWorkers = Annotated[
    Optional[int],
    typer.Option("--decode-workers", help="Processes decoding images and tokenising texts ahead of the model; 0 = threads [default: 0 on CPU, CPU cores − 1 (at most 16) with --device cuda].", show_default=False),
]
Precision = Annotated[str, typer.Option("--precision", help="fp32, fp16 or bf16.")]
CacheDir = Annotated[
    Optional[Path],
    typer.Option("--cache-dir", help="Embedding cache, shared by eval and diagnose (and the default dataset) [default: $VGRC_CACHE or ~/.cache/vgrc].", show_default=False),
]
Split = Annotated[Optional[str], typer.Option("--split", help="Split to use [default: the dataset's main split].", show_default=False)]
