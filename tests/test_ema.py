"""vitlab/train/ema.py and optim.ema in the loop: the weight average against its formula, step by step; what a run
evaluates, keeps and saves; resume bit for bit."""
import shutil

import pytest
import torch
from torch import nn

from vitlab.cli import main
from vitlab.configio import apply_overrides, save_json, to_dict
from vitlab.data import Normalize
from vitlab.errors import ConfigError
from vitlab.models import ViT
from vitlab.recipes import digits
from vitlab.train import fit, load_run_config, load_state_dict_file
from vitlab.train.checkpoint import load_tensors
from vitlab.train.ema import WeightAverage, ema_decay
from vitlab.train.run_dir import step_checkpoints
from vitlab.train.tasks import get_task
from vitlab.train.tasks.classify import evaluate

from test_reliability import assert_same_run, config, read_jsonl

EMA = {"optim.ema": 0.9}


def by_hand(decay, t):
    """TensorFlow's ExponentialMovingAverage with num_updates = t: min(decay, (1 + t) / (10 + t))."""
    return min(decay, (1 + t) / (10 + t))


def test_the_decay_warms_up_as_tensorflow_does():
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 10) == pytest.approx(11 / 20)
    assert ema_decay(0.999, 8990) == pytest.approx(0.999)  # (1 + t) / (10 + t) = 0.999 at t = 8,990
    assert ema_decay(0.9, 1000) == 0.9


def test_the_average_follows_its_formula_over_several_steps():
    """Parameters and float buffers (BatchNorm's running statistics) are averaged, the integer counter copied; the
    reference is the formula worked step by step on separate tensors."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    average = WeightAverage(net, decay=0.5)
    reference = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    for t in range(12):  # d_t = 0.1, 2/11, 3/12, ..., then 0.5 from t = 8
        loss = net(torch.randn(8, 5)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        average.update(t)
        d = by_hand(0.5, t)
        for k, v in net.state_dict().items():
            reference[k] = v.clone() if not v.is_floating_point() else d * reference[k] + (1 - d) * v
    got = average.module.state_dict()
    assert int(got["1.num_batches_tracked"]) == 12
    for k, v in reference.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=1e-6, msg=k)
    assert not torch.allclose(got["0.weight"], net[0].weight)  # an average, not a copy
    assert not any(p.requires_grad for p in average.module.parameters()) and not average.module.training


def test_ema_must_be_below_one():
    with pytest.raises(ConfigError, match=r"optim.ema must be in \[0, 1\).*got 1.0"):
        config("/tmp", "x", **{"optim.ema": 1.0})


@pytest.fixture(scope="module")
def stepped(tmp_path_factory):
    """A 3-epoch digits run with optim.ema, a checkpoint after every step, all kept."""
    return fit(config(tmp_path_factory.mktemp("ema"), "stepped", ckpt_every=1, keep_last=100, **EMA))


def test_a_run_averages_after_every_step_and_evaluates_tests_and_saves_the_average(stepped):
    files = step_checkpoints(stepped)
    assert len(files) == 60
    previous = None
    for path in files:  # each step's average from the last one and this step's trained weights, by the formula
        tensors, meta = load_tensors(path)
        trained = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        average = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
        assert set(average) == set(trained)
        if previous is not None:
            d = by_hand(0.9, meta["step"] - 1)
            for k in trained:
                torch.testing.assert_close(average[k], d * previous[k] + (1 - d) * trained[k], rtol=0, atol=1e-6)
        previous = average
    # what the run left for use is the average of the last step, not the trained weights
    final = load_tensors(stepped / "model.safetensors")[0]
    assert all(torch.equal(final[k], previous[k]) for k in previous)
    assert not torch.equal(final["head.weight"], trained["head.weight"])
    assert all(torch.equal(v, final[k]) for k, v in load_state_dict_file(stepped / "checkpoint.safetensors").items())
    # the logged validation accuracy of each epoch is the average's (scored here on the validation split)
    cfg = config("/tmp", "x", **EMA)
    splits = get_task("classify").data(cfg)
    rows = read_jsonl(stepped / "metrics.jsonl")
    differs = 0
    for epoch, row in enumerate(rows, start=1):
        tensors, meta = load_tensors(stepped / f"checkpoint-step{20 * epoch:06d}.safetensors")
        scores = {}
        for prefix in ("ema.", "model."):
            model = ViT(cfg.model)
            model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            scores[prefix] = evaluate(model, splits.val, Normalize(meta["mean"], meta["std"]))["acc"]
        assert row["val_acc"] == pytest.approx(scores["ema."], abs=1e-9)
        assert row["val_trained_acc"] == pytest.approx(scores["model."], abs=1e-9)  # beside it, to compare
        differs += scores["ema."] != scores["model."]
    assert differs  # the two weights score differently, so the check above can tell them apart


def test_a_run_with_ema_resumes_bit_for_bit(stepped, tmp_path):
    """The trained weights, the average and the optimiser continue from a mid-epoch checkpoint (step 35)."""
    run = tmp_path / "partial"
    run.mkdir()
    for name in ("config.json", "metrics.jsonl"):
        shutil.copy(stepped / name, run / name)
    shutil.copy(stepped / "checkpoint-step000035.safetensors", run / "checkpoint.safetensors")
    assert fit(config(tmp_path, "ignored", **EMA), resume=run) == run
    assert_same_run(stepped, run)


def test_a_checkpoint_without_the_average_is_refused_in_one_line(tmp_path, capsys):
    """A run folder whose configuration asks for the average, holding a checkpoint of a run without one."""
    plain = fit(config(tmp_path, "plain", **{"optim.epochs": 1}))
    save_json(plain / "config.json", to_dict(apply_overrides(load_run_config(plain), EMA)))
    code = main(["train", "-q", "--resume", str(plain)])
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"checkpoint {plain / 'checkpoint.safetensors'} holds no weight average (ema.*)" in err
