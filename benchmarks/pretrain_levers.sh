#!/usr/bin/env bash
# Issue 15: what each pretraining lever gains, at a short schedule (EPOCHS epochs of the Fashion-MNIST recipe,
# one seed per arm unless an arm names its seed), two arms at a time on one thread each. Per arm: the pretraining
# time, the final validation kNN accuracy, and the linear probe of the frozen encoder on validation (what a choice
# reads) with test beside it. Arms are lines of "name seed overrides..." in ARMS (default: the list below).
#   EPOCHS=3 bash benchmarks/pretrain_levers.sh > benchmarks/pretrain_levers.md
set -euo pipefail
# the pretraining recipe as it was when this script's output was made (it is now the conv encoder of an hour)
PATCH64="--model.dim 64 --model.stem patch --model.stem_depth 1 --model.pool avg --optim.time_budget_s 0 --precision fp32
         --pretrain.grey_jitter 0"
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
EPOCHS=${EPOCHS:-3}
PARALLEL=${PARALLEL:-2}
ARMS=${ARMS:-"base 0
base 1
crop-0.2 0 --pretrain.crop_scale 0.2
queue-4096 0 --pretrain.queue_size 4096
batch-512 0 --batch-size 512
wide-128 0 --model.dim 128"}
echo "# Pretraining levers on Fashion-MNIST, $EPOCHS epochs each (issue 15)"
echo
echo "$(python "$here/machine.py" --threads 1) $PARALLEL arms at a time."
echo

arm() {  # name seed overrides...
    local name=$1 seed=$2; shift 2
    vitlab pretrain --recipe fashion-mnist $PATCH64 --epochs "$EPOCHS" --seed "$seed" --name "$name-s$seed" --out_dir "$OUT" \
        --threads 1 -q "$@" > "$OUT/$name-s$seed.log" 2>&1
    echo "$*" > "$OUT/$name-s$seed/overrides.txt"
    vitlab probe "$OUT/$name-s$seed" --threads 1 >> "$OUT/$name-s$seed.log" 2>&1
}
start=$SECONDS
while read -r line; do
    [ -z "$line" ] && continue
    # shellcheck disable=SC2086
    arm $line &
    while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 2; done
done <<< "$ARMS"
wait
echo "All arms: $((SECONDS - start)) s (whole commands, pretraining and probe)."
echo
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path

print("| arm | seed | overrides | pretraining s | val kNN | val linear probe | test linear probe |")
print("|---|---|---|---|---|---|---|")
for run in sorted(p for p in Path(sys.argv[1]).iterdir() if (p / "probe.json").exists()):
    final = json.loads((run / "metrics.json").read_text())
    probe = json.loads((run / "probe.json").read_text())["linear"]
    name, seed = run.name.rsplit("-s", 1)
    overrides = (run / "overrides.txt").read_text().strip() or "(the recipe)"
    print(f"| {name} | {seed} | `{overrides}` | {final['train_time_s']:.0f} | {final['val_knn_acc']:.4f} | "
          f"{probe['val_acc']:.4f} | {probe['test_acc']:.4f} |")
PY
echo
echo "Load at the end: $(python -c "import sys; sys.path.insert(0, '$here'); from machine import load_now; print(load_now())")"
