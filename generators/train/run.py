"""``vgrc train``: train or fine-tune an open_clip model on a vgrc dataset folder.

The training itself is open_clip's own trainer, ``open_clip_train.main``, run as a child
process (:mod:`.child`) on its CSV input: its schedule (AdamW, warm-up, cosine decay),
its loss, its checkpoints (``logs/run/checkpoints/epoch_latest.pt`` after every epoch) and
its log (``logs/run/out.log``). vgrc prepares the input and the held-out split, turns the
trainer's log lines into a progress bar, resumes an interrupted run from its latest
epoch, and writes the result:

``model.pt``
    the trained weights (open_clip's checkpoint format, ``{"state_dict": …}``), loaded by
    ``vgrc eval --model MODEL --pretrained OUT/model.pt``;
``heldout/``
    a vgrc dataset of the held-out rows (a seeded ``--holdout`` share of the dataset's main
    split, never trained on; images referenced where they are), for
    ``vgrc eval --data OUT/heldout``; ``heldout_ids.txt`` lists them;
``train.csv``
    what the trainer read: every other row of every split (Synthetic Shapes: 80% of the
    compositions and the 42 primitives), image path and caption;
``train.log``, ``README.md`` (the card: recipe, counts, commands), ``run.json``.
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vgrc.evaluators import __version__
from vgrc.evaluators.atomic import atomic_write_text
from vgrc.evaluators.dataset import METADATA_NAME, finish_dataset, prepare_output, read_manifest, read_split, write_jsonl
from vgrc.evaluators.errors import InvalidInputError, VgrcError
from vgrc.evaluators.ownership import check_run_folder, claim_run_folder, read_run_record, write_run_marker
from vgrc.evaluators.retrieval_data import default_split

__all__ = ["TrainConfig", "TrainResult", "train", "train_files"]

ProgressFn = Callable[[int, int], None]
KIND = "train"
LOG_DIR, RUN_NAME = "logs", "run"
#: "Train Epoch: 0 [  256/10608 (2%)] ..." (open_clip_train.train.train_one_epoch)
_PROGRESS = re.compile(r"Train Epoch: (\d+) \[\s*(\d+)/(\d+)")
_LOSS = re.compile(r"Loss: ([0-9.]+)")


@dataclass
class TrainConfig:
    """Everything that determines the trained weights (a resumed run must match it)."""

    data: str
    model: str = "shapes-tiny"
    pretrained: str | None = None
    holdout: float = 0.2
    epochs: int = 6
    batch_size: int = 256
    lr: float = 2e-3
    wd: float = 0.1
    warmup: int = 10
    seed: int = 0
    precision: str = "fp32"
    #: per training row, this many of its annotated objects (seeded choice) also train as
    #: (crop of the box, the object's phrase) pairs; 0: the rows alone
    object_crops: int = 0
    #: data-loader processes of the trainer (not part of the result)
    workers: int = field(default=1, compare=False)

    def check(self) -> dict:
        """Every option, before anything is written or imported; return the dataset's manifest."""
        import math

        from vgrc.evaluators.encoders.model_refs import MODEL_ALIASES, check_clip_model

        manifest = read_manifest(self.data)
        check_clip_model("--model", self.model, self.pretrained)
        if ":" in self.model or self.model.startswith("hf-hub:") or (self.model in MODEL_ALIASES and MODEL_ALIASES[self.model][1]):
            raise InvalidInputError(f"--model {self.model!r}: vgrc train takes an architecture (e.g. shapes-tiny, ViT-B-32); "
                                    "start from weights with --pretrained PATH")
        if not (math.isfinite(self.holdout) and 0 <= self.holdout < 1):
            raise InvalidInputError(f"--holdout must be in [0, 1), got {self.holdout}")
        for option, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size)):
            if value < 1:
                raise InvalidInputError(f"{option} must be ≥ 1, got {value}")
        for option, value, positive in (("--lr", self.lr, True), ("--wd", self.wd, False)):
            if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
                raise InvalidInputError(f"{option} must be {'> 0' if positive else '≥ 0'}, got {value}")
        if self.object_crops < 0:
            raise InvalidInputError(f"--object-crops must be ≥ 0, got {self.object_crops}")
        if self.warmup < 0 or self.workers < 0:
            raise InvalidInputError(f"--warmup and --workers must be ≥ 0, got {self.warmup} and {self.workers}")
        if self.precision not in ("fp32", "amp", "amp_bf16", "bf16"):
            raise InvalidInputError(f"--precision {self.precision!r}: expected fp32, amp, amp_bf16 or bf16")
        return manifest

    def record(self) -> dict:
        out = asdict(self)
        out.pop("workers")
        out["data"] = os.path.abspath(self.data)
        out["pretrained"] = None if self.pretrained is None else os.path.abspath(self.pretrained)
        return out


@dataclass
class TrainResult:
    out: Path
    state: str
    counts: dict = field(default_factory=dict)
    final_loss: float | None = None
    seconds: float = 0.0


def train_files(epochs: int, heldout_split: str) -> list[str]:
    """Every file ``vgrc train`` writes (recorded in run.json: all --overwrite may delete)."""
    run = f"{LOG_DIR}/{RUN_NAME}"
    return sorted({
        "model.pt", "train.csv", "train.log", "README.md", "heldout_ids.txt",
        "heldout/manifest.json", "heldout/README.md", f"heldout/{heldout_split}/{METADATA_NAME}", "heldout/.vgrc-build.json",
        f"{run}/out.log", f"{run}/params.txt", f"{run}/checkpoints/epoch_latest.pt", f"{run}/checkpoints/tmp.pt",
        *(f"{run}/checkpoints/epoch_{e}.pt" for e in range(1, epochs + 1)),
    })


def split_rows(data: str, manifest: dict, holdout: float, seed: int) -> tuple[list[dict], list[dict], str]:
    """(training rows, held-out rows, the held-out split's name): a seeded ``holdout`` share
    of the main split's rows is held out; every other row of every split trains. Each row
    keeps its fields, with ``file_name`` made absolute."""
    main = default_split(manifest)
    train, held = [], []
    for split in manifest["splits"]:
        rows = read_split(data, split)
        base = Path(data).resolve() / split
        for r in rows:
            r["file_name"] = str(r["file_name"] if Path(r["file_name"]).is_absolute() else base / r["file_name"])
        if split == main and holdout > 0:
            ids = sorted(str(r["id"]) for r in rows)
            chosen = set(random.Random(seed).sample(ids, round(holdout * len(ids))))
            held += [r for r in rows if str(r["id"]) in chosen]
            rows = [r for r in rows if str(r["id"]) not in chosen]
        train += rows
    if not train:
        raise InvalidInputError(f"--holdout {holdout} leaves no row of {data} to train on")
    return train, held, main


def train(out: str | os.PathLike, config: TrainConfig, *, overwrite: bool = False, command: str = "vgrc train",
          on_progress: ProgressFn | None = None) -> TrainResult:
    """Train (or resume training) into ``out``; see the module documentation."""
    manifest = config.check()
    out = Path(out)
    train_rows, held_rows, main = split_rows(config.data, manifest, config.holdout, config.seed)
    crops = choose_object_crops(train_rows, config.object_crops, config.seed)
    files = sorted({*train_files(config.epochs, main), *(name for name, _, _ in crops)})
    state = _claim(out, overwrite, files, config.record())
    t0 = time.perf_counter()
    crop_rows = write_object_crops(out, crops)
    atomic_write_text(out / "train.csv", _csv(train_rows + crop_rows))
    atomic_write_text(out / "heldout_ids.txt", "".join(f"{r['id']}\n" for r in held_rows))
    _write_heldout(out / "heldout", held_rows, main, manifest, config, command)
    final_loss = _run_trainer(out, config, len(train_rows) + len(crop_rows), on_progress)
    _export_weights(out)
    counts = {"train_rows": len(train_rows), "object_crops": len(crop_rows), "heldout_rows": len(held_rows), "heldout_split": main}
    result = TrainResult(out, state, counts, final_loss, time.perf_counter() - t0)
    atomic_write_text(out / "README.md", _card(config, result, manifest, command))
    write_run_marker(out, {"kind": KIND, "complete": True, "files": sorted({*files, "run.json"}), "config": config.record(),
                           "counts": counts, "final_loss": final_loss, "seconds": result.seconds, "vgrc": __version__, "command": command})
    return result


def choose_object_crops(rows: list[dict], per_row: int, seed: int) -> list[tuple[str, dict, dict]]:
    """``(file name under OUT, row, object)`` for ``per_row`` of each row's objects with a
    box (a seeded choice; all of them when the row has fewer)."""
    if per_row == 0:
        return []
    rng = random.Random(seed)
    out = []
    for i, row in enumerate(rows):
        boxed = [(j, o) for j, o in enumerate(row.get("objects") or []) if o.get("bbox") is not None]
        for j, obj in sorted(rng.sample(boxed, min(per_row, len(boxed))), key=lambda t: t[0]):
            out.append((f"crops/{i:06d}-{j:02d}.png", row, obj))
    if not out:
        raise InvalidInputError("--object-crops: no training row has objects with a bbox to crop")
    return out


def write_object_crops(out: Path, crops: list[tuple[str, dict, dict]]) -> list[dict]:
    """Write each chosen object's box as a PNG (the box exactly, as ``--candidate-objects
    boxes`` cuts it) and return the (crop, phrase) training rows."""
    from vgrc.evaluators.objects.regions import box_picture, clamp_box, read_image
    from vgrc.evaluators.retrieval_data import object_phrase

    rows = []
    if crops:
        (out / "crops").mkdir(parents=True, exist_ok=True)
    for name, row, obj in crops:
        image = read_image(row["file_name"])
        box = clamp_box(obj["bbox"], *image.size)
        if box is None:
            continue
        box_picture(image, box, "crop").save(out / name)
        rows.append({"file_name": str((out / name).resolve()), "caption": object_phrase(obj)})
    return rows


def _claim(out: Path, overwrite: bool, files: list[str], record: dict) -> str:
    """Claim ``out``; an unfinished run with the same config keeps its checkpoints (the
    trainer resumes from the latest epoch), anything else starts over."""
    state = check_run_folder(out, overwrite, KIND)
    previous = read_run_record(out) or {}
    if state == "resume" and previous.get("config") == record:
        write_run_marker(out, {"kind": KIND, "complete": False, "config": record, "files": sorted({*files, "run.json", *previous.get("files", [])})})
        return state
    return claim_run_folder(out, overwrite or state == "resume", KIND, files, record)


def _csv(rows: list[dict]) -> str:
    """open_clip_train's CSV input: tab-separated image path and caption (one line each)."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(["filepath", "title"])
    writer.writerows([r["file_name"], " ".join(str(r["caption"]).split())] for r in rows)
    return buf.getvalue()


def _write_heldout(folder: Path, rows: list[dict], split: str, manifest: dict, config: TrainConfig, command: str) -> None:
    """The held-out rows as a dataset of their own (images referenced where they are)."""
    record = {"source": os.path.abspath(config.data), "source_dataset": manifest.get("dataset"), "holdout": config.holdout, "seed": config.seed}
    files = ["README.md", f"{split}/{METADATA_NAME}"]
    prepare_output(folder, "heldout", record, overwrite=True, files=files)
    (folder / split).mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / split / METADATA_NAME, rows)
    atomic_write_text(folder / "README.md", f"# Held out by vgrc train\n\nThe {len(rows):,} rows of `{config.data}` (split `{split}`) that "
                      f"`{command}` kept out of training (a seeded {config.holdout:g} share, seed {config.seed}). Evaluate on them:\n\n"
                      f"    vgrc eval --data {folder} --model {config.model} --pretrained {folder.parent / 'model.pt'}\n")
    keep = {k: manifest[k] for k in ("objects_source", "recommended", "query_categories") if k in manifest}
    finish_dataset(folder, "heldout", record, version=__version__, command=command, seed=config.seed, splits=[split],
                   extra={**keep, "heldout_from": manifest.get("dataset")}, files=files)


def trainer_args(out: Path, config: TrainConfig) -> list[str]:
    """open_clip_train.main's arguments for this run (always ``--resume latest``)."""
    from vgrc.evaluators.encoders.model_refs import MODEL_ALIASES

    arch = MODEL_ALIASES[config.model][0] if config.model in MODEL_ALIASES else config.model
    args = ["--train-data", str(out / "train.csv"), "--dataset-type", "csv", "--csv-img-key", "filepath", "--csv-caption-key", "title",
            "--csv-separator", "\t", "--model", arch, "--batch-size", str(config.batch_size), "--lr", str(config.lr), "--wd", str(config.wd),
            "--epochs", str(config.epochs), "--warmup", str(config.warmup), "--workers", str(config.workers), "--seed", str(config.seed),
            "--precision", config.precision, "--device", "cpu", "--logs", str(out / LOG_DIR), "--name", RUN_NAME, "--save-frequency", "1",
            "--save-most-recent", "--delete-previous-checkpoint", "--resume", "latest", "--log-every-n-steps", "1", "--report-to", ""]
    if config.pretrained:
        args += ["--pretrained", str(Path(config.pretrained).resolve())]
    return args


def _run_trainer(out: Path, config: TrainConfig, n_rows: int, on_progress: ProgressFn | None) -> float | None:
    """Run the trainer as a child process; its output goes to ``train.log`` and its
    "Train Epoch" lines drive the progress bar. Returns the last logged loss."""
    total = config.epochs * n_rows
    _promote_newest_checkpoint(out / LOG_DIR / RUN_NAME / "checkpoints")
    cmd = [sys.executable, "-m", "vgrc.generators.train.child", *trainer_args(out, config)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    loss = None
    with open(out / "train.log", "a", encoding="utf-8") as log:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            for line in child.stdout:
                log.write(line)
                found = _PROGRESS.search(line)
                if found and on_progress:
                    epoch, done, per_epoch = map(int, found.groups())
                    on_progress(min(total, epoch * n_rows + done * n_rows // max(per_epoch, 1)), total)
                loss = float(m.group(1)) if (m := _LOSS.search(line)) else loss
            code = child.wait()
        except BaseException:
            child.terminate()
            child.wait()
            raise
    if code != 0:
        tail = (out / "train.log").read_text(encoding="utf-8").strip().splitlines()[-3:]
        raise VgrcError(f"open_clip's trainer stopped with exit code {code}: {' | '.join(tail) or 'no output'} (full log: {out / 'train.log'})")
    if on_progress:
        on_progress(total, total)
    return loss


def _promote_newest_checkpoint(folder: Path) -> None:
    """Make the newest whole ``epoch_N.pt`` the ``epoch_latest.pt`` the trainer resumes from.

    The trainer writes ``epoch_N.pt``, then ``epoch_latest.pt``; a run killed between the
    two would otherwise restart from scratch (``--resume latest`` looks at the latter
    only). A checkpoint cut short by the kill is not a whole zip archive and is skipped."""
    import shutil
    import zipfile

    epochs = sorted((int(m.group(1)), p) for p in folder.glob("epoch_*.pt") if (m := re.fullmatch(r"epoch_(\d+)\.pt", p.name)))
    latest = folder / "epoch_latest.pt"
    newest = next((p for _, p in reversed(epochs) if zipfile.is_zipfile(p)), None)
    if newest is None or (latest.exists() and zipfile.is_zipfile(latest) and latest.stat().st_mtime >= newest.stat().st_mtime):
        return
    tmp = folder / "tmp.pt"
    shutil.copyfile(newest, tmp)
    os.replace(tmp, latest)


def _export_weights(out: Path) -> None:
    """``model.pt``: the latest checkpoint's weights alone, written atomically."""
    import torch

    from vgrc.evaluators.atomic import atomic_replace_with

    checkpoint = torch.load(out / LOG_DIR / RUN_NAME / "checkpoints" / "epoch_latest.pt", map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in checkpoint["state_dict"].items()}
    atomic_replace_with(out / "model.pt", lambda tmp: torch.save({"state_dict": state, "epoch": checkpoint.get("epoch")}, tmp))


def _card(config: TrainConfig, result: TrainResult, manifest: dict, command: str) -> str:
    c = result.counts
    return (
        f"# {config.model} trained by vgrc train\n\n"
        f"- data: `{config.data}` ({manifest.get('dataset')}); {c['train_rows']:,} training rows, {c['heldout_rows']:,} held out "
        f"(a seeded {config.holdout:g} share of split `{c['heldout_split']}`, seed {config.seed}; `heldout_ids.txt`)\n"
        f"- recipe: open_clip_train, {config.epochs} epoch(s), batch {config.batch_size}, lr {config.lr:g}, wd {config.wd:g}, "
        f"warm-up {config.warmup} steps, {config.precision}" + (f", from `{config.pretrained}`" if config.pretrained else ", from random weights")
        + (f"; plus {c['object_crops']:,} object crops captioned with their phrases (--object-crops {config.object_crops})" if config.object_crops else "") + "\n"
        f"- final training loss: {result.final_loss}\n- command: `{command}`\n\n"
        "Evaluate on the held-out rows and on the whole dataset:\n\n"
        f"    vgrc eval --data {result.out / 'heldout'} --model {config.model} --pretrained {result.out / 'model.pt'} --rerank fgw\n"
        f"    vgrc eval --data {config.data} --model {config.model} --pretrained {result.out / 'model.pt'}\n\n"
        "The model is trained on synthetic renderings only: it shows whether a method works on a model with real semantics; "
        "it is no substitute for the paper's CLIP on real images.\n"
    )

