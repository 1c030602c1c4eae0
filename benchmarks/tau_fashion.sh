#!/usr/bin/env bash
# Issue 4: what the InfoNCE temperature τ does, on Fashion-MNIST. For each τ: `vitlab pretrain
# --recipe fashion-mnist --tau τ`, then a linear probe on the frozen encoder; then the same probe on a
# random encoder (the baseline), and `vitlab tau-report` over the five runs. benchmarks/tau.md holds the
# output with the figures copied to benchmarks/tau/. Needs Fashion-MNIST (apt-get install
# dataset-fashion-mnist). THREADS (default 1) torch threads per process.
set -euo pipefail
OUT=${OUT:-/tmp/vitlab-tau}
THREADS=${THREADS:-1}
mkdir -p "$OUT"
runs=()
for tau in 0.05 0.1 0.2 0.5 1.0; do
    start=$SECONDS
    vitlab pretrain --recipe fashion-mnist --tau "$tau" --name "tau-$tau" --out_dir "$OUT" --threads "$THREADS" -q
    echo "tau=$tau: pretraining command took $((SECONDS - start)) s"
    vitlab probe "$OUT/tau-$tau" --threads "$THREADS"
    runs+=("$OUT/tau-$tau")
done
vitlab probe "$OUT/tau-0.2" --random --threads "$THREADS"
vitlab tau-report "${runs[@]}" --out "$OUT/report"
