#!/usr/bin/env bash
# ViTs trained from scratch with `vitlab train` on Fashion-MNIST and MNIST (recipes in vitlab/recipes/mnist.py).
# Per-epoch metrics are on the validation split (6,000 of the 60,000 training images); the test split (10,000) is
# scored once, at the end, on the final model. Fashion-MNIST comes from Debian (apt-get install
# dataset-fashion-mnist); MNIST from MNIST_DIR (default: the shared data sets beside the checkout).
#   bash benchmarks/mnist.sh > benchmarks/mnist.md   (curves copied to benchmarks/mnist/; RECIPES=mnist for one)
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
    start=$SECONDS
    vitlab train --recipe "$recipe" "${data[@]}" --threads "$THREADS" --name "$recipe" --out_dir "$OUT" -q > /dev/null 2>&1
    echo
    echo "## \`vitlab train --recipe $recipe ${data[*]} --threads $THREADS\`"
    echo
    echo "Whole command: $((SECONDS - start)) s."
    echo
    echo '```json'
    cat "$OUT/$recipe/metrics.json"
    echo '```'
    echo
    python - "$OUT/$recipe" <<'PY'
import json, sys
from pathlib import Path
rows = [json.loads(line) for line in (Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines()]
print("| epoch | train loss | train acc | val loss | val acc | epoch time (s) | images/s |\n|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['epoch']} | {r['train_loss']:.4f} | {r['train_acc']:.4f} | {r['val_loss']:.4f} | {r['val_acc']:.4f} "
          f"| {r['epoch_time_s']:.0f} | {r['images_per_s']:.0f} |")
PY
    cp "$OUT/$recipe/curves.png" "$here/mnist/$recipe-curves.png"
    echo
    python "$here/machine.py" --load
done
