"""vitlab/train/distributed.py and the loop under torchrun: 2 CPU processes (gloo) against one process on the
whole batch, a stop that every process agrees on, a stalled process that times out with one line."""
from __future__ import annotations

import math
import os
import socket
import sys
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from vitlab.losses import info_nce
from vitlab.train.distributed import (agree, all_sum, broadcast_buffers, gather_objects, gather_parts, gather_with_grad,
                                      is_distributed, my_part, part_sizes, rank, shard, sum_over_processes, world_size)


def info_nce_distributed(z1, z2, tau, queue=None):
    """What the pretraining step does: gather both views from every process with gradients, then InfoNCE."""
    return info_nce(gather_with_grad(z1), gather_with_grad(z2), tau, queue=queue)

WORLD = 2
TAU = 0.2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_encoder_grads(encoder_state: dict, x1: torch.Tensor, x2: torch.Tensor) -> dict:
    """The whole chain under DDP: a linear encoder on this rank's inputs, gradients averaged by DDP.

    A function of its own so that the DDP wrapper is freed before the process group is destroyed:
    a DDP object that outlives ``destroy_process_group`` hung the process at exit now and then.
    """
    encoder = torch.nn.Linear(*encoder_state["weight"].shape[::-1], dtype=torch.float64)
    encoder.load_state_dict(encoder_state)
    ddp = DistributedDataParallel(encoder)
    info_nce_distributed(ddp(x1), ddp(x2), TAU).backward()
    return {name: p.grad for name, p in encoder.named_parameters()}


def _worker(local_rank: int, port: int, out_dir: str, z1_all, z2_all, queue, encoder_state) -> None:
    """One torchrun-like process: holds rows [r·N, (r+1)·N) of the batch, writes its results to out_dir."""
    torch.set_num_threads(1)  # two processes on a small shared machine
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(local_rank),
                      WORLD_SIZE=str(WORLD))
    dist.init_process_group("gloo", init_method="env://", timeout=timedelta(seconds=30))
    try:
        n = z1_all.shape[0] // WORLD
        rows = slice(local_rank * n, (local_rank + 1) * n)
        out = {"rank": rank(), "world_size": world_size(), "is_distributed": is_distributed()}
        out["gathered"] = gather_with_grad(z1_all[rows].clone()).detach()
        out["shard"] = shard(torch.arange(6))  # what each process of fit/pretrain takes of a batch of 6
        out["sums"] = sum_over_processes(torch.tensor(2.5 + local_rank), torch.tensor(3 * local_rank), 10)
        # evaluation parts of 7 items: 4 + 3, contiguous; gathered back whole on every process
        out["parts"] = (part_sizes(7), (my_part(7).start, my_part(7).stop))
        out["gathered_parts"] = gather_parts(torch.arange(7.0)[my_part(7)] * 10, 7)
        out["all_sum"] = all_sum(torch.full((2, 2), local_rank + 1))
        out["agree"] = (agree(local_rank == 1), agree(False))  # a stop only rank 1 saw; nobody's
        out["objects"] = gather_objects({"rank": local_rank})
        bn = torch.nn.BatchNorm1d(3)
        bn.running_mean.fill_(float(local_rank + 5))
        broadcast_buffers(bn)
        out["buffers"] = bn.running_mean.clone()  # rank 0's on every rank
        for name, q in (("plain", None), ("queue", queue)):
            z1 = z1_all[rows].clone().requires_grad_(True)  # (N, D) leaves: this rank's embeddings
            z2 = z2_all[rows].clone().requires_grad_(True)
            loss = info_nce_distributed(z1, z2, TAU, queue=q)
            loss.backward()
            out[name] = {"loss": loss.detach(), "grad1": z1.grad, "grad2": z2.grad}
        out["encoder_grad"] = _ddp_encoder_grads(encoder_state, z1_all[rows], z2_all[rows])
        torch.save(out, os.path.join(out_dir, f"rank{local_rank}.pt"))
    finally:
        dist.destroy_process_group()


def _run_two_processes(tmp_path, *args, timeout_s: float = 60.0) -> list[dict]:
    # fork on Linux: the children inherit the imported modules. A spawned child re-imports this
    # file and with it vitlab.train (sklearn, matplotlib...): seconds of CPU per child on a small
    # machine. Forking is safe here: no process group exists in the parent and each child sets
    # one intra-op thread before any tensor op.
    start_method = "fork" if sys.platform == "linux" else "spawn"
    import torch._dynamo  # noqa: F401  DDP imports it lazily (~2 s): once here, not in each worker
    ctx = mp.start_processes(_worker, args=(_free_port(), str(tmp_path), *args), nprocs=WORLD, join=False,
                             start_method=start_method)
    deadline = time.monotonic() + timeout_s
    while not ctx.join(timeout=0.5):  # re-raises a worker's exception in this process
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"distributed workers did not finish within {timeout_s} s")
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]


def test_two_processes_equal_one_process_on_the_combined_batch(tmp_path):
    g = torch.Generator().manual_seed(0)
    n, d, k = 3, 8, 5  # 3 pairs per process, 6 in all
    z1_all = torch.randn(WORLD * n, d, generator=g, dtype=torch.float64)
    z2_all = z1_all + 0.5 * torch.randn(WORLD * n, d, generator=g, dtype=torch.float64)
    queue = torch.randn(k, d, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    encoder = torch.nn.Linear(d, 4, dtype=torch.float64)

    results = _run_two_processes(tmp_path, z1_all, z2_all, queue, encoder.state_dict())

    for r, out in enumerate(results):
        assert (out["rank"], out["world_size"], out["is_distributed"]) == (r, WORLD, True)
        torch.testing.assert_close(out["gathered"], z1_all, rtol=0, atol=0)  # rank order, exact copy
        assert out["shard"].tolist() == [3 * r, 3 * r + 1, 3 * r + 2]  # contiguous, in rank order
        loss_sum, correct, seen = out["sums"]  # 2.5 + 3.5; 0 + 3 (a long tensor stays long); 10 + 10 (an int)
        assert loss_sum.item() == 6.0 and correct.dtype == torch.long and correct.item() == 3 and seen == 20
        assert out["parts"] == ([4, 3], (0, 4) if r == 0 else (4, 7))
        assert out["gathered_parts"].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
        assert out["all_sum"].tolist() == [[3, 3], [3, 3]] and out["agree"] == (True, False)
        assert out["objects"] == [{"rank": 0}, {"rank": 1}] and out["buffers"].tolist() == [5.0, 5.0, 5.0]
    for name, q in (("plain", None), ("queue", queue)):
        z1 = z1_all.clone().requires_grad_(True)  # one process, the whole batch of 2N pairs
        z2 = z2_all.clone().requires_grad_(True)
        loss = info_nce(z1, z2, TAU, queue=q)
        loss.backward()
        for r, out in enumerate(results):
            rows = slice(r * n, (r + 1) * n)
            # (a) every rank's loss is the loss of the combined batch
            torch.testing.assert_close(out[name]["loss"], loss.detach(), rtol=0, atol=1e-6)
            torch.testing.assert_close(out[name]["loss"], loss.detach(), rtol=1e-12, atol=0)  # float64
            # (b) gradient on the local rows: WORLD × the single-process gradient of those rows.
            # Every rank computes the same full loss L from the gathered (W·N, D) tensor and
            # backpropagates it, so each rank's graph sends dL/d(rows of rank r) to rank r; the
            # backward of torch.distributed.nn.functional.all_gather sums what all W ranks send
            # (reduce-scatter SUM, emulated with scatters on gloo): W · dL/dz_r. DDP averages
            # parameter gradients over ranks, dividing W back out, so training sees exactly dL/dθ.
            torch.testing.assert_close(out[name]["grad1"], WORLD * z1.grad[rows], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(out[name]["grad2"], WORLD * z2.grad[rows], rtol=1e-10, atol=1e-12)
            assert z1.grad[rows].abs().max() > 1e-3  # so the factor WORLD is not vacuous

    # ... and through DDP, which averages the W·(local) parameter gradients: exactly the one-process dL/dθ
    info_nce(encoder(z1_all), encoder(z2_all), TAU).backward()
    for out in results:
        for name, param in encoder.named_parameters():
            torch.testing.assert_close(out["encoder_grad"][name], param.grad, rtol=1e-10, atol=1e-12)


def test_not_distributed_is_single_process():
    assert not is_distributed()
    assert (rank(), world_size()) == (0, 1)
    x = torch.randn(4, 3)
    assert gather_with_grad(x) is x and gather_parts(x, 4) is x and all_sum(x) is x
    assert part_sizes(5) == [5] and my_part(5) == slice(0, 5) and agree(True) and gather_objects(3) == [3]


# -- a real torchrun: `torchrun --nproc_per_node 2 -m vitlab.cli pretrain` on 2 CPU processes (gloo) ----------
def test_torchrun_pretraining_on_two_processes(tmp_path):
    """MoCo v3 (momentum encoder, predictor) with the queue: the pretraining step's whole path under DDP (the
    predictor in DDP's forward, the key encoder outside it); SimCLR's step is the same path without the keys."""
    import json
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vitlab.cli", "pretrain", "--epochs", "2", "--name", "ddp", "--out_dir", str(tmp_path),
           "--model.dim", "16", "--model.depth", "1", "--model.heads", "2", "--model.mlp_ratio", "1",
           "--pretrain.proj_hidden", "16", "--pretrain.proj_dim", "8", "--pretrain.queue_size", "300",
           "--pretrain.momentum", "0.9", "--pretrain.predictor_hidden", "16",
           "--batch-size", "128", "--threads", "1", "--device", "cpu", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 alone reports and writes the run folder; the log names the split of the global batch
    assert proc.stdout.count("run folder:") == 1
    assert proc.stderr.count("2 processes, 64 images each a step") == 1
    run = tmp_path / "ddp"
    final = json.loads((run / "metrics.json").read_text())
    assert final["processes"] == 2 and final["epochs"] == 2
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # one row per epoch, not one per process
    # 1,292 training digits, global batches of 128 (drop_last): 10 optimiser steps an epoch across both processes
    assert rows[-1]["step"] == 20
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_knn_acc"]) for r in rows)
    # the MoCo queue holds the newest 300 embeddings of the global batches (20 steps x 128 seen)
    from vitlab.train.checkpoint import load_tensors

    state = load_tensors(run / "checkpoint.safetensors")[0]
    assert state["model.criterion._extra_state"].shape == (300, 8)
    # the key encoder trails the query encoder (m = 0.9 and up): an average of it, not a copy
    q, k = (state[f"model.{e}.blocks.0.attn.to_qkv.weight"] for e in ("encoder", "momentum_encoder"))
    assert (q - k).abs().max() > 1e-5

    # the same command again: rank 0 refuses the existing folder, and rank 1 stops too instead of waiting
    # at its first collective until the timeout; the finished run is untouched
    before = (run / "model.safetensors").read_bytes()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode != 0
    assert "already exists" in again.stderr and "rank 0 failed before training" in again.stderr
    assert (run / "model.safetensors").read_bytes() == before
    # a global batch that does not split evenly over the processes is refused on every rank, before a folder
    odd = [a if a != "128" else "127" for a in cmd]
    odd[odd.index("ddp")] = "odd"
    bad = subprocess.run(odd, capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0 and "optim.batch_size=127 must be divisible by the 2 processes" in bad.stderr
    assert not (tmp_path / "odd").exists()


def test_what_torchrun_processes_cannot_do_is_refused_before_joining(monkeypatch, tmp_path, capsys):
    """Checked from WORLD_SIZE before the process group: a refusal must not leave the other processes waiting."""
    import shutil

    from vitlab.cli import main

    # a run with mid-epoch checkpoints (20 steps an epoch; every 5 steps, the last 3 kept), in one process
    assert main(["train", "--name", "r", "--out_dir", str(tmp_path), *TRAIN_FLAGS[:-5], "--epochs", "1",
                 "--ckpt-every", "5", "--keep-last", "3", "--threads", "1", "--device", "cpu", "-q"]) == 0
    run = tmp_path / "r"
    shutil.copy(run / "checkpoint-step000015.safetensors", run / "checkpoint.safetensors")  # batch 15 of 20
    before = (run / "checkpoint.safetensors").read_bytes()
    capsys.readouterr()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--resume", str(run), "--epochs", "2", "--ckpt-every", "0", "-q"]) == 2
    assert "was written inside an epoch by 1 process(es): resume it with 1" in capsys.readouterr().err
    assert (run / "checkpoint.safetensors").read_bytes() == before
    assert main(["train", "--name", "y", "--out_dir", str(tmp_path), "--batch-size", "63"]) == 2
    assert "optim.batch_size=63 must be divisible by the 2 processes" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


# the classification loop: 2 processes each with half of every batch of 64 against 1 process with all of it
TRAIN_FLAGS = ["--model.dim", "16", "--model.depth", "1", "--model.heads", "2", "--model.patch_size", "4",
               "--model.pool", "avg", "--model.drop_path", "0", "--data.augment", "none", "--batch-size", "64",
               "--epochs", "2", "--lr", "5e-3", "--optim.warmup_epochs", "1", "--threads", "1", "--device", "cpu",
               "-q"]


def test_torchrun_classification_equals_one_process_on_the_global_batch(tmp_path):
    import json
    import subprocess

    from safetensors.torch import load_file

    from vitlab.cli import main

    assert main(["train", "--name", "one", "--out_dir", str(tmp_path), *TRAIN_FLAGS]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vitlab.cli", "train", "--name", "two", "--out_dir", str(tmp_path), *TRAIN_FLAGS]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run folder:") == 1 and "2 processes, 32 images each a step" in proc.stderr

    one, two = tmp_path / "one", tmp_path / "two"
    assert json.loads((two / "metrics.json").read_text())["processes"] == 2
    # DDP averages the gradients of two half-batch means: the gradient of the whole batch's mean, so the
    # two runs differ only by float rounding (summation order) after 44 AdamW steps
    a, b = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    # Except the key bias: softmax is shift-invariant, so its true gradient is 0 and what reaches it is
    # rounding noise, which Adam's m / sqrt(v) scales up to full-size steps (seen: 1e-4 apart, the rest
    # <= 1.2e-7). It cannot change any output, so it is left out.
    d = 16
    for name in ("one", "two"):
        w = a if name == "one" else b
        w["blocks.0.attn.to_qkv.bias"] = torch.cat([w["blocks.0.attn.to_qkv.bias"][:d],
                                                    w["blocks.0.attn.to_qkv.bias"][2 * d:]])
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    rows = lambda run: [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    for r1, r2 in zip(rows(one), rows(two), strict=True):
        assert r1["step"] == r2["step"] and r1["val_acc"] == pytest.approx(r2["val_acc"], abs=1 / 145 + 1e-9)
        # the train metrics are summed over both processes' halves: the same images as the one-process run
        assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-4)
        assert r2["train_acc"] == pytest.approx(r1["train_acc"], abs=1e-9)


def test_shard_and_main_process_outside_torchrun():
    from vitlab.train.distributed import on_main_process, shard

    batch = torch.arange(6)
    assert shard(batch) is batch  # one process takes the whole batch
    assert on_main_process(lambda: 7) == 7
    with pytest.raises(FileExistsError, match="exists"):
        on_main_process(lambda: (_ for _ in ()).throw(FileExistsError("runs/x exists")))


# -- segmentation under torchrun, stopped by SIGTERM, resumed; a stalled process ---------------------------------
SEG_FLAGS = ["--task", "segment", "--model.img_size", "16", "--model.patch_size", "2", "--model.dim", "16",
             "--model.depth", "1", "--model.heads", "2", "--model.stem", "patch", "--model.drop_path", "0.1",
             "--segment.canvas", "16", "--segment.scale", "1", "--segment.width", "8", "--segment.train_images", "256",
             "--segment.val_images", "32", "--segment.test_images", "32", "--batch-size", "16", "--epochs", "2",
             "--optim.warmup_epochs", "1", "--threads", "1", "--device", "cpu", "-q"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _torchrun(*args):
    import subprocess

    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "vitlab.cli",
            *args]


def _children(pid: int) -> list[int]:
    """The worker processes torchrun started (its children), from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return sorted(out)


def _wait_for(predicate, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"ended early: {proc.communicate()[1][-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("timed out")


def test_torchrun_segmentation_stops_on_sigterm_at_one_step_and_resumes_bit_for_bit(tmp_path):
    """Segmentation runs under torchrun like every task. SIGTERM to torchrun (what Kubernetes sends) reaches both
    processes; they agree on one step, rank 0 checkpoints it with both processes' random streams, and the run
    resumed under torchrun ends bit-identical to an uninterrupted 2-process run (issue 11, defect 5)."""
    import json
    import signal
    import subprocess

    from safetensors.torch import load_file

    from vitlab.train.checkpoint import load_tensors

    full = subprocess.run(_torchrun("train", "--name", "full", "--out_dir", str(tmp_path), *SEG_FLAGS), env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stderr[-3000:]
    assert full.stdout.count("run folder:") == 1 and "2 processes, 8 images each a step" in full.stderr

    cmd = _torchrun("train", "--name", "cut", "--out_dir", str(tmp_path), *SEG_FLAGS)
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "cut"
    _wait_for(lambda: (run / "checkpoint.safetensors").exists(), proc)  # epoch 1 done: now inside epoch 2
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert "SIGTERM: interrupted at step" in err and f"train --resume {run}" in err
    tensors, meta = load_tensors(run / "checkpoint.safetensors")
    assert meta["world_size"] == 2 and {"rng.0.torch", "rng.1.torch"} <= set(tensors)
    assert 0 < meta["batch"] < 16 and meta["epoch"] == 1  # inside epoch 2 (16 steps an epoch), one step for both
    assert not (run / "model.safetensors").exists()

    resumed = subprocess.run(_torchrun("train", "--resume", str(run), "-q"), env=ENV, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = lambda r: [{k: v for k, v in json.loads(line).items() if k not in ("epoch_time_s", "images_per_s")}  # noqa: E731
                      for line in (r / "metrics.jsonl").read_text().splitlines()]
    assert rows(tmp_path / "full") == rows(run) and [r["epoch"] for r in rows(run)] == [1, 2]
    assert {"val_miou", "val_pixel_acc", "train_pixel_acc"} <= set(rows(run)[0])


def test_a_stalled_process_times_out_with_one_line(tmp_path):
    """A process that stops answering (SIGSTOP) no longer leaves the others waiting 30 minutes (gloo's default):
    after dist_timeout_s they stop with one line that says what happened (issue 11, defect 13)."""
    import signal
    import subprocess

    cmd = _torchrun("train", "--name", "stall", "--out_dir", str(tmp_path), *TRAIN_FLAGS, "--epochs", "50",
                    "--dist_timeout_s", "4")
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "stall"
    try:
        _wait_for(lambda: (run / "checkpoint.safetensors").exists(), proc)  # training under way
        workers = _children(proc.pid)
        assert len(workers) == 2
        stalled = workers[-1]
        os.kill(stalled, signal.SIGSTOP)
        started = time.monotonic()
        _wait_for(lambda: not os.path.exists(f"/proc/{workers[0]}") or
                  open(f"/proc/{workers[0]}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", proc, timeout=90)
        waited = time.monotonic() - started
    finally:
        for pid in _children(proc.pid):
            os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    assert waited < 60, waited  # seconds, not 30 minutes
    assert "waited more than dist_timeout_s=4 s for the others" in err, err[-3000:]
    line = next(line for line in err.splitlines() if "dist_timeout_s=4" in line)
    assert line.startswith("vitlab train: error:")
