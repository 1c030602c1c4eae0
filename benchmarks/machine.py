"""What every benchmark output states first: the commit it ran on, the machine, the thread count and the load.

    python benchmarks/machine.py --threads 2          # prints the Markdown header line
    from machine import header; print(header(threads=2))

The load is the 1-minute load average (``os.getloadavg``) when the benchmark started; ``load_now()`` reads
it again at the end, so an output can say whether something else ran beside it. On this project's 2-core
machines a load near 2 means both cores were busy with the benchmark alone.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The checkout's commit, with ``+changes`` when the package's code (vitlab/, pyproject.toml) differs from it:
    what decides the numbers. Documents edited beside a running benchmark do not count."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "vitlab", "pyproject.toml"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + ("+changes" if dirty else "")


def cpu_model() -> str:
    """The CPU's name, family/model and widest vector instructions: hosts that all call themselves "AMD EPYC"
    differ 4x in a ViT step (a Zen 3 without AVX-512, a Zen 4 with AVX512-BF16)."""
    try:
        first_cpu = Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first_cpu if ":" in line)}
    flags = set(fields.get("flags", "").split())
    vector = [name for flag, name in (("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX"))
              if flag in flags] or (["AVX2"] if "avx2" in flags else [])
    return (f"{fields.get('model name', platform.machine())}, family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}, {' + '.join(vector) or 'no AVX2'}")


def load_now() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def header(threads: int | str) -> str:
    import torch

    return (f"Commit `{commit()}`, {time.strftime('%Y-%m-%d %H:%M %Z')}; {os.cpu_count()} CPU cores ({cpu_model()}), "
            f"torch {torch.__version__}, Python {platform.python_version()}; {threads} torch thread(s) per run; "
            f"load average at the start {load_now()}.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="?")
    parser.add_argument("--load", action="store_true", help="print only the load average now (for the end)")
    args = parser.parse_args()
    print(f"Load average at the end: {load_now()}." if args.load else header(args.threads))
