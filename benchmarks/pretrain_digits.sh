#!/usr/bin/env bash
# Contrastive pretraining on digits: `vitlab pretrain` (the default recipe, SimCLR views, τ = 0.2, 50 epochs) then
# a linear probe on the frozen encoder, the same probe on a randomly initialised encoder of the same architecture
# (`--random`), and, for scale, the same probe protocol on the 64 raw pixels (no encoder at all). Three seeds.
# Validation split (145 digits) beside the test split (360), which nothing here is chosen on.
#   bash benchmarks/pretrain_digits.sh > benchmarks/pretrain_digits.md
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp -d)}
THREADS=${THREADS:-2}
echo "# Contrastive pretraining on digits, then a linear probe"
echo
python "$here/machine.py" --threads "$THREADS"
echo
for seed in 0 1 2; do
    start=$SECONDS
    vitlab pretrain --seed "$seed" --name "simclr-digits-$seed" --out_dir "$OUT" --threads "$THREADS" -q > /dev/null 2>&1
    echo "- seed $seed: \`vitlab pretrain --seed $seed\` took $((SECONDS - start)) s (whole command)"
    vitlab probe "$OUT/simclr-digits-$seed" --threads "$THREADS" > /dev/null 2>&1
    vitlab probe "$OUT/simclr-digits-$seed" --random --threads "$THREADS" > /dev/null 2>&1
done
echo
python - "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path

from vitlab.config import DataConfig
from vitlab.data import load_data
from vitlab.train.probe import pixel_probe

# the probe protocol of vitlab/train/probe.py on raw pixels in [0, 1]
splits = load_data(DataConfig(name="digits"))
raw = pixel_probe(splits.train, {"val": splits.val, "test": splits.test})
raw = {k: raw[f"{k}_acc"] for k in ("val", "test")}
print(f"Raw-pixel linear probe (the same protocol, no encoder): val {raw['val']:.4f}, test {raw['test']:.4f}.\n")
rows = []
for run in sorted(Path(sys.argv[1]).glob("simclr-digits-*")):
    probe = json.loads((run / "probe.json").read_text())
    final = json.loads((run / "metrics.json").read_text())
    rows.append((run.name, final["val_knn_acc"], probe["linear"]["val_acc"], probe["random_linear"]["val_acc"],
                 probe["linear"]["test_acc"], probe["random_linear"]["test_acc"], final["train_time_s"]))
print("| run | val kNN acc (k=20) | val linear probe | val random-encoder probe | test linear probe "
      "| test random-encoder probe | pretraining time (s) |")
print("|---|---|---|---|---|---|---|")
for name, *values, t in rows:
    print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {t:.1f} |")
col = lambda i: [r[i] for r in rows]  # noqa: E731
print("| mean ± std | " + " | ".join(f"{statistics.mean(col(i)):.4f} ± {statistics.stdev(col(i)):.4f}"
                                      for i in range(1, 6)) + f" | {statistics.mean(col(6)):.1f} |")
PY
echo
python "$here/machine.py" --load
