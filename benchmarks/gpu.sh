#!/usr/bin/env bash
# The GPU checks of issue 14, as one script with its own time limits, for the device tool's one H100/H200
# (about 15 minutes of device time for the whole issue, start-up included). NOT YET RUN: no GPU has been lent to
# this work so far; every number it prints will be the first.
#
# Here, first (CPU, once):   bash benchmarks/gpu.sh pack        -> .data/gpu/ and .whl/ (git-ignored)
# On the device:             run(command="bash benchmarks/gpu.sh run", carry=[".data/gpu", ".whl"], timeout_s=590)
#
# The device machine reaches no network: its python3 (3.12) already holds torch (CUDA), timm, transformers,
# safetensors, scikit-learn, tqdm, matplotlib, einops and tensorboard (../.library/device/KINDS.md); what vitlab
# needs beyond them (kornia, kornia_rs, simplejpeg) travels as cp312 wheels in .whl/, and vitlab itself runs from
# the checkout (PYTHONPATH), not installed. The data and the wheels together stay under the 64 MiB a call carries
# (`pack` checks it): Fashion-MNIST's idx.gz files (30 MB), CIFAR-10's JPEGs as one gzip tar (20 MB), wheels (8 MB).
#
# What it runs, each under `timeout` so that one stuck part cannot eat the budget (total <= ~9.5 minutes):
#   1. setup (<= 60 s): the wheels into /tmp/site; prints torch, CUDA and the card.
#   2. step speed (<= 90 s): benchmarks/step_speed.py's peers on the card (vitlab vs HF vs timm, bf16 autocast).
#   3. Fashion-MNIST (<= 150 s): `vitlab train --recipe fashion-mnist` with bf16 autocast, torch.compile
#      (compile=auto is on for CUDA), fused AdamW and the set and its augmentation resident on the GPU
#      (the engine's default on any device), a 100-s training budget (at most 60 epochs) at batch 512;
#      target >= 94.5% test within 2 minutes.
#   4. CIFAR-10 (<= 330 s): the JPEG folder unpacked, packed to a store, `--recipe cifar10` with a GPU-sized
#      schedule; target >= 94% test within 10 minutes (the public pure-ViT references: 93.6% after 100 epochs
#      with 3x repeated augmentation, no time given; 90.9% in 2 h 14 min on a V100).
# Outputs land in $OUT (the device tool brings them back): gpu.md and each run's metrics.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
data="$root/.data/gpu"

wheels="$root/.whl"
if [ "${1:-}" = pack ]; then
    # Fashion-MNIST's four idx.gz files and the CIFAR-10 JPEGs as one gzip tar (55 MB of JPEGs in 60,000 small
    # files; 20 MB once gzip has folded their tar headers and JPEG headers); the wheels for the device's Python.
    mkdir -p "$data" "$wheels"
    cp /usr/share/datasets/fashion-mnist/*.gz "$data/"
    tar -C "$root/../shared/datasets" -czf "$data/cifar10-jpeg.tar.gz" cifar10-jpeg
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$wheels" kornia==0.9.2 kornia-rs==0.2.0 simplejpeg==1.9.0
    tree=$(git -C "$root" ls-files -z | (cd "$root" && xargs -0 du -cb) | tail -1 | cut -f1)
    size=$(( $(du -sb "$data" | cut -f1) + $(du -sb "$wheels" | cut -f1) + tree ))
    echo "data + wheels + tracked tree: $size bytes (a call carries at most $((64 * 1024 * 1024)))"
    [ "$size" -lt $((64 * 1024 * 1024)) ] || { echo "over the 64 MiB a call carries" >&2; exit 1; }
    exit 0
fi

OUT=${OUT:-$(mktemp -d)}
report="$OUT/gpu.md"
runs="$OUT/runs"
mkdir -p "$runs"
say() { echo "$*" | tee -a "$report"; }
part() {  # part NAME SECONDS COMMAND...: run COMMAND under a time limit, say how it ended and how long it took
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    say ""
    say "## $name (limit ${limit} s)"
    timeout "$limit" "$@" >> "$OUT/$name.log" 2>&1
    local rc=$?
    say "exit $rc after $((SECONDS - start)) s$([ $rc = 124 ] && echo ' (time limit)'); log: $name.log"
}

say "# GPU checks (benchmarks/gpu.sh), commit $(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
part setup 60 bash -c "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site '$wheels'/*.whl && PYTHONPATH=/tmp/site:'$root' python3 -c 'import torch, kornia, vitlab.cli; \
    print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(), kornia.__version__)'"
tail -1 "$OUT/setup.log" | tee -a "$report"
export PYTHONPATH=/tmp/site:$root
mkdir -p /tmp/bin  # a `vitlab` command (timeout runs commands, not shell functions): vitlab from the checkout
printf '#!/bin/sh\nexec python3 -m vitlab.cli "$@"\n' > /tmp/bin/vitlab && chmod +x /tmp/bin/vitlab
export PATH=/tmp/bin:$PATH

part step_speed 90 python3 "$here/step_speed.py" --device cuda
part fashion_mnist 150 vitlab train --recipe fashion-mnist --data "fashion-mnist:$data" --device cuda \
    --optim.batch_size 512 --optim.lr 3e-3 --epochs 60 --optim.time_budget_s 100 --name fashion --out_dir "$runs" -q
part cifar10 330 bash -c "mkdir -p /tmp/c && tar -C /tmp/c -xzf '$data/cifar10-jpeg.tar.gz' && \
    vitlab data pack folder:/tmp/c/cifar10-jpeg --out /tmp/c/store && \
    vitlab train --recipe cifar10 --data store:/tmp/c/store --device cuda --optim.batch_size 512 \
        --optim.lr 3e-3 --epochs 100 --name cifar10 --out_dir '$runs' -q"
for run in fashion cifar10; do
    [ -f "$runs/$run/metrics.json" ] || continue
    say ""; say "### $run"; say '```json'; tee -a "$report" < "$runs/$run/metrics.json"; say '```'
done
exit 0
