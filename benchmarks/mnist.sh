#!/usr/bin/env bash
# ViTs trained from scratch with `vitlab train` on Fashion-MNIST and MNIST (recipes in vitlab/recipes/mnist.py).
# Per-epoch metrics are on the validation split (6,000 of the 60,000 training images); the test split (10,000) is
# scored once, at the end, on the final model. Fashion-MNIST comes from Debian (apt-get install
# dataset-fashion-mnist); MNIST from MNIST_DIR (default: the shared data sets beside the checkout).
# Each recipe is trained once per seed (SEEDS, default 0 1 2); the summary gives mean ± std over the seeds of the
# test accuracy, the best validation accuracy, the training time (metrics.json's train_time_s: the epochs' steps,
# without evaluation) and the whole command's wall time.
#   bash benchmarks/mnist.sh > benchmarks/mnist.md   (curves copied to benchmarks/mnist/; RECIPES=mnist for one;
#   EXTRA="--precision bf16" adds flags to every run)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp -d)}
THREADS=${THREADS:-2}
MNIST_DIR=${MNIST_DIR:-$(cd "$here/../.." && pwd)/shared/datasets/mnist}
echo "# MNIST and Fashion-MNIST from scratch"
echo
python "$here/machine.py" --threads "$THREADS"
mkdir -p "$here/mnist"
for recipe in ${RECIPES:-fashion-mnist mnist}; do
  data=()
  [ "$recipe" = mnist ] && data=(--data "mnist:$MNIST_DIR")
  for seed in ${SEEDS:-0 1 2}; do
    run="$recipe-seed$seed"
    start=$SECONDS
    vitlab train --recipe "$recipe" "${data[@]}" --seed "$seed" --threads "$THREADS" --name "$run" --out_dir "$OUT" \
        ${EXTRA:-} -q > /dev/null 2>&1
    echo "$((SECONDS - start))" > "$OUT/$run/command_s"
    echo
    echo "## \`vitlab train --recipe $recipe ${data[*]} --seed $seed --threads $THREADS${EXTRA:+ $EXTRA}\`"
    echo
    echo "Whole command: $((SECONDS - start)) s."
    echo
    echo '```json'
    cat "$OUT/$run/metrics.json"
    echo '```'
    echo
    python - "$OUT/$run" <<'PY'
import json, sys
from pathlib import Path
rows = [json.loads(line) for line in (Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines()]
print("| epoch | train loss | train acc | val loss | val acc | epoch time (s) | images/s |\n|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['epoch']} | {r['train_loss']:.4f} | {r['train_acc']:.4f} | {r['val_loss']:.4f} | {r['val_acc']:.4f} "
          f"| {r['epoch_time_s']:.0f} | {r['images_per_s']:.0f} |")
PY
    cp "$OUT/$run/curves.png" "$here/mnist/$run-curves.png"
    echo
    python "$here/machine.py" --load
  done
  echo
  echo "## Summary: \`--recipe $recipe\`, seeds ${SEEDS:-0 1 2}"
  echo
  python - "$OUT" "$recipe" ${SEEDS:-0 1 2} <<'PY'
import json, statistics, sys
from pathlib import Path
out, recipe, seeds = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
runs = [out / f"{recipe}-seed{s}" for s in seeds]
m = [json.loads((r / "metrics.json").read_text()) for r in runs]
cols = {"test accuracy (%)": [100 * x["test_acc"] for x in m],
        "best val accuracy (%)": [100 * x["best_val_acc"] for x in m],
        "training time (s)": [x["train_time_s"] for x in m],
        "whole command (s)": [float((r / "command_s").read_text()) for r in runs]}
print("| | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |\n|---|" + "---|" * (len(seeds) + 1))
for k, v in cols.items():
    spread = f" ± {statistics.stdev(v):.2f}" if len(v) > 1 else " (one seed: no spread)"
    print(f"| {k} | " + " | ".join(f"{x:.2f}" for x in v) + f" | {statistics.mean(v):.2f}{spread} |")
PY
done
