#!/usr/bin/env bash
# The building-block ablations of issue 3: on digits, each a `vitlab sweep` with 3 seeds over the
# default recipe (34 epochs). Writes one sweep folder per axis under ${OUT:-/tmp/vitlab-ablations};
# benchmarks/ablations.md collects their sweep.md tables with a sentence per row.
set -euo pipefail
OUT=${OUT:-/tmp/vitlab-ablations}
for axis in "model.pool=token,avg,max" "model.norm=layer,batch" "model.init=trunc_normal,kaiming_fan_out" \
            "model.stem=patch,conv+maxpool,conv+stride,conv+avgpool"; do
    key=${axis%%=*}
    vitlab sweep "$axis" --seeds 3 --out "$OUT/${key#model.}" -- -q
done
# The segmentation decoder's up-sampling (issue 3), on the segmentation recipe; its table is the last
# section of benchmarks/ablations.md.
vitlab sweep segment.upsample=bilinear,nearest,transposed,unpool --seeds 3 --out "$OUT/upsample" -- --recipe segment -q
