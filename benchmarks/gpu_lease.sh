#!/usr/bin/env bash
# Every GPU measurement of issue 13 in one device run (about 8 minutes on an H200), the one
# the open goal needs first, so that a run cut short by its time limit keeps it:
# 1. benchmarks/bench_encode.py --device cuda --configs ViT-B-32:bf16 — images/s and texts/s
#    against the bare forward pass with open_clip's exact preprocessing, --preprocess fast
#    and --preprocess device (nvJPEG + GPU resize), each opt-in path's deviation from exact
#    on that card, the decode-only ceilings (uniform and mixed picture sizes), and what one
#    size group of the device resize costs its issuing thread (device_group_us). The open
#    goal: ViT-B-32 bf16 at >= 0.80 of its bare forward pass.
# 2. benchmarks/bench_stage1.py --device cuda — exact search of 10,000 queries over a
#    1,000,000 × 512 gallery in torch on the GPU (what `vgrc eval --device cuda` runs)
#    against the CPU's exact search on the same arrays: queries/s and agreement. The machine
#    has no FAISS, so the index part is skipped; faiss-gpu cannot travel there either (its
#    wheel is 135 MB and built for CUDA 12; the machine runs CUDA 13).
# 3. benchmarks/bench_feed.py --device cuda — a first run's images/s from files on disk
#    (key listing, reads, checks) against the same encoder on bytes in memory, ViT-B-32 bf16
#    (no baseline commit: the machine gets the working tree, not the history).
# 4. bench_encode.py again for ViT-L-14 bf16 and ViT-B-32 fp32 (their exact-path figures
#    were measured on an earlier lease; this adds fast and device).
#
# The lent machine has torch and torchvision but no network. Fetch the missing wheels
# here (.whl/ is ignored by git), then carry them:
#   pip download --no-deps -d .whl open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4
#   device run: command="bash benchmarks/gpu_lease.sh", carry=[".whl"], timeout_s=600
# The output lands in $OUT (the device tool's folder) when set, else /tmp/vgrc-gpu-out, one
# file per step, written as it runs. Extra arguments go to every bench_encode.py call
# (e.g. --images 2000).
set -euo pipefail
out=${OUT:-/tmp/vgrc-gpu-out}
py=${PYTHON:-$(command -v python3 || command -v python)}  # the lent machine's python3 is the one with torch
mkdir -p "$out"
"$py" -m pip install --quiet --no-deps --no-index --target /tmp/vgrc-site .whl/*.whl
mkdir -p /tmp/vgrc-pp && ln -sfn "$PWD" /tmp/vgrc-pp/vgrc
export PYTHONPATH=/tmp/vgrc-pp:/tmp/vgrc-site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
"$py" benchmarks/bench_encode.py --device cuda --configs ViT-B-32:bf16 "$@" 2>&1 | tee "$out/bench_encode_b32.txt" || echo "bench_encode failed; going on"
"$py" benchmarks/bench_stage1.py --device cuda 2>&1 | tee "$out/bench_stage1_cuda.txt" || echo "bench_stage1 failed; going on"
"$py" benchmarks/bench_feed.py --device cuda --model ViT-B-32 --precision bf16 --images 8000 --batch-size 256 --repeats 2 \
  --baseline-rev none 2>&1 | tee "$out/bench_feed_cuda.txt" || echo "bench_feed failed; going on"
"$py" benchmarks/bench_encode.py --device cuda --configs ViT-L-14:bf16,ViT-B-32:fp32 "$@" 2>&1 | tee "$out/bench_encode_rest.txt"
