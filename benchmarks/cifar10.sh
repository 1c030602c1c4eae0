#!/usr/bin/env bash
# The cifar10 recipe (a pure ViT from scratch, vitlab/recipes/cifar10.py) trained through a store: the CIFAR-10
# JPEG folder packed once, then `vitlab train --recipe cifar10`. Per-epoch metrics and the best checkpoint are on
# the validation split (5,000 of the 50,000 training images); the test split (10,000) is scored once, at the end.
#   bash benchmarks/cifar10.sh > benchmarks/cifar10.md   (curves copied to benchmarks/cifar10_curves.png)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp -d)}
THREADS=${THREADS:-2}
CIFAR=${CIFAR:-$(cd "$here/../.." && pwd)/shared/datasets/cifar10-jpeg}
echo "# CIFAR-10 from scratch, through a store"
echo
python "$here/machine.py" --threads "$THREADS"
echo
start=$SECONDS
vitlab data pack "folder:$CIFAR" --out "$OUT/cifar10-store" --no-progress
echo
echo "Pack: $((SECONDS - start)) s for \`vitlab data pack folder:$CIFAR --out DIR\`."
start=$SECONDS
vitlab train --recipe cifar10 --data "store:$OUT/cifar10-store" --threads "$THREADS" --name cifar10 \
    --out_dir "$OUT" -q > /dev/null 2>&1
echo
echo "## \`vitlab train --recipe cifar10 --data store:DIR --threads $THREADS\`"
echo
echo "Whole command: $((SECONDS - start)) s."
echo
echo '```json'
cat "$OUT/cifar10/metrics.json"
echo '```'
echo
python - "$OUT/cifar10" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(f"{sys.argv[1]}/metrics.jsonl")]
print("| epoch | train loss | train acc | val loss | val acc | images/s |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['epoch']} | {r['train_loss']:.4f} | {r['train_acc']:.4f} | {r['val_loss']:.4f} | {r['val_acc']:.4f} | "
          f"{r['images_per_s']:.0f} |")
PY
cp "$OUT/cifar10/curves.png" "$here/cifar10_curves.png"
echo
python "$here/machine.py" --load
