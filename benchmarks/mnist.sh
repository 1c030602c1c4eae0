#!/usr/bin/env bash
# Issue 5: ViTs trained from scratch with `vitlab train` on Fashion-MNIST (target >= 93% test accuracy) and
# MNIST (>= 99.3%). The recipes are vitlab/recipes/mnist.py. Output: benchmarks/mnist.md.
# Fashion-MNIST comes from Debian (apt-get install dataset-fashion-mnist); MNIST from MNIST_DIR (default: the
# shared data sets beside the checkout). THREADS (default 2, the machine's two cores) torch threads per run.
set -euo pipefail
OUT=${OUT:-/tmp/vitlab-mnist}
THREADS=${THREADS:-2}
MNIST_DIR=${MNIST_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared/datasets/mnist}
start=$SECONDS
vitlab train --recipe fashion-mnist --threads "$THREADS" --name fashion-mnist --out_dir "$OUT" -q
echo "fashion-mnist: whole command $((SECONDS - start)) s"
start=$SECONDS
vitlab train --recipe mnist --data "mnist:$MNIST_DIR" --threads "$THREADS" --name mnist --out_dir "$OUT" -q
echo "mnist: whole command $((SECONDS - start)) s"
