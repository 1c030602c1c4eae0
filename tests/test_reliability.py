"""vitlab/train/loop.py, checkpoint.py: mid-epoch checkpoints, exact resume after SIGKILL, Ctrl-C and SIGTERM,
keep-last-K and best checkpoints, roll-back, safe loading of weight files.

Every run is tiny (16 wide, 1 block, 20 steps an epoch, one thread) so that the file takes seconds.
A resumed run must be bit-identical to an uninterrupted one of the same seed: equal tensors in
model.safetensors and equal metrics (all but wall-clock timings), each epoch exactly once.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vitlab.cli import main
from vitlab.configio import apply_overrides, save_json, to_dict
from vitlab.recipes import digits
from vitlab.train import CheckpointError, fit, load_run_config, load_state_dict_file
from vitlab.train.checkpoint import load_tensors, save_tensors
from vitlab.train.loop import TrainingOutOfMemory, _out_of_memory_hint, is_out_of_memory
from vitlab.train.run_dir import step_checkpoints

STEPS = 1292 // 64  # 20 steps an epoch (1,292 training digits once the validation split is held out)
TIMING = {"epoch_time_s", "images_per_s"}
# Augmentation on, so that the restored random state matters; 3 epochs of 20 steps.
RUN = {"model.dim": 16, "model.depth": 1, "model.heads": 2, "model.patch_size": 4, "model.mlp_ratio": 2.0,
       "model.pool": "avg", "model.dropout": 0.0, "model.drop_path": 0.0, "data.augment": "digits",
       "optim.epochs": 3, "optim.batch_size": 64, "optim.lr": 5e-3, "optim.min_lr": 1e-5,
       "optim.warmup_epochs": 1.0, "optim.weight_decay": 0.05, "optim.label_smoothing": 0.1,
       "optim.grad_clip": 1.0, "device": "cpu", "progress": False, "threads": 1, "seed": 11}
CLI_FLAGS = [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in RUN.items()]
ENV = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def config(out, name, **changes):
    return apply_overrides(digits(), {**RUN, "out_dir": str(out), "name": name, **changes})


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_run(reference, other):
    """Bit-identical final weights and identical metrics, each epoch once."""
    ta, tb = load_tensors(reference / "model.safetensors")[0], load_tensors(other / "model.safetensors")[0]
    assert set(ta) == set(tb)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    rows_a, rows_b = read_jsonl(reference / "metrics.jsonl"), read_jsonl(other / "metrics.jsonl")
    assert [r["epoch"] for r in rows_b] == [1, 2, 3]
    for a, b in zip(rows_a, rows_b):
        assert {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, checkpointing at epoch ends only."""
    return fit(config(tmp_path_factory.mktemp("ref"), "reference"))


@pytest.fixture(scope="module")
def stepped(tmp_path_factory):
    """The same run with a checkpoint every 5 steps, keeping the last 8."""
    return fit(config(tmp_path_factory.mktemp("stepped"), "stepped", ckpt_every=5, keep_last=8))


# -- mid-epoch checkpoints, keep-last-K, best --------------------------------------------------------
def test_checkpointing_every_n_steps_changes_nothing_and_keeps_the_last_k(reference, stepped):
    assert_same_run(reference, stepped)
    # written at steps 5, 10, 15, 20 (epoch end), 25, ..., 40 (epoch end), ..., 55, 60: the last 8 stay
    assert [p.name for p in step_checkpoints(stepped)] == [f"checkpoint-step{s:06d}.safetensors"
                                                          for s in (25, 30, 35, 40, 45, 50, 55, 60)]
    assert (stepped / "checkpoint.safetensors").read_bytes() == (stepped / "checkpoint-step000060.safetensors"
                                                                 ).read_bytes()
    tensors, meta = load_tensors(stepped / "checkpoint-step000035.safetensors")
    assert (meta["epoch"], meta["step"], meta["batch"]) == (1, 35, 15)
    assert int(tensors["loop.sum.n"]) == 15 * 64  # the epoch's running sums, 15 batches of 64 so far
    assert meta["data_order"] == {"seed": 11, "epoch": 1, "batch": 15}
    _, meta = load_tensors(stepped / "checkpoint-step000040.safetensors")
    assert (meta["epoch"], meta["step"], meta["batch"]) == (2, 40, 0)
    # no temporary files are left behind (.lock is the run folder's lock)
    assert [p.name for p in stepped.iterdir() if p.name.startswith(".")] == [".lock"]


def test_kept_checkpoints_are_independent_files(stepped, tmp_path):
    """Issue 11, defect 6: checkpoint.safetensors, best.safetensors and the step files used to be hard links to
    one file, so the documented roll-back (copying a step file over checkpoint.safetensors) overwrote the best
    model. Now each is its own file: writing one leaves the others as they were."""
    run = tmp_path / "copy"
    shutil.copytree(stepped, run)
    files = [run / "checkpoint.safetensors", run / "best.safetensors", *step_checkpoints(run)]
    assert len({os.stat(p).st_ino for p in files}) == len(files) and all(os.stat(p).st_nlink == 1 for p in files)
    best_before = (run / "best.safetensors").read_bytes()
    shutil.copy(run / "checkpoint-step000045.safetensors", run / "checkpoint.safetensors")
    assert (run / "best.safetensors").read_bytes() == best_before


def test_default_keeps_one_checkpoint_and_the_best(reference):
    assert not step_checkpoints(reference)
    rows = read_jsonl(reference / "metrics.jsonl")
    best_epoch = max(range(len(rows)), key=lambda i: (rows[i]["val_acc"], -i)) + 1  # the first of any ties
    tensors, meta = load_tensors(reference / "best.safetensors")
    assert meta["val_acc"] == max(r["val_acc"] for r in rows)
    assert meta["epoch"] == best_epoch and meta["step"] == best_epoch * STEPS
    assert meta["best"] == {"value": meta["val_acc"], "epoch": best_epoch}
    _, last = load_tensors(reference / "checkpoint.safetensors")
    assert last["epoch"] == 3 and last["val_acc"] == rows[-1]["val_acc"]


def test_best_follows_the_validation_accuracy(tmp_path):
    """Save-best on a run whose accuracy changes: the file holds the epoch with the highest val_acc, and its
    weights are that epoch's (they differ from the last epoch's)."""
    run = fit(config(tmp_path, "best", **{"optim.epochs": 4, "optim.lr": 2e-2}))
    rows = read_jsonl(run / "metrics.jsonl")
    best, meta = load_tensors(run / "best.safetensors")
    accs = [r["val_acc"] for r in rows]
    assert meta["val_acc"] == max(accs) and meta["epoch"] == accs.index(max(accs)) + 1
    if meta["epoch"] < 4:
        last = load_tensors(run / "model.safetensors")[0]
        assert not torch.equal(best["model.head.weight"], last["head.weight"])


@pytest.mark.parametrize("step", [35, 50])
def test_resume_from_a_mid_epoch_checkpoint_is_bit_identical(reference, stepped, tmp_path, step):
    """A copy of the run as it stood at ``step`` (epoch 2 batch 15, or epoch 3 batch 10), resumed."""
    run = tmp_path / "partial"
    run.mkdir()
    shutil.copy(stepped / "config.json", run / "config.json")
    shutil.copy(stepped / f"checkpoint-step{step:06d}.safetensors", run / "checkpoint.safetensors")
    shutil.copy(stepped / "metrics.jsonl", run / "metrics.jsonl")  # rows past the checkpoint are dropped
    assert fit(config(tmp_path, "ignored"), resume=run) == run
    assert_same_run(reference, run)


# -- a real crash (SIGKILL) and a real Ctrl-C (SIGINT), in a subprocess -------------------------------
def start_training(out, name, *extra):
    cmd = [sys.executable, "-m", "vitlab.cli", "train", "-q", *CLI_FLAGS, "--out_dir", str(out), "--name", name,
           *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def wait_for_mid_epoch_checkpoint(proc, ckpt, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ckpt.exists():
            try:
                meta = load_tensors(ckpt)[1]
            except CheckpointError:  # cannot happen with an atomic rename; retry if it ever did
                meta = {}
            if meta.get("batch", 0) > 0:
                return meta
        if proc.poll() is not None:
            raise AssertionError(f"training ended before a mid-epoch checkpoint: {proc.communicate()}")
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("no mid-epoch checkpoint in time")


def test_sigkill_mid_epoch_then_resume_is_bit_identical(reference, tmp_path, capsys):
    proc = start_training(tmp_path, "killed", "--ckpt-every", "3")
    run = tmp_path / "killed"
    wait_for_mid_epoch_checkpoint(proc, run / "checkpoint.safetensors")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "model.safetensors").exists()  # it really died before the end
    _, meta = load_tensors(run / "checkpoint.safetensors")
    assert meta["step"] < 3 * STEPS

    code = main(["train", "-q", "--resume", str(run), "--threads", "1"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert_same_run(reference, run)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_resume_is_bit_identical(reference, tmp_path, capsys, sig):
    """Ctrl-C, and SIGTERM (what Slurm and Kubernetes send before killing; issue 11, defect 5), finish the step,
    checkpoint it and print the resume command."""
    proc = start_training(tmp_path, "interrupted", "--ckpt-every", "4")
    run = tmp_path / "interrupted"
    wait_for_mid_epoch_checkpoint(proc, run / "checkpoint.safetensors")
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"vitlab train --resume {run}" in err and "interrupted at step" in err and sig.name in err
    _, meta = load_tensors(run / "checkpoint.safetensors")
    assert f"at step {meta['step']} " in err  # the checkpoint is of the step the message names
    assert not (run / "model.safetensors").exists()

    code = main(["train", "-q", "--resume", str(run), "--threads", "1"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert_same_run(reference, run)


# -- broken checkpoints on resume ----------------------------------------------------------------------
def test_resume_with_a_corrupted_checkpoint_exits_2_naming_the_file(reference, tmp_path, capsys):
    run = tmp_path / "corrupt"
    run.mkdir()
    shutil.copy(reference / "config.json", run / "config.json")
    raw = (reference / "checkpoint.safetensors").read_bytes()
    (run / "checkpoint.safetensors").write_bytes(raw[:len(raw) // 2])  # truncated
    code = main(["train", "-q", "--resume", str(run)])
    _, err = capsys.readouterr()
    assert code == 2 and str(run / "checkpoint.safetensors") in err and "Traceback" not in err
    assert err.startswith("vitlab train: error:") and len(err.strip().splitlines()) == 1


def test_resume_with_a_checkpoint_of_another_shape_names_the_keys(reference, tmp_path, capsys):
    run = tmp_path / "misfit"
    run.mkdir()
    cfg = load_run_config(reference)
    save_json(run / "config.json", to_dict(apply_overrides(cfg, {"model.dim": 32, "out_dir": str(tmp_path),
                                                                 "name": "misfit"})))
    shutil.copy(reference / "checkpoint.safetensors", run / "checkpoint.safetensors")
    code = main(["train", "-q", "--resume", str(run)])
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    assert str(run / "checkpoint.safetensors") in err
    assert "head.weight: file (10, 16) vs model (10, 32)" in err


# -- safe loading of weight files ---------------------------------------------------------------------
class Payload:
    """A class a pickle must import and run to rebuild: torch.load(weights_only=True) refuses it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))  # would create the marker file if it were ever unpickled


def test_load_state_dict_file_reads_safetensors_and_torch_state_dicts(reference, tmp_path):
    state = {"w": torch.randn(3, 4), "b": torch.arange(5), "nested.x": torch.ones(2, dtype=torch.bfloat16)}
    torch.save(state, tmp_path / "weights.pt")
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.pth")
    save_tensors(tmp_path / "weights.safetensors", state, {})
    for name in ("weights.pt", "wrapped.pth", "weights.safetensors"):
        loaded = load_state_dict_file(tmp_path / name)
        assert set(loaded) == set(state), name
        assert all(torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in state.items())
    # a training checkpoint gives the model's weights
    model = load_state_dict_file(reference / "checkpoint.safetensors")
    weights = load_tensors(reference / "model.safetensors")[0]
    assert set(model) == set(weights) and all(torch.equal(model[k], weights[k]) for k in weights)


def test_load_state_dict_file_refuses_a_file_that_needs_code(tmp_path):
    marker = tmp_path / "code-ran"
    bad = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "payload": Payload(marker)}, bad)
    with pytest.raises(CheckpointError) as e:
        load_state_dict_file(bad)
    assert str(bad) in str(e.value) and "arbitrary code" in str(e.value)
    assert not marker.exists()
    # torch.load without the guard would have run it: the file is a genuine code-carrying pickle
    torch.load(bad, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("content, fragment", [
    (b"\x00" * 64, "unreadable"),
    (None, "does not exist"),
    ("list", "not a state dict"),
])
def test_load_state_dict_file_errors_name_the_file(tmp_path, content, fragment):
    path = tmp_path / "weights.bin"
    if content == "list":
        torch.save([torch.zeros(1)], path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        load_state_dict_file(path)
    assert str(path) in str(e.value) and fragment in str(e.value)


# -- out of memory ------------------------------------------------------------------------------------
def test_out_of_memory_in_a_step_says_so_and_suggests_a_smaller_batch():
    """A genuine allocation failure (2**62 bytes on the CPU) inside the guard the training step runs in.
    The loop itself is not driven to OOM here: no honest way on a shared CPU machine."""
    with pytest.raises(TrainingOutOfMemory) as e:
        with _out_of_memory_hint(256, torch.device("cpu")):
            torch.empty(2**62, dtype=torch.uint8)
    msg = str(e.value)
    assert "out of memory" in msg and "--batch-size" in msg and "128" in msg and "batch_size=256" in msg
    assert is_out_of_memory(e.value.__cause__)
    # other errors pass through unchanged
    with pytest.raises(RuntimeError, match="shape") as e:
        with _out_of_memory_hint(256, torch.device("cpu")):
            torch.zeros(2, 3) @ torch.zeros(2, 3)
    assert not isinstance(e.value, TrainingOutOfMemory)
