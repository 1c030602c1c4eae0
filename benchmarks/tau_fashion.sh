#!/usr/bin/env bash
# What the InfoNCE temperature τ does, on Fashion-MNIST: `vitlab sweep pretrain.tau=...` over the fashion-mnist
# pretraining recipe as it was when benchmarks/tau.md was made (a 64-wide encoder on 4×4 patches, average pooling,
# 2 epochs: the flags of SHORT pin it; the recipe is now an hour), one seed, a linear probe of each run's frozen
# encoder, the same probe on a random encoder (the baseline), and `vitlab tau-report` over the runs. Numbers are on the validation split (6,000
# images); the probe's test accuracy is reported beside them. Needs dataset-fashion-mnist.
#   bash benchmarks/tau_fashion.sh > benchmarks/tau.md   (figures copied to benchmarks/tau/)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp -d)}
THREADS=${THREADS:-2}
SHORT="--model.dim 64 --model.stem patch --model.stem_depth 1 --model.pool avg --epochs 2 --optim.time_budget_s 0
       --pretrain.grey_jitter 0"
echo "# What τ does: Fashion-MNIST, 2-epoch pretraining per τ"
echo
python "$here/machine.py" --threads "$THREADS"
echo
start=$SECONDS
vitlab sweep pretrain.tau=0.05,0.1,0.2,0.5,1.0 --out "$OUT/sweep" -- --task pretrain --recipe fashion-mnist \
    $SHORT --threads "$THREADS" -q > /dev/null 2>&1
echo "Sweep (5 runs): $((SECONDS - start)) s."
runs=()
for run in "$OUT"/sweep/runs/*; do
    vitlab probe "$run" --threads "$THREADS" > /dev/null 2>&1
    runs+=("$run")
done
vitlab probe "$OUT/sweep/runs/pretrain.tau=0.2,seed=0" --random --threads "$THREADS" > /dev/null 2>&1
echo
echo '```'
vitlab tau-report "${runs[@]}" --out "$OUT/report"
echo '```'
mkdir -p "$here/tau"
cp "$OUT"/report/*.png "$OUT/report/tau_report.json" "$here/tau/"
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
rows = []
for run in sorted(Path(sys.argv[1]).glob("sweep/runs/*")):
    probe, final = json.loads((run / "probe.json").read_text()), json.loads((run / "metrics.json").read_text())
    tau = json.loads((run / "config.json").read_text())["pretrain"]["tau"]
    rows.append((tau, final["val_knn_acc"], probe["linear"]["val_acc"], probe["linear"]["test_acc"],
                 probe.get("random_linear", {}).get("val_acc"), final["train_time_s"]))
print("\n| τ | val kNN | val linear probe | test linear probe | pretraining time (s) |\n|---|---|---|---|---|")
for tau, knn, val, test, _, t in sorted(rows):
    print(f"| {tau:g} | {knn:.4f} | {val:.4f} | {test:.4f} | {t:.0f} |")
rnd = next(r[4] for r in rows if r[4] is not None)
print(f"\nRandom encoder (τ = 0.2 run's architecture and seed, untrained), same probe: val {rnd:.4f}.")
PY
echo
python "$here/machine.py" --load
