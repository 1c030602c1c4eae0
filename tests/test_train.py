"""vitlab/train/loop.py (and artifacts.py, plots.py): real classification runs on the bundled digits, on CPU.

The runs are small (a 2-block, 32-wide ViT, or smaller) so the whole file takes seconds. Every
setting that matters for the numbers is pinned here, so tuning the digits recipe does not move them.
"""
import json
import math
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vitlab.config import ModelConfig
from vitlab.configio import apply_overrides, to_dict
from vitlab.data import Normalize, load_data
from vitlab.models import ViT
from vitlab.recipes import digits
from vitlab.errors import RunFolderError
from vitlab.train import CheckpointError, TrainingDiverged, evaluate, fit, load_model, load_run_config
from vitlab.train.checkpoint import load_model_state, load_tensors

# 1,797 digits: a stratified 360 for testing, then a stratified 10% of the other 1,437 for validation
N_TRAIN, N_VAL, N_TEST = 1292, 145, 360
TIMING = {"epoch_time_s", "images_per_s"}

# 12 epochs of this reach 0.93-0.97 validation accuracy over seeds 0-6 (checked when the test was written).
LEARNS = {"model.dim": 32, "model.depth": 2, "model.heads": 2, "model.patch_size": 4, "model.mlp_ratio": 2.0,
          "model.pool": "avg", "model.class_token": True, "model.dropout": 0.0, "model.drop_path": 0.0,
          "data.augment": "none", "optim.epochs": 12, "optim.batch_size": 32, "optim.lr": 5e-3,
          "optim.min_lr": 1e-5, "optim.warmup_epochs": 1, "optim.weight_decay": 0.05,
          "optim.label_smoothing": 0.1, "optim.grad_clip": 1.0, "device": "cpu", "progress": False,
          "threads": 1}  # two OpenMP threads on a busy 2-core machine spin-wait and run ~50x slower
TINY = {**LEARNS, "model.dim": 16, "model.depth": 1, "optim.batch_size": 64}  # 22 steps an epoch


def small_config(tmp_path, base=LEARNS, **overrides):
    changes = {**base, "out_dir": str(tmp_path)}
    changes.update({k.replace("__", "."): v for k, v in overrides.items()})
    return apply_overrides(digits(), changes)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def vit_param_count(m: ModelConfig) -> int:
    """Parameters of a ViT worked out by hand from the paper's architecture."""
    d, hidden, n = m.dim, int(m.dim * m.mlp_ratio), m.num_patches
    patch = m.in_chans * m.patch_size**2 * d + d  # conv weight + bias
    tokens = (d if m.class_token else 0) + (n + m.class_token) * d  # class token + position embedding
    block = (2 * 2 * d  # two LayerNorms
             + d * 3 * d + (3 * d if m.qkv_bias else 0) + d * d + d  # qkv, output projection
             + d * hidden + hidden + hidden * d + d)  # MLP
    return patch + tokens + m.depth * block + 2 * d + d * m.num_classes + m.num_classes


def assert_png(path):
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", raw[8:16])
    assert kind == b"IHDR" and length == 13
    assert struct.unpack(">I", raw[16 + 13:16 + 17])[0] == zlib.crc32(raw[12:16 + 13])
    assert raw.endswith(b"IEND\xaeB`\x82")
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.width > 100 and img.height > 100
        assert np.asarray(img.convert("L")).std() > 0  # something was drawn


# -- (a) a run learns and writes its artefacts -----------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = small_config(tmp_path_factory.mktemp("runs"), name="learns", seed=0)
    return cfg, fit(cfg, argv=["vitlab", "train", "--test"])


def test_run_learns_digits(trained):
    cfg, run_dir = trained
    final = json.loads((run_dir / "metrics.json").read_text())
    assert final["val_acc"] >= 0.90 and final["test_acc"] >= 0.90  # chance is 0.10
    assert final["epochs"] == 12


def test_run_folder_contents(trained):
    cfg, run_dir = trained
    assert {p.name for p in run_dir.iterdir()} == {"config.json", "argv.json", "metrics.jsonl", "metrics.json",
                                                    "model.safetensors", "checkpoint.safetensors", "curves.png",
                                                    "best.safetensors", ".lock", "tensorboard"}  # .lock: held while training
    assert load_run_config(run_dir) == cfg
    assert json.loads((run_dir / "argv.json").read_text()) == ["vitlab", "train", "--test"]

    rows = read_jsonl(run_dir / "metrics.jsonl")
    steps_per_epoch = N_TRAIN // 32
    assert [r["epoch"] for r in rows] == list(range(1, 13))
    assert [r["step"] for r in rows] == [steps_per_epoch * e for e in range(1, 13)]
    assert rows[-1]["lr"] == pytest.approx(1e-5)  # the cosine ends at min_lr on the last step
    assert rows[0]["lr"] == pytest.approx(5e-3)  # one warm-up epoch ends at the base
    for r in rows:
        # 145 validation images: per-epoch accuracies are multiples of 1/145, counted on the validation split
        assert r["val_acc"] * N_VAL == pytest.approx(round(r["val_acc"] * N_VAL), abs=1e-4)
        assert "test_acc" not in r and "test_loss" not in r  # the test split is not looked at per epoch
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]

    final = json.loads((run_dir / "metrics.json").read_text())
    assert final["val_acc"] == rows[-1]["val_acc"] and final["val_loss"] == rows[-1]["val_loss"]
    assert final["metric"] == "val_acc" and final["best_val_acc"] == max(r["val_acc"] for r in rows)
    accs = [r["val_acc"] for r in rows]
    assert final["best_epoch"] == accs.index(max(accs)) + 1  # the first of any ties
    # the test split, scored once at the end: a multiple of 1/360
    assert final["test_acc"] * N_TEST == pytest.approx(round(final["test_acc"] * N_TEST), abs=1e-4)
    assert final["train_time_s"] == pytest.approx(sum(r["epoch_time_s"] for r in rows), abs=0.01)
    assert final["params"] == vit_param_count(cfg.model) == 18218

    tensors, meta = load_tensors(run_dir / "checkpoint.safetensors")
    assert (meta["epoch"], meta["step"]) == (12, 12 * steps_per_epoch)
    assert_png(run_dir / "curves.png")


def test_tensorboard_events_hold_the_runs_numbers(trained):
    """Read back with TensorBoard's own reader: a loss and a learning rate per step, the epochs' metrics at the
    step each epoch ended, and the test metrics once."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg, run_dir = trained
    (events_dir,) = [run_dir / "tensorboard"]
    acc = EventAccumulator(str(events_dir))
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    rows = read_jsonl(run_dir / "metrics.jsonl")
    steps = rows[-1]["step"]
    assert [e.step for e in acc.Scalars("train/loss_step")] == list(range(steps))
    assert [e.value for e in acc.Scalars("train/lr")][-1] == pytest.approx(rows[-1]["lr"])
    for name in ("val/acc", "val/loss", "train/acc", "train/loss"):
        assert name in scalars
        split, metric = name.split("/")
        assert [(e.step, e.value) for e in acc.Scalars(name)] == [
            (r["step"], pytest.approx(r[f"{split}_{metric}"], rel=1e-6)) for r in rows]
    final = json.loads((run_dir / "metrics.json").read_text())
    assert [e.value for e in acc.Scalars("test/acc")] == [pytest.approx(final["test_acc"])]


def test_model_file_rebuilds_the_trained_model(trained):
    cfg, run_dir = trained
    model, meta = load_model(run_dir)
    assert model.cfg == cfg.model and not model.training
    assert sum(p.numel() for p in model.parameters()) == 18218
    # the model file and the last checkpoint hold the same weights
    ckpt, _ = load_tensors(run_dir / "checkpoint.safetensors")
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt[f"model.{k}"]), k
    # normalisation statistics of the training split, worked out independently with numpy
    train, _, test = load_data(cfg.data)
    x = train.images.numpy().astype(np.float64) / 255
    assert meta["mean"] == pytest.approx([x.mean()], rel=1e-5)
    assert meta["std"] == pytest.approx([x.std(ddof=1)], rel=1e-4)
    assert meta["classes"] == [str(i) for i in range(10)]
    final = json.loads((run_dir / "metrics.json").read_text())
    ev = evaluate(model, test, Normalize(meta["mean"], meta["std"]))
    assert ev["acc"] == final["test_acc"]
    assert ev["loss"] == pytest.approx(final["test_loss"], rel=1e-5)
    # and evaluate's accuracy is the plain argmax accuracy
    with torch.no_grad():
        logits = model(Normalize(meta["mean"], meta["std"])(test.images))
    assert (logits.argmax(-1) == test.labels).float().mean().item() == pytest.approx(ev["acc"])
    assert torch.nn.functional.cross_entropy(logits, test.labels).item() == pytest.approx(ev["loss"], rel=1e-5)


# -- (b) resume and (c) determinism ---------------------------------------------------------------
# The interrupted run is configured for 1 epoch and resumed to 3. Its one warm-up epoch makes the
# learning rate of epoch 1 independent of the total length (warm-up does not look at total_steps),
# so the resumed run must retrace the uninterrupted one exactly. The augmentation stays on so that
# the restored random-number state matters.
RESUME = {**TINY, "data.augment": "digits", "optim.warmup_epochs": 1.0}


@pytest.fixture(scope="module")
def three_epoch_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume")
    full_a = fit(small_config(out, RESUME, name="full_a", seed=7, optim__epochs=3))
    full_b = fit(small_config(out, RESUME, name="full_b", seed=7, optim__epochs=3))
    return out, full_a, full_b


def test_resume_is_bit_identical_to_an_uninterrupted_run(three_epoch_runs):
    out, full, _ = three_epoch_runs
    first = fit(small_config(out, RESUME, name="resumed", seed=7, optim__epochs=1))
    assert [r["epoch"] for r in read_jsonl(first / "metrics.jsonl")] == [1]
    # As if the process died after logging epoch 2 but before its checkpoint was written, while writing a third
    # line (power loss, a full disk): the whole row past the checkpoint and the torn one are dropped
    with open(first / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 2, "val_acc": -1.0}) + "\n" + '{"epoch": 3, "val_a')

    resumed = fit(small_config(out, RESUME, name="ignored", seed=7, optim__epochs=3), resume=first)
    assert resumed == first
    model_full, _ = load_model(full)
    model_resumed, _ = load_model(resumed)
    for (name, a), b in zip(model_full.state_dict().items(), model_resumed.state_dict().values()):
        assert torch.equal(a, b), name
    rows_full, rows_resumed = read_jsonl(full / "metrics.jsonl"), read_jsonl(resumed / "metrics.jsonl")
    assert [r["epoch"] for r in rows_resumed] == [1, 2, 3]
    for a, b in zip(rows_full, rows_resumed):
        assert {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}
    # The run folder now describes what was trained: 3 epochs.
    assert load_run_config(resumed).optim.epochs == 3
    assert json.loads((resumed / "metrics.json").read_text())["epochs"] == 3
    _, meta = load_tensors(resumed / "checkpoint.safetensors")
    assert meta["epoch"] == 3 and meta["step"] == 3 * (N_TRAIN // 64)


def test_resume_of_a_finished_run_trains_nothing_more(three_epoch_runs):
    out, _, full_b = three_epoch_runs
    before = (full_b / "checkpoint.safetensors").read_bytes()
    fit(small_config(out, RESUME, optim__epochs=3), resume=full_b)
    assert (full_b / "checkpoint.safetensors").read_bytes() == before
    assert [r["epoch"] for r in read_jsonl(full_b / "metrics.jsonl")] == [1, 2, 3]


def test_same_seed_gives_identical_metrics(three_epoch_runs):
    _, a, b = three_epoch_runs
    rows_a, rows_b = read_jsonl(a / "metrics.jsonl"), read_jsonl(b / "metrics.jsonl")
    assert len(rows_a) == len(rows_b) == 3
    for ra, rb in zip(rows_a, rows_b):
        assert set(ra) - TIMING == {"epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc"}
        assert {k: v for k, v in ra.items() if k not in TIMING} == {k: v for k, v in rb.items() if k not in TIMING}
    ta, tb = load_tensors(a / "model.safetensors")[0], load_tensors(b / "model.safetensors")[0]
    assert all(torch.equal(ta[k], tb[k]) for k in ta)


def test_different_seed_gives_different_run(three_epoch_runs, tmp_path):
    _, a, _ = three_epoch_runs
    other = fit(small_config(tmp_path, RESUME, name="other", seed=8, optim__epochs=1))
    assert read_jsonl(other / "metrics.jsonl")[0]["train_loss"] != read_jsonl(a / "metrics.jsonl")[0]["train_loss"]


def test_a_time_budget_fixes_the_epochs_after_the_first_and_a_resume_keeps_them(tmp_path):
    """optim.time_budget_s: a budget shorter than the first epoch leaves that one epoch (the run folder says 1 of
    the 3 asked for, and a resume trains no more); a budget longer than every epoch changes nothing."""
    short = fit(small_config(tmp_path, RESUME, name="short", optim__epochs=3, optim__time_budget_s=1e-3))
    assert [r["epoch"] for r in read_jsonl(short / "metrics.jsonl")] == [1]
    assert (load_run_config(short).optim.epochs, load_run_config(short).optim.time_budget_s) == (1, 1e-3)
    assert json.loads((short / "metrics.json").read_text())["epochs"] == 1
    before = (short / "checkpoint.safetensors").read_bytes()
    fit(load_run_config(short), resume=short)  # as `vitlab train --resume RUN`: the run's own configuration
    assert (short / "checkpoint.safetensors").read_bytes() == before
    long = fit(small_config(tmp_path, RESUME, name="long", optim__epochs=2, optim__time_budget_s=1e6))
    assert [r["epoch"] for r in read_jsonl(long / "metrics.jsonl")] == [1, 2]
    assert read_jsonl(long / "metrics.jsonl")[-1]["lr"] == pytest.approx(1e-5)  # the cosine of 2 epochs, ended


def test_a_time_budget_that_cuts_the_run_keeps_its_warm_up_in_steps_within_half_the_run():
    from vitlab.train.loop import _budget_epochs, _refit

    cfg = apply_overrides(digits(), {"optim.epochs": 10, "optim.time_budget_s": 100.0})
    assert _budget_epochs(cfg, 0, 30.0, None, 30.0) == 3  # 1 + (100 - 30) // 30
    fitted, total, warmup = _refit(cfg, 3, steps_per_epoch=20, warmup_steps=40)
    assert (fitted.optim.epochs, total, warmup) == (3, 60, 30)  # 40 warm-up steps would be 2/3 of the run
    assert _refit(cfg, 3, steps_per_epoch=20, warmup_steps=10)[2] == 10
    assert _budget_epochs(cfg, 0, 5.0, None, 5.0) == 10  # all 10 epochs fit
    same, total, warmup = _refit(cfg, 10, steps_per_epoch=20, warmup_steps=150)
    assert (same, total, warmup) == (cfg, 200, 150)
    # a first epoch of 30 s that compiled for 15 of them: 1 + (100 - 30) // 15 = 5 epochs, not 3
    assert _budget_epochs(cfg, 0, 30.0, 15.0, 30.0) == 5


def test_epochs_that_slow_down_are_cut_to_keep_the_budget():
    """The first epoch fixed 5 epochs of 15 s within 100 s; the machine then slows to 25 s an epoch: after epoch 2
    (55 s spent) 3 more would end at 130 s, so the run keeps the 1 more that fits (80 s); epochs that keep their pace
    are left alone, and a cut never goes below the epochs done."""
    from vitlab.train.loop import _budget_epochs
    from vitlab.train.schedule import epochs_still_within

    cfg = apply_overrides(digits(), {"optim.epochs": 5, "optim.time_budget_s": 100.0})
    assert _budget_epochs(cfg, 1, 25.0, None, 55.0, [25.0]) == 3
    assert _budget_epochs(cfg, 1, 15.0, None, 30.0, [15.0]) == 5  # on pace: 30 + 3 x 15 = 75 s
    # the mean pace of the epochs after the first: one slow epoch (30 s) after two of 15 s is a pace of 20 s, and
    # 75 s spent + 20 = 95 s keeps the fifth epoch; the slow epoch's 30 s alone (105 s) would have cut it
    assert _budget_epochs(cfg, 3, 30.0, None, 75.0, [15.0, 15.0, 30.0]) == 5
    assert _budget_epochs(cfg, 2, 30.0, None, 75.0, [30.0, 30.0]) == 3  # 15 + 30 + 30 s: no 30 s epoch fits in 25
    assert epochs_still_within(100.0, 55.0, 2, 25.0, 5) == 3
    assert epochs_still_within(100.0, 99.0, 4, 25.0, 5) == 4  # nothing more fits: stop after this epoch
    assert epochs_still_within(100.0, 30.0, 2, 0.0, 5) == 5  # no measured time: nothing to cut


# -- (d) an existing run folder --------------------------------------------------------------------
def test_existing_run_folder_is_refused_unless_overwrite(tmp_path):
    cfg = small_config(tmp_path, TINY, name="taken", optim__epochs=1)
    run_dir = fit(cfg)
    (run_dir / "marker.txt").write_text("keep me?")
    with pytest.raises(RunFolderError, match="taken"):
        fit(cfg)
    assert (run_dir / "marker.txt").exists()
    assert fit(cfg, overwrite=True) == run_dir
    assert not (run_dir / "marker.txt").exists()
    assert [r["epoch"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [1]


def test_empty_existing_folder_is_used(tmp_path):
    (tmp_path / "empty").mkdir()
    run_dir = fit(small_config(tmp_path, TINY, name="empty", optim__epochs=1))
    assert (run_dir / "model.safetensors").is_file()


# -- (e) divergence ---------------------------------------------------------------------------------
def test_divergence_raises_and_keeps_the_last_good_checkpoint(tmp_path):
    """AdamW's decoupled decay multiplies the decayed weights by (1 - lr*wd) each step: with lr*wd = 2.5
    that is x(-1.5) a step, so the weights grow geometrically and float32 overflows in the forward pass
    after a few dozen steps (step ~35, in epoch 2), after epoch 1 was checkpointed."""
    cfg = small_config(tmp_path, TINY, name="boom", optim__lr=50.0, optim__weight_decay=0.05,
                       optim__warmup_epochs=0.0, optim__epochs=20)
    steps_per_epoch = N_TRAIN // 64
    with pytest.raises(TrainingDiverged) as e:
        fit(cfg)
    msg = str(e.value)
    m = re.search(r"loss became (nan|inf|-inf) at step (\d+) \(epoch (\d+)\)", msg)
    assert m, msg
    step, epoch = int(m.group(2)), int(m.group(3))
    assert epoch == step // steps_per_epoch + 1 >= 2
    run_dir = tmp_path / "boom"
    assert str(run_dir / "checkpoint.safetensors") in msg

    # every finished epoch was logged and checkpointed; the diverged one was not
    assert [r["epoch"] for r in read_jsonl(run_dir / "metrics.jsonl")] == list(range(1, epoch))
    tensors, meta = load_tensors(run_dir / "checkpoint.safetensors")
    assert (meta["epoch"], meta["step"]) == (epoch - 1, (epoch - 1) * steps_per_epoch)
    model = ViT(cfg.model)
    load_model_state(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, "checkpoint")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not (run_dir / "model.safetensors").exists() and not (run_dir / "metrics.json").exists()


def test_resuming_something_that_is_not_a_run(tmp_path):
    with pytest.raises(RunFolderError, match="not a vitlab run folder"):
        fit(small_config(tmp_path, TINY), resume=tmp_path / "nothing")
    run_dir = tmp_path / "broken"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(to_dict(small_config(tmp_path, TINY, name="broken"))))
    (run_dir / "checkpoint.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="checkpoint.safetensors"):
        fit(small_config(tmp_path, TINY), resume=run_dir)


# -- (f) data that does not fit the model -----------------------------------------------------------
@pytest.mark.parametrize("overrides, fragments", [
    ({"model.in_chans": 3}, ["1 channels", "model.in_chans=3"]),
    ({"model.img_size": 16}, ["8x8", "model.img_size=16"]),
    ({"model.num_classes": 5}, ["10 classes", "model.num_classes=5"]),
])
def test_data_that_does_not_fit_the_model(tmp_path, overrides, fragments):
    cfg = apply_overrides(small_config(tmp_path, TINY, name="misfit"), overrides)
    with pytest.raises(ValueError) as e:
        fit(cfg)
    for fragment in fragments:
        assert fragment in str(e.value)


# -- the speed settings: compile, the input check once per data set ---------------------------------------------
def test_the_input_check_runs_once_per_data_set_not_per_forward():
    from vitlab.errors import ConfigError
    from vitlab.train.loop import skip_per_forward_check
    model = ViT(ModelConfig(img_size=8, patch_size=4, in_chans=1, num_classes=10, dim=16, depth=1, heads=2))
    holder = torch.nn.Sequential(model)
    x = torch.zeros(2, 1, 8, 8)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        model(x)  # a model used on its own checks every forward
    for mean, std in (([float("nan")], [1.0]), ([0.5], [0.0]), ([0.5], [float("inf")])):
        with pytest.raises(ConfigError, match="input statistics must be finite with std > 0"):
            skip_per_forward_check(holder, mean, std)
        assert model.check_finite
    skip_per_forward_check(holder, [0.5], [0.25])
    assert not model.check_finite
    out = model(x)  # no per-forward scan: the engine checked its inputs once
    assert torch.isnan(out[0]).all() and torch.isfinite(out[1]).all()


def test_compile_setting(tmp_path):
    from vitlab.errors import ConfigError
    from vitlab.train.loop import compile_step
    with pytest.raises(ConfigError, match=r"compile='yes' is not one of \('auto', 'on', 'off'\)"):
        small_config(tmp_path, compile="yes")
    m = torch.nn.Linear(2, 2)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert compile_step(m, "auto", cpu, 1999) is m and compile_step(m, "off", cuda, 10**6) is m
    assert compile_step(m, "on", cpu, 1)._orig_mod is m  # torch.compile's wrapper around the module
    assert compile_step(m, "auto", cuda, 1)._orig_mod is m
    assert compile_step(m, "auto", cpu, 2000)._orig_mod is m  # a CPU run long enough to repay the compile
    assert compile_step(m, "off", cpu, 10**6) is m


@pytest.mark.filterwarnings("ignore:CUDA is not available")  # autocast_for builds a CUDA context on a CPU host
def test_precision_setting(tmp_path):
    """bf16 autocast where asked: a Linear's output is bf16 under it and fp32 outside; auto is bf16 on CUDA only."""
    from vitlab.errors import ConfigError
    from vitlab.train.loop import autocast_for
    with pytest.raises(ConfigError, match=r"precision='fp16' is not one of \('auto', 'fp32', 'bf16'\)"):
        small_config(tmp_path, precision="fp16")
    layer, x = torch.nn.Linear(4, 3), torch.randn(2, 4)
    cpu = torch.device("cpu")
    for precision, dtype in (("bf16", torch.bfloat16), ("auto", torch.float32), ("fp32", torch.float32)):
        with autocast_for(precision, cpu):
            assert layer(x).dtype == dtype, precision
    on_cuda = autocast_for("auto", torch.device("cuda"))
    assert isinstance(on_cuda, torch.autocast) and on_cuda.device == "cuda" and on_cuda.fast_dtype == torch.bfloat16
    assert not isinstance(autocast_for("fp32", torch.device("cuda")), torch.autocast)


def test_auto_precision_takes_bf16_on_a_cpu_where_bf16_measures_faster_for_a_long_run(monkeypatch):
    """precision=auto on a CPU: bf16 only where a bf16 matmul measures at least BF16_MIN_SPEEDUP times fp32's and
    the run has at least COMPILE_MIN_STEPS steps; fp32 and bf16 are what they say whatever the CPU. cpu_has_bf16
    agrees with the flags the Linux kernel lists for this CPU in /proc/cpuinfo; without them nothing is timed."""
    from vitlab.train import loop

    cpu, long_run = torch.device("cpu"), loop.COMPILE_MIN_STEPS
    layer, x = torch.nn.Linear(4, 3), torch.randn(2, 4)
    for speedup in (1.9, loop.BF16_MIN_SPEEDUP, 1.2, 0.75, 0.0):
        monkeypatch.setattr(loop, "cpu_bf16_speedup", lambda threads, speedup=speedup: speedup)
        faster = speedup >= loop.BF16_MIN_SPEEDUP
        for precision, steps, dtype in (("auto", long_run, torch.bfloat16 if faster else torch.float32),
                                        ("auto", long_run - 1, torch.float32), ("fp32", long_run, torch.float32),
                                        ("bf16", 1, torch.bfloat16)):
            with loop.autocast_for(precision, cpu, steps):
                assert layer(x).dtype == dtype, (speedup, precision, steps)
    monkeypatch.undo()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        flags = set(next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split())
        assert loop.cpu_has_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})
    loop.cpu_bf16_speedup.cache_clear()
    threads = torch.get_num_threads()
    measured = loop.cpu_bf16_speedup(1)
    assert (measured > 0 and math.isfinite(measured)) if loop.cpu_has_bf16() else measured == 0.0
    assert torch.get_num_threads() == threads  # the caller's thread count is back
    assert loop.cpu_bf16_speedup(1) == measured  # measured once a process
    loop.cpu_bf16_speedup.cache_clear()
    monkeypatch.setattr(loop, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(torch, "randn", lambda *a, **k: pytest.fail("timed a matmul on a CPU without bf16"))
    assert loop.cpu_bf16_speedup(1) == 0.0
    loop.cpu_bf16_speedup.cache_clear()


def test_a_bf16_run_on_the_cpu_trains_what_the_fp32_run_trains(tmp_path):
    """precision='bf16' on the CPU: the same run within bf16's rounding (8 bits of mantissa), and it is recorded."""
    runs = {p: fit(small_config(tmp_path, base=TINY, name=f"precision-{p}", precision=p, **{"optim.epochs": 1}))
            for p in ("fp32", "bf16")}
    fp32, bf16 = (read_jsonl(runs[p] / "metrics.jsonl")[0] for p in ("fp32", "bf16"))
    assert bf16["train_loss"] == pytest.approx(fp32["train_loss"], abs=0.05)
    assert bf16["train_loss"] != fp32["train_loss"]  # the autocast really ran: bf16 rounding moves the loss
    assert json.loads((runs["bf16"] / "config.json").read_text())["precision"] == "bf16"
    # metrics.json says what ran: an auto run this short is fp32 on any CPU
    assert [json.loads((runs[p] / "metrics.json").read_text())["precision"] for p in ("fp32", "bf16")] == \
        ["fp32", "bf16"]
    auto = fit(small_config(tmp_path, base=TINY, name="precision-auto", **{"optim.epochs": 1}))
    assert json.loads((auto / "metrics.json").read_text())["precision"] == "fp32"


def test_a_compiled_run_trains_what_the_eager_run_trains(tmp_path):
    """compile='on' (the GPU default) on the CPU: the same run, up to the float rounding fused kernels change."""
    runs = {c: fit(small_config(tmp_path, base=TINY, name=f"compile-{c}", compile=c, **{"optim.epochs": 1}))
            for c in ("off", "on")}
    eager, compiled = (read_jsonl(runs[c] / "metrics.jsonl")[0] for c in ("off", "on"))
    assert compiled["train_loss"] == pytest.approx(eager["train_loss"], abs=2e-4)
    assert compiled["val_loss"] == pytest.approx(eager["val_loss"], abs=2e-3)
    assert json.loads((runs["on"] / "config.json").read_text())["compile"] == "on"
