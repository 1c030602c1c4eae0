#!/usr/bin/env bash
# `vitlab claims`: every claim of the notes checked, its report and plots written to benchmarks/claims.md and
# benchmarks/claims/. The whole command is timed (the issue's bar: <= 15 minutes on 2 CPU cores).
#   bash benchmarks/claims.sh
set -euo pipefail
cd "$(dirname "$0")/.."
header=$(python benchmarks/machine.py --threads "PyTorch's default (2 on this machine; the smallest models 1, see each claim)")
start=$(date +%s)
vitlab claims --out benchmarks/claims --report benchmarks/claims.md --overwrite --header "$header"
echo "whole command: $(( $(date +%s) - start )) s"
