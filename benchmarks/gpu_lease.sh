#!/usr/bin/env bash
# Every GPU measurement of issue 13 in one device run (about 7 minutes on an H200):
# 1. benchmarks/bench_encode.py --device cuda — images/s and texts/s against the bare forward
#    pass for ViT-B-32 bf16, ViT-L-14 bf16 and ViT-B-32 fp32, with open_clip's exact
#    preprocessing, --preprocess fast and --preprocess device (nvJPEG + GPU resize), and each
#    opt-in path's deviation from exact on that card.
# 2. benchmarks/bench_stage1.py --device cuda — exact search of 10,000 queries over a
#    1,000,000 × 512 gallery in torch on the GPU (what `vgrc eval --device cuda` runs)
#    against the CPU's exact search on the same arrays: queries/s and agreement. The machine
#    has no FAISS, so the index part is skipped; faiss-gpu cannot travel there either (its
#    wheel is 135 MB and built for CUDA 12; the machine runs CUDA 13).
# 3. benchmarks/bench_feed.py --device cuda — a first run's images/s from files on disk
#    (key listing, reads, checks) against the same encoder on bytes in memory, ViT-B-32 bf16
#    (no baseline commit: the machine gets the working tree, not the history).
#
# The lent machine has torch and torchvision but no network. Fetch the missing wheels
# here (.whl/ is ignored by git), then carry them:
#   pip download --no-deps -d .whl open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4
#   device run: command="bash benchmarks/gpu_lease.sh", carry=[".whl"], timeout_s=540
# The output lands in $OUT (the device tool's folder) when set, else /tmp/vgrc-gpu-out.
# Extra arguments go to bench_encode.py (e.g. --configs ViT-B-32:bf16 --images 2000).
set -euo pipefail
out=${OUT:-/tmp/vgrc-gpu-out}
py=${PYTHON:-$(command -v python3 || command -v python)}  # the lent machine's python3 is the one with torch
mkdir -p "$out"
"$py" -m pip install --quiet --no-deps --no-index --target /tmp/vgrc-site .whl/*.whl
mkdir -p /tmp/vgrc-pp && ln -sfn "$PWD" /tmp/vgrc-pp/vgrc
export PYTHONPATH=/tmp/vgrc-pp:/tmp/vgrc-site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
"$py" benchmarks/bench_encode.py --device cuda "$@" 2>&1 | tee "$out/bench_encode_cuda.txt" || echo "bench_encode failed; going on"
"$py" benchmarks/bench_stage1.py --device cuda 2>&1 | tee "$out/bench_stage1_cuda.txt" || echo "bench_stage1 failed; going on"
"$py" benchmarks/bench_feed.py --device cuda --model ViT-B-32 --precision bf16 --images 8000 --batch-size 256 --repeats 2 \
  --baseline-rev none 2>&1 | tee "$out/bench_feed_cuda.txt"
