"""Issue 13's numbers: data larger than memory through a store (vitlab/data/store.py).

    python benchmarks/store.py [--cifar PATH] [--parts decoders,pack,read,epoch,rss] > benchmarks/store.md

1. JPEG decoders on CIFAR-10's JPEG files: PIL against simplejpeg (and PyTurboJPEG where installed), images/s,
   alternating rounds; the pixels compared.
2. Packing the 60,000 files: `vitlab data pack folder:CIFAR --out DIR` on all cores, wall time (target <= 60 s).
3. Reading shuffled batches of 256: from the store against decoding the same files per batch with PIL as an
   ImageFolder does (open, convert to RGB, to an array, stack), alternating rounds (target: store >= 20x).
4. A training epoch of the cifar10 recipe through the store against the in-memory path (`--data folder:CIFAR`,
   decoded into RAM first), alternating runs, images/s from metrics.jsonl (target: within 5%).
5. Resident memory: peak RSS of the training process (the kernel's ru_maxrss, and VmHWM polled from /proc) over
   one epoch on generated stores of 20,000 and 200,000 64x64x3 images (target: 200k <= 1.2x 20k). Each store is
   generated in a process of its own: a child started with vfork (as Python's subprocess does) inherits on exec
   the high-water mark of the process that started it, so a parent that had just generated 2.4 GB of images
   made ru_maxrss report 3,041 MiB for a training run whose own peak was a fraction of that.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import header, load_now  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VITLAB = [sys.executable, "-m", "vitlab.cli"]


def spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):,.0f} (min {min(xs):,.0f}, max {max(xs):,.0f}, n={len(xs)})"


def cifar_files(root: Path) -> list[Path]:
    return sorted((root / "train").rglob("*.jpg")) + sorted((root / "test").rglob("*.jpg"))


# -- 1. decoders ----------------------------------------------------------------------------------------------------
def decoders(root: Path, n: int = 5000, rounds: int = 5) -> None:
    from PIL import Image

    import simplejpeg

    files = cifar_files(root)[::len(cifar_files(root)) // n][:n]
    blobs = [f.read_bytes() for f in files]  # from memory: the decoder alone

    def pil():
        import io
        return [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs]

    def sj():
        return [simplejpeg.decode_jpeg(b, colorspace="RGB", fastdct=False, fastupsample=False) for b in blobs]

    def sj_fast():
        return [simplejpeg.decode_jpeg(b, colorspace="RGB") for b in blobs]

    candidates = {"PIL (Pillow, libjpeg-turbo)": pil, "simplejpeg, accurate (what vitlab uses)": sj,
                  "simplejpeg, fastdct + fastupsample": sj_fast}
    try:
        from turbojpeg import TJPF_RGB, TurboJPEG  # PyTurboJPEG
        tj = TurboJPEG()
        candidates["PyTurboJPEG"] = lambda: [tj.decode(b, pixel_format=TJPF_RGB) for b in blobs]
    except (ImportError, OSError, RuntimeError) as e:
        print(f"PyTurboJPEG: not measured ({type(e).__name__}: {e}; it needs the libturbojpeg system library, "
              f"which pip does not install).\n")
    rates = {k: [] for k in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            t0 = time.perf_counter()
            fn()
            rates[name].append(n / (time.perf_counter() - t0))
    ref = pil()
    print(f"### JPEG decoders: {n:,} CIFAR-10 files (32x32, 4:2:0) decoded from memory, one process, "
          f"{rounds} alternating rounds\n")
    print("| decoder | images/s | same pixels as PIL |")
    print("|---|---|---|")
    for name, fn in candidates.items():
        same = all(np.array_equal(a, b) for a, b in zip(fn(), ref))
        print(f"| {name} | {spread(rates[name])} | {'all' if same else 'no'} |")
    print()


# -- 2. pack --------------------------------------------------------------------------------------------------------
def pack_times(root: Path, tmp: Path, runs: int = 2) -> Path:
    print(f"### Packing the {len(cifar_files(root)):,} files\n")
    out = None
    for i in range(runs):
        out = tmp / f"cifar-store-{i}"
        t0 = time.perf_counter()
        proc = subprocess.run([*VITLAB, "data", "pack", f"folder:{root}", "--out", str(out), "--no-progress"],
                              capture_output=True, text=True, check=True)
        print(f"- run {i + 1}: {time.perf_counter() - t0:.1f} s wall for `vitlab data pack folder:{root} --out DIR` "
              f"(all {os.cpu_count()} cores); {proc.stdout.strip()}")
    print()
    return out


# -- 3. reading batches ---------------------------------------------------------------------------------------------
def read_batches(root: Path, store: Path, batch: int = 256, batches: int = 20, rounds: int = 5) -> None:
    from PIL import Image

    from vitlab.config import DataConfig
    from vitlab.data.store import load_store

    train, _, _ = load_store(DataConfig(name=f"store:{store}", check_source=False))
    files = sorted((root / "train").rglob("*.jpg"))  # the store's train rows are these files, in this order
    assert len(files) == len(train)
    rng = np.random.default_rng(0)

    def from_store(order):
        for i in range(batches):
            train.images[order[i * batch:(i + 1) * batch]]

    def with_pil(order):  # what torchvision's ImageFolder + default_loader + a collate does per batch
        for i in range(batches):
            np.stack([np.asarray(Image.open(files[j]).convert("RGB")) for j in order[i * batch:(i + 1) * batch]])

    rates = {"store (preadv)": [], "PIL per batch": []}
    for _ in range(rounds):
        order = rng.permutation(len(train))
        for name, fn in (("store (preadv)", from_store), ("PIL per batch", with_pil)):
            t0 = time.perf_counter()
            fn(order)
            rates[name].append(batches * batch / (time.perf_counter() - t0))
    ratios = [s / p for s, p in zip(rates["store (preadv)"], rates["PIL per batch"])]
    print(f"### Shuffled batches of {batch}, one process ({batches} batches a round, {rounds} alternating rounds, "
          f"files and store in the page cache)\n")
    print("| reader | images/s |")
    print("|---|---|")
    for name, r in rates.items():
        print(f"| {name} | {spread(r)} |")
    print(f"\nStore / PIL: median {statistics.median(ratios):.0f}x (min {min(ratios):.0f}x, max {max(ratios):.0f}x).\n")


# -- 4. a training epoch ----------------------------------------------------------------------------------------------
def epochs(root: Path, store: Path, tmp: Path, pairs: int, threads: int) -> None:
    rates = {"store": [], "memory": []}
    print(f"### One training epoch of `--recipe cifar10`, {threads} threads, alternating runs\n")
    for i in range(pairs):
        for name, data in (("store", f"store:{store}"), ("memory", f"folder:{root}")):
            run = tmp / f"epoch-{name}-{i}"
            t0 = time.perf_counter()
            subprocess.run([*VITLAB, "train", "--recipe", "cifar10", "--data", data, "--epochs", "1", "--threads",
                            str(threads), "--out_dir", str(tmp), "--name", run.name, "-q"], check=True,
                           capture_output=True)
            row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
            rates[name].append(row["images_per_s"])
            print(f"- {name}: {row['images_per_s']:.1f} images/s in the epoch; {time.perf_counter() - t0:.0f} s "
                  f"for the whole command")
    ratios = [s / m for s, m in zip(rates["store"], rates["memory"])]
    print(f"\nStore {spread(rates['store'])} images/s; in memory {spread(rates['memory'])}; store / memory per pair: "
          f"{', '.join(f'{r:.3f}' for r in ratios)} (median {statistics.median(ratios):.3f}).\n")


# -- 5. resident memory ---------------------------------------------------------------------------------------------
def generated_store(out: Path, n: int, seed: int) -> None:
    """n training and n // 10 test images of 64x64x3: smooth random blobs, 10 classes, written through pack_arrays."""
    import torch

    from vitlab.data import ImageSet
    from vitlab.data.store import pack_arrays

    rng = np.random.default_rng(seed)
    classes = [str(c) for c in range(10)]

    def make(m):
        images = np.empty((m, 3, 64, 64), dtype=np.uint8)
        for start in range(0, m, 10_000):
            k = min(10_000, m - start)
            coarse = rng.integers(0, 256, (k, 3, 8, 8), dtype=np.uint8)
            images[start:start + k] = coarse.repeat(8, axis=2).repeat(8, axis=3)
        return ImageSet(torch.from_numpy(images), torch.from_numpy(rng.integers(0, 10, m)), classes)

    pack_arrays(out, f"generated:{n}x64x64x3 seed {seed}", {"train": make(n), "test": make(n // 10)})


def peak_rss(cmd: list[str]) -> tuple[float, float, float]:
    """(ru_maxrss in MiB from wait4's rusage of the child ``cmd``, its largest VmHWM in MiB polled from
    /proc/PID/status, seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    hwm = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                hwm = max(hwm, next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")))
        except (OSError, StopIteration):
            pass
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(proc.stderr.read().decode()[-2000:])
    return usage.ru_maxrss / 1024, hwm / 1024, time.perf_counter() - t0


def rss(tmp: Path, threads: int) -> None:
    print("### Peak resident memory of one training epoch on generated 64x64x3 stores\n")
    print("| images | store on disk | peak RSS of `vitlab train --data store:DIR --epochs 1` (ru_maxrss) | "
          "its VmHWM (polled) | wall |")
    print("|---|---|---|---|---|")
    results = {}
    for n in (20_000, 200_000):
        out = tmp / f"gen-{n}"
        subprocess.run([sys.executable, __file__, "--generate", str(out), str(n)], check=True)  # docstring, 5.
        size = sum(f.stat().st_size for f in out.iterdir())
        mib, hwm, secs = peak_rss([*VITLAB, "train", "--data", f"store:{out}", "--epochs", "1", "--model.img_size",
                                   "64", "--model.dim", "32", "--model.depth", "1", "--model.heads", "2",
                                   "--model.patch_size", "16", "--batch-size", "256", "--threads", str(threads),
                                   "--out_dir", str(tmp), "--name", f"rss-{n}", "-q"])
        results[n] = (mib, hwm)
        print(f"| {n:,} | {size / 2**20:,.0f} MiB | {mib:,.0f} MiB | {hwm:,.0f} MiB | {secs:.0f} s |")
    (m2, h2), (m1, h1) = results[200_000], results[20_000]
    print(f"\nRatio 200k / 20k: {m2 / m1:.3f} (ru_maxrss), {h2 / h1:.3f} (VmHWM).\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", type=Path, default=ROOT.parent / "shared" / "datasets" / "cifar10-jpeg")
    parser.add_argument("--parts", default="decoders,pack,read,epoch,rss")
    parser.add_argument("--pairs", type=int, default=2, help="alternating epoch runs of each path")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--tmp", type=Path, default=None)
    parser.add_argument("--generate", nargs=2, metavar=("DIR", "N"), help=argparse.SUPPRESS)  # part 5's stores
    args = parser.parse_args()
    if args.generate:
        return generated_store(Path(args.generate[0]), int(args.generate[1]), seed=int(args.generate[1]))
    parts = set(args.parts.split(","))
    print("# Data larger than memory: the store\n")
    print(header(threads=args.threads) + "\n")
    print(f"Command: `python benchmarks/store.py --parts {args.parts} --pairs {args.pairs}`.\n")
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        if "decoders" in parts:
            decoders(args.cifar)
        store = pack_times(args.cifar, tmp) if parts & {"pack", "read", "epoch"} else None
        if "read" in parts:
            read_batches(args.cifar, store)
        if "epoch" in parts:
            epochs(args.cifar, store, tmp, args.pairs, args.threads)
        if "rss" in parts:
            rss(tmp, args.threads)
    print(f"Load average at the end: {load_now()}.")


if __name__ == "__main__":
    main()
