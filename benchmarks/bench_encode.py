"""Benchmark: does vgrc's encoding keep the model busy? (issue 13 §1)

For each model × precision, on the same images and texts:

- **bare forward**: images already decoded and preprocessed, texts already tokenised, on
  the device; only the model's forward pass (``ClipEncoder.encode_pixels`` /
  ``model.encode_text``) is timed.
- **vgrc**: ``ClipEncoder.encode_image_bytes`` from PNG or JPEG bytes (decode, resize,
  normalise, transfer, forward) and ``ClipEncoder.encode_texts`` from strings — with the
  decode/tokenise worker processes (``--workers``, default: the device's default) and with
  the in-process threads (``--decode-workers 0``).

efficiency = vgrc items/s ÷ bare items/s. Each timing is the best of ``--repeats`` runs
after a warm-up. The images are synthetic photographs-like pictures (smooth colour fields
with noise and shapes, 320 × 240) saved as PNG and as JPEG (quality 90); random weights
(no download). Bit-identity of the worker path is checked on every configuration: its
embeddings against the threaded path's, and its preprocessed pixels against open_clip's
own ``preprocess`` on the CPU (``pixels_identical``).

The same for ``--preprocess fast`` (torchvision decoding and uint8 resizing) and
``--preprocess device`` (resizing, and on CUDA nvJPEG decoding, on the device): images/s
and efficiency, and the deviation from the exact path on a PNG and a JPEG batch — the
largest pixel difference (levels of 255), the share of differing values, and the largest
1 − cosine between the two embeddings of an image. ``device``'s decode + resize alone
(no model) is printed with the decode ceilings, also on pictures of 36 sizes within ±3% of
the others' (``_mixed``: the path resizes each size as one group, so a real gallery's many
sizes cost more calls; only that differs). What one size group costs the issuing thread is
timed on tiny images against torchvision's ``resize`` + ``center_crop`` (the baseline it
replaced, in the same run): ``device_group_us`` / ``device_group_baseline_us``.

Usage::

    python benchmarks/bench_encode.py                   # CPU: tiny-random and ViT-B-32, fp32
    python benchmarks/bench_encode.py --device cuda     # ViT-B-32 bf16, ViT-L-14 bf16, ViT-B-32 fp32

Last line: ``RESULT encode_efficiency_img=<f> encode_efficiency_txt=<f> …`` where the two
headline numbers are the first model × precision's (PNG for images).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np


def _picture(seed: int, h: int = 240, w: int = 320) -> tuple[bytes, bytes]:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * x * rng.random() + rng.random() * 6) * 90 + 128 + 40 * y for _ in range(3)], -1)
    base += rng.normal(0, 8, base.shape)
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = rng.integers(0, w - 60), rng.integers(0, h - 60)
        draw.ellipse([x0, y0, x0 + rng.integers(20, 60), y0 + rng.integers(20, 60)], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    png, jpg = io.BytesIO(), io.BytesIO()
    im.save(png, format="PNG")
    im.save(jpg, format="JPEG", quality=90)
    return png.getvalue(), jpg.getvalue()


def pictures(n: int) -> tuple[list, list]:
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        both = list(pool.map(_picture, range(n), chunksize=32))
    return [(f"{i}.png", p) for i, (p, _) in enumerate(both)], [(f"{i}.jpg", j) for i, (_, j) in enumerate(both)]


#: 36 sizes within ±3% of 240 × 320, so that only the number of distinct sizes differs from
#: ``pictures`` (each batch of 256 holds all 36; a real gallery's batches hold as many or more)
MIXED_SIZES = [(h, w) for h in (236, 238, 240, 242, 244, 246) for w in (316, 318, 320, 322, 324, 326)]


def _mixed_picture(seed: int) -> tuple[bytes, bytes]:
    return _picture(seed, *MIXED_SIZES[seed % len(MIXED_SIZES)])


def mixed_pictures(n: int) -> tuple[list, list]:
    """Like :func:`pictures`, in the 36 ``MIXED_SIZES`` in turn: batches of many sizes, as
    real galleries give (the device path resizes each size as one group), at the same cost
    per image otherwise."""
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        both = list(pool.map(_mixed_picture, range(n), chunksize=32))
    return [(f"{i}.png", p) for i, (p, _) in enumerate(both)], [(f"{i}.jpg", j) for i, (_, j) in enumerate(both)]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _best(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def decode_ceiling(model: str, device: str, workers: int | None, batch: int, png, jpg, preprocess: str = "exact") -> dict:
    """Images/s of decoding + preprocessing alone: one process, and the worker pool."""
    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model

    enc = ClipEncoder(resolve_model(model), device="cpu", batch_size=batch, decode_workers=workers if workers is not None else 0, preprocess=preprocess)
    enc.load()
    out = {}
    for fmt, items in (("png", png), ("jpeg", jpg)):
        sample = items[: min(len(items), 400)]
        t0 = time.perf_counter()
        for n, d in sample:
            enc._decode(d, n)
        out[f"{preprocess}_one_process_{fmt}"] = len(sample) / (time.perf_counter() - t0)
    n_workers = workers if workers is not None else __import__("vgrc.evaluators.encoders.workers", fromlist=["x"]).default_workers(device)
    if n_workers:
        enc.decode_workers = n_workers
        pool = enc._decode_workers()
        for fmt, items in (("png", png), ("jpeg", jpg)):
            for _ in pool.batches(items[: 2 * batch]):  # warm-up
                pass
            t0 = time.perf_counter()
            for _ in pool.batches(items):
                pass
            out[f"{preprocess}_{n_workers}_workers_{fmt}"] = len(items) / (time.perf_counter() - t0)
        enc.close()
    return out


def sharing_model(encoder, **options):
    """Another ClipEncoder with ``encoder``'s settings and ``options``, on the same loaded
    model (same weights, no second load)."""
    from vgrc.evaluators.encoders.clip import ClipEncoder

    kwargs = {"device": encoder.device, "precision": encoder.precision, "batch_size": encoder.batch_size, **options}
    other = ClipEncoder(encoder.spec, **kwargs)
    other.model, other.preprocess, other.tokenizer, other.dim = encoder.model, encoder.preprocess, encoder.tokenizer, encoder.dim
    return other


def measure_mode(exact_encoder, mode: str, png, jpg, repeats: int, bare_img_s: float) -> dict:
    """``--preprocess MODE`` (fast, device) on ``exact_encoder``'s model, device and workers:
    images/s through vgrc and its deviation from the exact path (largest pixel difference
    in levels of 255, share of differing pixel values, largest 1 − cosine)."""
    other = sharing_model(exact_encoder, decode_workers=exact_encoder.decode_workers, preprocess=mode)
    device, batch = exact_encoder.device, exact_encoder.batch_size
    out = {}
    other.encode_image_bytes(png[: 4 * batch])  # warm-up (the worker pool starts, kernels load)
    for fmt, items in (("png", png), ("jpeg", jpg)):
        out[f"{mode}_{fmt}_img_s"] = len(items) / _best(lambda items=items: other.encode_image_bytes(items), repeats, device)
        out[f"{mode}_eff_{fmt}"] = out[f"{mode}_{fmt}_img_s"] / bare_img_s
    sample = (png[:batch] + jpg[:batch])
    a, b = exact_encoder.encode_image_bytes(sample), other.encode_image_bytes(sample)
    out[f"{mode}_max_one_minus_cos"] = float((1 - (a * b).sum(1)).max())
    pa = np.stack([exact_encoder._decode(d, n) for n, d in sample]).astype(int)
    if mode == "device":
        pb = other._device_pixels()(sample)[0].cpu().numpy().astype(int)
    else:
        pb = np.stack([other._decode(d, n) for n, d in sample]).astype(int)
    out[f"{mode}_max_pixel_diff"] = int(np.abs(pa - pb).max())
    out[f"{mode}_share_pixels_differ"] = float(np.mean(pa != pb))
    other.close()
    return out


def device_ceiling(model: str, device: str, threads: int | None, batch: int, png, jpg, mixed: tuple[list, list] = ([], [])) -> dict:
    """Images/s of ``--preprocess device``'s decoding + resizing alone (no model): on CUDA,
    nvJPEG for the JPEGs and host threads + GPU resize for the PNGs; ``mixed`` (PNG, JPEG)
    pictures of many sizes give the ``_mixed`` figures."""
    from vgrc.evaluators.encoders.device_pixels import DevicePixels, default_threads
    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model

    enc = ClipEncoder(resolve_model(model), device="cpu").load()
    n = threads or default_threads()
    prep = DevicePixels.from_pil_steps(enc._tensor_tail()[0], device, n)
    out = {}
    for fmt, items in (("png", png), ("jpeg", jpg), ("png_mixed", mixed[0]), ("jpeg_mixed", mixed[1])):
        if not items:
            continue

        def run(items=items):
            for s in range(0, len(items), batch):
                prep(items[s : s + batch])
        run(items[: 2 * batch])  # warm-up
        out[f"device_{n}_threads_{fmt}"] = len(items) / _best(run, 1, device)
    prep.close()
    return out


def group_dispatch(device: str, groups: int = 256, repeats: int = 5) -> tuple[float, float]:
    """Microseconds per size group of ``--preprocess device``'s resize, and of the baseline
    it replaced in the same run (torchvision's ``resize`` per pass and ``center_crop``,
    as up to commit c8f3f16). The images are tiny (6–13 × 7–262 → 4 × 4) and each of its own
    size, already on the device: the pixels cost nothing, so what is timed is what each
    image of a gallery of mixed sizes costs the thread that issues its operations. The two
    outputs are checked equal."""
    import torch
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Resize
    from torchvision.transforms.v2 import functional as F

    from vgrc.evaluators.encoders.device_pixels import DevicePixels
    from vgrc.evaluators.encoders.pixels import vertical_first

    prep = DevicePixels.from_pil_steps(Compose([Resize(4, interpolation=InterpolationMode.BICUBIC), CenterCrop(4)]), device)
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 6 + i % 8, 7 + i), dtype=torch.uint8, generator=g).to(device) for i in range(groups)]

    def baseline():
        out = []
        for image in images:
            h, w = image.shape[-2:]
            out_h, out_w = prep.output_size(h, w)
            x = torch.stack([image.to(device, non_blocking=True)])
            for target in ((out_h, w) if vertical_first(h, w, out_h, out_w) else (h, out_w), (out_h, out_w)):
                if tuple(x.shape[-2:]) != target:
                    x = F.resize(x.float(), list(target), interpolation=prep.interpolation, antialias=True).add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)
            out.append(F.center_crop(x, list(prep.crop))[0])
        return torch.stack(out).permute(0, 2, 3, 1)

    if not torch.equal(prep._resize_all(images), baseline()):
        raise SystemExit("group_dispatch: the resize differs from its baseline")
    return (_best(lambda: prep._resize_all(images), repeats, device) * 1e6 / groups, _best(baseline, repeats, device) * 1e6 / groups)


def measure(model: str, precision: str, device: str, workers: int | None, batch: int, png, jpg, texts, repeats: int) -> dict:
    import torch

    from vgrc.evaluators.encoders.clip import ClipEncoder
    from vgrc.evaluators.encoders.models import resolve_model

    spec = resolve_model(model)
    procs = ClipEncoder(spec, device=device, precision=precision, batch_size=batch, decode_workers=workers).load()
    threads = sharing_model(procs, decode_workers=0)
    out = {"model": model, "precision": precision, "workers": procs.decode_workers}

    # bare forward on preprocessed pixels / tokens already on the device
    pixels = [procs._finish([procs._decode(d, n) for n, d in png[s : s + batch]], device) for s in range(0, len(png), batch)]
    tokens = [procs.tokenizer(texts[s : s + batch]).to(device) for s in range(0, len(texts), batch)]

    def bare_images():
        for px in pixels:
            procs.encode_pixels(px)

    def bare_texts():
        with torch.no_grad(), procs._autocast():
            for t in tokens:
                torch.nn.functional.normalize(procs.model.encode_text(t).float(), dim=-1).cpu()

    bare_images(), bare_texts()  # warm-up (kernels, autotuning)
    procs.encode_image_bytes(png[: 4 * batch]), procs.encode_texts(texts[: 4 * batch])
    out["bare_img_s"] = len(png) / _best(bare_images, repeats, device)
    out["bare_txt_s"] = len(texts) / _best(bare_texts, repeats, device)
    for fmt, items in (("png", png), ("jpeg", jpg)):
        out[f"vgrc_{fmt}_img_s"] = len(items) / _best(lambda items=items: procs.encode_image_bytes(items), repeats, device)
        out[f"threads_{fmt}_img_s"] = len(items) / _best(lambda items=items: threads.encode_image_bytes(items), repeats, device)
    out["vgrc_txt_s"] = len(texts) / _best(lambda: procs.encode_texts(texts), repeats, device)
    out["threads_txt_s"] = len(texts) / _best(lambda: threads.encode_texts(texts), repeats, device)

    # bit-identity: worker path vs threaded path, and the pixels vs open_clip's preprocess
    sample = png[: 2 * batch + 7]
    a, b = procs.encode_image_bytes(sample), threads.encode_image_bytes(sample)
    out["max_abs_diff_workers_vs_threads"] = float(np.abs(a - b).max())
    from PIL import Image

    ref = torch.stack([procs.preprocess(Image.open(io.BytesIO(d))) for _, d in png[:batch]])
    got = procs._finish([procs._decode(d, n) for n, d in png[:batch]], device).cpu()
    out["pixels_identical"] = bool(torch.equal(ref, got))
    out["eff_png"] = out["vgrc_png_img_s"] / out["bare_img_s"]
    out["eff_jpeg"] = out["vgrc_jpeg_img_s"] / out["bare_img_s"]
    out["eff_txt"] = out["vgrc_txt_s"] / out["bare_txt_s"]
    for mode in ("fast", "device"):
        try:  # a failing opt-in path must not lose the exact path's figures (a GPU lease is short)
            out.update(measure_mode(procs, mode, png, jpg, repeats, out["bare_img_s"]))
        except Exception:  # noqa: BLE001 - reported, then the next mode
            import traceback

            traceback.print_exc()
    procs.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", default=None,
                        help="comma-separated MODEL:PRECISION [default: tiny-random:fp32,ViT-B-32:fp32 on CPU; ViT-B-32:bf16,ViT-L-14:bf16,ViT-B-32:fp32 on cuda]")
    parser.add_argument("--images", type=int, default=None, help="[default: 512 on CPU, 4000 on cuda]")
    parser.add_argument("--texts", type=int, default=None, help="[default: 2048 on CPU, 20000 on cuda]")
    parser.add_argument("--batch-size", type=int, default=None, help="[default: 64 on CPU, 256 on cuda]")
    parser.add_argument("--workers", type=int, default=None, help="decode/tokenise processes [default: the device's default]")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    configs = [c.split(":") for c in (args.configs or ("ViT-B-32:bf16,ViT-L-14:bf16,ViT-B-32:fp32" if gpu else "tiny-random:fp32,ViT-B-32:fp32")).split(",")]
    n_img, n_txt = args.images or (4000 if gpu else 512), args.texts or (20000 if gpu else 2048)
    batch = args.batch_size or (256 if gpu else 64)
    png, jpg = pictures(n_img)
    texts = [f"a photo of a {c} {s} next to a {c2} {s2} on a table, number {i}" for i, (c, s, c2, s2) in
             enumerate(zip(["red", "blue", "green", "yellow"] * n_txt, ["cube", "sphere", "cylinder"] * n_txt, ["gray", "purple"] * n_txt, ["car", "dog", "tree"] * n_txt))][:n_txt]
    if gpu:
        import torch

        print(f"device: {torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores", flush=True)
    ceiling = decode_ceiling(configs[0][0], args.device, args.workers, batch, png, jpg)
    ceiling.update(decode_ceiling(configs[0][0], args.device, args.workers, batch, png, jpg, preprocess="fast"))
    try:
        ceiling.update(device_ceiling(configs[0][0], args.device, args.workers, batch, png, jpg, mixed_pictures(len(png))))
    except Exception:  # noqa: BLE001 - reported; the other measurements go on
        import traceback

        traceback.print_exc()
    print("decode only (no model): " + ", ".join(f"{k} {v:.0f} img/s" for k, v in ceiling.items()), flush=True)
    group_us, group_baseline_us = group_dispatch(args.device)
    print(f"--preprocess device, per size group: {group_us:.1f} µs to issue (torchvision's resize + center_crop: {group_baseline_us:.1f} µs)", flush=True)
    rows = []
    for model, precision in configs:
        try:
            r = measure(model, precision, args.device, args.workers, batch, png, jpg, texts, args.repeats)
        except Exception:  # noqa: BLE001 - report and go on to the next configuration
            import traceback

            traceback.print_exc()
            continue
        rows.append(r)
        print(f"{model:<12}{precision:<6} workers={r['workers']:<3} bare {r['bare_img_s']:>9.0f} img/s | vgrc PNG {r['vgrc_png_img_s']:>8.0f} "
              f"({r['eff_png']:.2f}) JPEG {r['vgrc_jpeg_img_s']:>8.0f} ({r['eff_jpeg']:.2f}) | threads PNG {r['threads_png_img_s']:>7.0f} "
              f"JPEG {r['threads_jpeg_img_s']:>7.0f} | texts bare {r['bare_txt_s']:>8.0f} vgrc {r['vgrc_txt_s']:>8.0f} ({r['eff_txt']:.2f}) "
              f"threads {r['threads_txt_s']:>7.0f} | identical: pixels {r['pixels_identical']}, max |Δ| workers−threads {r['max_abs_diff_workers_vs_threads']:.1e}",
              flush=True)
        for mode in (m for m in ("fast", "device") if f"{m}_eff_png" in r):
            print(f"{'':<18}--preprocess {mode:<6}: PNG {r[mode + '_png_img_s']:>8.0f} ({r[mode + '_eff_png']:.2f}) JPEG {r[mode + '_jpeg_img_s']:>8.0f} "
                  f"({r[mode + '_eff_jpeg']:.2f}) | vs exact: max pixel |Δ| {r[mode + '_max_pixel_diff']}/255 in {100 * r[mode + '_share_pixels_differ']:.3f}% of values, "
                  f"max 1−cos {r[mode + '_max_one_minus_cos']:.1e}", flush=True)
    if not rows:
        raise SystemExit("no configuration could be measured")
    head = rows[0]
    parts = [f"encode_efficiency_img={head['eff_png']:.3f}", f"encode_efficiency_txt={head['eff_txt']:.3f}"]
    for r in rows:
        tag = f"{r['model'].replace('-', '_')}_{r['precision']}"
        parts += [f"{tag}_png={r['eff_png']:.3f}", f"{tag}_jpeg={r['eff_jpeg']:.3f}", f"{tag}_txt={r['eff_txt']:.3f}",
                  *(f"{tag}_{m}_{key}={r[f'{m}_{field}']:{spec}}" for m in ("fast", "device") if f"{m}_eff_png" in r
                    for key, field, spec in (("png", "eff_png", ".3f"), ("jpeg", "eff_jpeg", ".3f"), ("max_1mcos", "max_one_minus_cos", ".1e")))]
    parts.append(f"pixels_identical={all(r['pixels_identical'] for r in rows)}")
    parts += [f"device_group_us={group_us:.1f}", f"device_group_baseline_us={group_baseline_us:.1f}"]
    print("RESULT " + " ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
