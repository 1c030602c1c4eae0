#!/usr/bin/env bash
# The segmentation recipe, measured: `vitlab train --recipe segment` on this machine, then its metrics.json.
#   bash benchmarks/segment_default.sh > benchmarks/segment_default.md
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
echo "# \`vitlab train --recipe segment\`"
echo
python "$here/machine.py" --threads "PyTorch's default (2 on this machine)"
echo
start=$(date +%s)
vitlab train --recipe segment -q --out_dir "$out" --name seg > /dev/null 2>&1
end=$(date +%s)
echo "Whole command: $((end - start)) s (start-up, data generation, per-epoch validation and the final test included)."
echo "Per-epoch numbers are on the validation canvases (500, made of the validation digits); the test canvases (500,"
echo "made of the test digits) are scored once, at the end, on the final model. mIoU over 11 classes, background included."
echo
echo '```json'
cat "$out/seg/metrics.json"
echo '```'
echo
echo "Per epoch (metrics.jsonl): epoch, validation mIoU, validation pixel accuracy"
echo
python3 -c "
import json
for line in open('$out/seg/metrics.jsonl'):
    r = json.loads(line); print(f\"- {r['epoch']}: mIoU {r['val_miou']:.4f}, pixel acc {r['val_pixel_acc']:.4f}\")
"
echo
python "$here/machine.py" --load
cp "$out/seg/curves.png" "$here/segment_default_curves.png"
rm -rf "$out"
