#!/usr/bin/env bash
# Issue 4 on digits: `vitlab pretrain` (the default recipe, SimCLR views, τ = 0.2, 50 epochs) then a linear
# probe on the frozen encoder, the same probe on a randomly initialised encoder of the same architecture
# (`--random`), and, for scale, the same probe protocol on the 64 raw pixels (no encoder at all).
# Three seeds. Output: benchmarks/pretrain_digits.md. THREADS (default 1) torch threads per process.
set -euo pipefail
OUT=${OUT:-/tmp/vitlab-pretrain-digits}
THREADS=${THREADS:-1}
mkdir -p "$OUT"
for seed in 0 1 2; do
    start=$SECONDS
    vitlab pretrain --seed "$seed" --name "simclr-digits-$seed" --out_dir "$OUT" --threads "$THREADS" -q
    echo "seed $seed: pretraining command took $((SECONDS - start)) s"
    vitlab probe "$OUT/simclr-digits-$seed" --threads "$THREADS"
    vitlab probe "$OUT/simclr-digits-$seed" --random --threads "$THREADS"
done
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path

import torch

from vitlab.config import DataConfig
from vitlab.data import load_data
from vitlab.train.probe import train_linear

# the probe protocol of vitlab/train/probe.py (standardise with train statistics, full-batch AdamW, 300
# epochs, lr 1e-2) on raw pixels in [0, 1]
train, test = load_data(DataConfig(name="digits"))
tr, te = train.images.flatten(1).float() / 255, test.images.flatten(1).float() / 255
mu, sd = tr.mean(0), tr.std(0).clamp_min(1e-6)
tr, te = (tr - mu) / sd, (te - mu) / sd
clf = train_linear(tr, train.labels, 10, epochs=300, lr=1e-2, seed=0)
raw = float((clf(te).argmax(1) == test.labels).float().mean())
print(f"raw-pixel linear probe: test accuracy {raw:.4f}")
rows = []
for run in sorted(Path(sys.argv[1]).glob("simclr-digits-*")):
    probe = json.loads((run / "probe.json").read_text())
    final = json.loads((run / "metrics.json").read_text())
    rows.append((run.name, final["knn_acc"], probe["linear"]["test_acc"], probe["random_linear"]["test_acc"],
                 final["train_time_s"]))
print("| run | kNN acc (k=20) | linear probe | random-encoder probe | gap (points) | pretraining time (s) |")
print("|---|---|---|---|---|---|")
for name, knn, lin, rnd, t in rows:
    print(f"| {name} | {knn:.4f} | {lin:.4f} | {rnd:.4f} | {100 * (lin - rnd):+.1f} | {t:.1f} |")
mean = lambda i: sum(r[i] for r in rows) / len(rows)  # noqa: E731
print(f"| mean | {mean(1):.4f} | {mean(2):.4f} | {mean(3):.4f} | {100 * (mean(2) - mean(3)):+.1f} | {mean(4):.1f} |")
PY
