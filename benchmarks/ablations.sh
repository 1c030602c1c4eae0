#!/usr/bin/env bash
# The building-block ablations: on digits, each a `vitlab sweep` with 3 seeds over the default recipe (34 epochs);
# the segmentation decoder's up-sampling over the segmentation recipe. Each sweep writes sweep.md/csv/png; the
# headline of every table is the validation metric (what a choice is made on), the test metric stands beside it.
#   OUT=/tmp/ablations bash benchmarks/ablations.sh; then benchmarks/ablations.md collects the tables
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/vitlab-ablations}
mkdir -p "$OUT"
python "$here/machine.py" --threads "PyTorch's default (2 on this machine)" > "$OUT/machine.txt"
for axis in "model.pool=token,avg,max" "model.norm=layer,batch" "model.init=trunc_normal,kaiming_fan_out" \
            "model.stem=patch,conv+maxpool,conv+stride,conv+avgpool"; do
    key=${axis%%=*}
    vitlab sweep "$axis" --seeds 3 --out "$OUT/${key#model.}" -- -q > /dev/null 2>&1
done
vitlab sweep segment.upsample=bilinear,nearest,transposed,unpool --seeds 3 --out "$OUT/upsample" -- --recipe segment -q \
    > /dev/null 2>&1
python "$here/machine.py" --load >> "$OUT/machine.txt"
mkdir -p "$here/ablations"
for axis in pool norm init stem upsample; do
    cp "$OUT/$axis/sweep.csv" "$here/ablations/$axis.csv"
    cp "$OUT/$axis/sweep.png" "$here/ablations/$axis.png"
done
