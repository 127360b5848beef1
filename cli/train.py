"""``vgrc train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vgrc.cli.console import command_line, progress_bar, stdout, user_errors
from vgrc.cli.options import Debug, OutDir, Overwrite, Quiet, Seed


def train_command(
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder built by a vgrc builder (every split trains, less the held-out rows).", show_default=False)],
    out: OutDir,
    model: Annotated[str, typer.Option("--model", "-m", help="open_clip architecture: shapes-tiny (vgrc's small CLIP for 64-px Synthetic Shapes), tiny-random, or any open_clip ARCH.")] = "shapes-tiny",
    pretrained: Annotated[Optional[Path], typer.Option("--pretrained", help="Start from these weights (a local open_clip checkpoint) instead of random ones.", show_default=False)] = None,
    holdout: Annotated[float, typer.Option("--holdout", help="Seeded share of the main split kept out of training, written as the dataset OUT/heldout (0 = train on everything).")] = 0.2,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training rows.")] = 6,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Image-caption pairs per step (the contrastive batch).")] = 256,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (AdamW, cosine decay after the warm-up).")] = 2e-3,
    wd: Annotated[float, typer.Option("--wd", help="Weight decay.")] = 0.1,
    warmup: Annotated[int, typer.Option("--warmup", help="Warm-up steps.")] = 10,
    object_crops: Annotated[int, typer.Option("--object-crops", help="Also train on N annotated objects of each row, cut out by their boxes and captioned with "
                                              "their phrases (\"red circle\"), so the model knows objects on their own (what --candidate-objects boxes shows it).")] = 0,
    precision: Annotated[str, typer.Option("--precision", help="fp32, amp, amp_bf16 or bf16 (open_clip_train's names).")] = "fp32",
    workers: Annotated[int, typer.Option("--workers", help="Data-loader processes of the trainer (0 = the training process itself).")] = 1,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Train (or fine-tune) an open_clip model on a vgrc dataset with open_clip's own trainer.

    Writes OUT/model.pt (for vgrc eval --model MODEL --pretrained OUT/model.pt), the
    held-out rows as the dataset OUT/heldout, the trainer's log and a card. An interrupted
    run resumes from its latest epoch when the same command is run again.

    Examples:

        vgrc gen-shapes --out data/shapes && vgrc train --data data/shapes --out models/shapes-tiny

        vgrc eval --data models/shapes-tiny/heldout --model shapes-tiny --pretrained models/shapes-tiny/model.pt --rerank fgw
    """
    from vgrc.generators.train.run import TrainConfig, train

    with user_errors(debug):
        config = TrainConfig(data=str(data), model=model, pretrained=None if pretrained is None else str(pretrained), holdout=holdout,
                             epochs=epochs, batch_size=batch_size, lr=lr, wd=wd, warmup=warmup, seed=seed, precision=precision, workers=workers, object_crops=object_crops)
        with progress_bar(f"training {model}", quiet) as on_progress:
            result = train(out, config, overwrite=overwrite, command=command_line(), on_progress=on_progress)
    if not quiet:
        c = result.counts
        stdout.print(f"{result.out}: {model} trained on {c['train_rows']:,} rows in {result.seconds:.0f} s (final loss {result.final_loss}); "
                     f"{c['heldout_rows']:,} held out in {result.out / 'heldout'}; weights {result.out / 'model.pt'}")
