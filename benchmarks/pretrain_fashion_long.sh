#!/usr/bin/env bash
# Issue 15, an exploration (one seed, one setting, nothing chosen from it): the Fashion-MNIST pretraining recipe for
# EPOCHS epochs instead of its 2, then the linear probe of the frozen encoder, the same probe on a randomly
# initialised encoder (`--random`), and the same probe protocol on the 784 raw pixels (no encoder), all on the
# validation split with the test split beside it.
#   EPOCHS=15 THREADS=1 bash benchmarks/pretrain_fashion_long.sh > benchmarks/pretrain_fashion_long.md
set -euo pipefail
# the pretraining recipe as it was when this script's output was made (it is now the conv encoder of an hour)
PATCH64="--model.dim 64 --model.stem patch --model.stem_depth 1 --model.pool avg --optim.time_budget_s 0 --precision fp32
         --pretrain.grey_jitter 0"
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp -d)}
THREADS=${THREADS:-2}
EPOCHS=${EPOCHS:-15}
echo "# Contrastive pretraining on Fashion-MNIST for $EPOCHS epochs, then a linear probe (an exploration for issue 15)"
echo
python "$here/machine.py" --threads "$THREADS"
echo
start=$SECONDS
vitlab pretrain --recipe fashion-mnist $PATCH64 --epochs "$EPOCHS" --seed 0 --name long --out_dir "$OUT" --threads "$THREADS" \
    -q > "$OUT/pretrain.log" 2>&1
echo "- \`vitlab pretrain --recipe fashion-mnist --epochs $EPOCHS --seed 0 --threads $THREADS\` took $((SECONDS - start)) s (whole command)"
start=$SECONDS
vitlab probe "$OUT/long" --threads "$THREADS" > /dev/null 2>&1
vitlab probe "$OUT/long" --random --threads "$THREADS" > /dev/null 2>&1
echo "- the two probes took $((SECONDS - start)) s"
echo
python - "$OUT/long" <<'PY'
import json, sys
from pathlib import Path

from vitlab.config import DataConfig
from vitlab.data import load_data
from vitlab.train.probe import pixel_probe

run = Path(sys.argv[1])
# the probe protocol of vitlab/train/probe.py on raw pixels in [0, 1]
splits = load_data(DataConfig(name="fashion-mnist"))
raw = pixel_probe(splits.train, {"val": splits.val, "test": splits.test})
raw = {k: raw[f"{k}_acc"] for k in ("val", "test")}
probe = json.loads((run / "probe.json").read_text())
final = json.loads((run / "metrics.json").read_text())
print("| features | val linear probe | test linear probe |")
print("|---|---|---|")
print(f"| pretrained encoder | {probe['linear']['val_acc']:.4f} | {probe['linear']['test_acc']:.4f} |")
print(f"| random encoder, same architecture | {probe['random_linear']['val_acc']:.4f} | "
      f"{probe['random_linear']['test_acc']:.4f} |")
print(f"| raw pixels (no encoder) | {raw['val']:.4f} | {raw['test']:.4f} |")
print()
print(f"Final validation kNN accuracy (k=20) {final['val_knn_acc']:.4f}, test {final['test_knn_acc']:.4f}; "
      f"{final['train_time_s']:.0f} s of pretraining.")
print()
print("Validation kNN accuracy per epoch (metrics.jsonl):")
print()
rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
print(", ".join(f"{r['epoch']}: {r['val_knn_acc']:.4f}" for r in rows if "val_knn_acc" in r))
PY
echo
python "$here/machine.py" --load
