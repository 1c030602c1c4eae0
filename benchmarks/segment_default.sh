#!/usr/bin/env bash
# The segmentation recipe, measured: `vitlab train --recipe segment` on this machine, then its metrics.json.
#   bash benchmarks/segment_default.sh > benchmarks/segment_default.md
set -euo pipefail
out=$(mktemp -d)
start=$(date +%s)
vitlab train --recipe segment -q --out_dir "$out" --name seg > /dev/null 2>&1
end=$(date +%s)
echo "# \`vitlab train --recipe segment\`"
echo
echo "Machine: $(nproc) CPU cores. Whole command: $((end - start)) s (start-up, data generation, per-epoch evaluation included)."
echo
echo '```json'
cat "$out/seg/metrics.json"
echo '```'
echo
echo "Per epoch (metrics.jsonl): epoch, test mIoU, pixel accuracy"
echo
python3 -c "
import json, sys
for line in open('$out/seg/metrics.jsonl'):
    r = json.loads(line); print(f\"- {r['epoch']}: mIoU {r['miou']:.4f}, pixel acc {r['pixel_acc']:.4f}\")
"
rm -rf "$out"
