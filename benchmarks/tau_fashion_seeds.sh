#!/usr/bin/env bash
# τ with error bars (issue 15): `vitlab sweep pretrain.tau=...` over the fashion-mnist pretraining recipe's encoder
# at a 2-epoch schedule with grey jitter (the screen of benchmarks/pretrain_grey_jitter.md: the recipe's hour does
# not fit 15 runs on this machine; a run here is ~8 minutes), 5 τ × 3 seeds in two sweeps, every run probed
# linearly on its pooled features (SimCLR's protocol; ~1.5 min a probe), the τ = 0.05 seed-0 run also on its final
# token map (~4 min: the schedule's check against the pixels), then `vitlab tau-report` over all runs. The
# random-encoder and pixel baselines of this architecture, split and probe are in benchmarks/pretrain_hour.md.
# Settings are read on the validation split; test is printed beside it.
# Fixed epochs (no time budget), so the runs do not depend on the machine's load. Needs dataset-fashion-mnist.
#   OUT=/tmp/tau3 bash benchmarks/tau_fashion_seeds.sh > benchmarks/tau_seeds.md   (figures in benchmarks/tau_seeds/)
# A second call with the same OUT reuses the finished sweeps and probes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp -d)}
THREADS=${THREADS:-2}
SCHEDULE="--epochs 2 --optim.time_budget_s 0 --pretrain.grey_jitter 0.4 --precision fp32"
echo "# τ with error bars: Fashion-MNIST, 5 τ × 3 seeds, 2 epochs of pretraining each"
echo
python "$here/machine.py" --threads "$THREADS"
echo
start=$SECONDS
sweep() {  # out, seeds, τ values
    [ -d "$1/runs" ] || vitlab sweep "pretrain.tau=$3" --seeds "$2" --out "$1" -- --task pretrain \
        --recipe fashion-mnist $SCHEDULE --threads "$THREADS" -q > "$1.log" 2>&1
}
sweep "$OUT/sweep" 3 0.05,0.1,0.2
sweep "$OUT/sweep2" 3 0.5,1.0
echo "Sweeps (15 runs, flags \`$SCHEDULE\`): $((SECONDS - start)) s in this call."
has() { python -c "import json,sys; sys.exit(0 if '$2' in json.load(open('$1/probe.json')) else 1)" 2>/dev/null; }
start=$SECONDS
tokens=("$OUT/sweep/runs/pretrain.tau=0.05,seed=0")
for run in "$OUT"/sweep/runs/* "$OUT"/sweep2/runs/*; do
    has "$run" linear || vitlab probe "$run" --threads "$THREADS" > /dev/null
done
for run in "${tokens[@]}"; do
    has "$run" linear_tokens || vitlab probe "$run" --features tokens --threads "$THREADS" > /dev/null
done
echo "Probes: $((SECONDS - start)) s in this call."
mkdir -p "$here/tau_seeds"
report() {  # features, run folders or the sweep folder
    local features=$1; shift
    echo
    echo "## Linear probe on the $features features"
    echo
    echo '```'
    vitlab tau-report "$@" --features "$features" --out "$OUT/report-$features"
    echo '```'
    for f in "$OUT/report-$features"/*.png; do cp "$f" "$here/tau_seeds/${features}_$(basename "$f")"; done
}
report pooled "$OUT/sweep" "$OUT/sweep2"
report tokens "${tokens[@]}"
echo
python "$here/machine.py" --load
