"""The pretraining task (vitlab/train/tasks/pretrain.py) through the one loop: run folder, kNN monitor, MoCo queue
carried across a resume, `vitlab pretrain` as the short form of `vitlab train --task pretrain`."""
import json
import math

import numpy as np
import pytest
import torch

from vitlab.cli import main
from vitlab.train.metrics import knn_predict

TINY = ["--model.dim", "16", "--model.depth", "1", "--model.heads", "2", "--model.mlp_ratio", "1",
        "--pretrain.proj_hidden", "16", "--pretrain.proj_dim", "8", "--pretrain.knn_k", "5",
        "--batch-size", "128", "--threads", "1", "--device", "cpu", "-q"]


def test_knn_hand_built():
    # bank: two clusters on the axes; class 0 near (1, 0), class 1 near (0, 1)
    bank = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.9, -0.1], [0.0, 1.0], [0.1, 1.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    queries = torch.tensor([[2.0, 0.1], [0.05, 3.0], [1.0, 1.1]])
    assert knn_predict(bank, labels, queries, k=1, num_classes=2).tolist() == [0, 1, 1]
    # k=5 on (1, 1.1): similarities weight the vote; 3 class-0 rows (~0.67-0.74) outweigh 2 class-1 rows (~0.74)
    sims = torch.nn.functional.normalize(queries[2:], dim=1) @ torch.nn.functional.normalize(bank, dim=1).T
    expected = int(sims[0, 3:].sum() > sims[0, :3].sum())
    assert knn_predict(bank, labels, queries[2:], k=5, num_classes=2).tolist() == [expected]
    # a bank smaller than k is fine
    assert knn_predict(bank[:2], labels[:2], queries[:1], k=20, num_classes=2).tolist() == [0]


def test_knn_equals_scikit_learns_similarity_weighted_vote():
    """The same vote as sklearn's KNeighborsClassifier with cosine distance d and weights 1 - d (= similarity)."""
    from sklearn.neighbors import KNeighborsClassifier

    g = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(200, 6, generator=g), torch.randn(50, 6, generator=g)
    labels = torch.randint(0, 4, (200,), generator=g)
    ref = KNeighborsClassifier(n_neighbors=7, metric="cosine", weights=lambda d: 1 - d, algorithm="brute")
    ref.fit(bank.double().numpy(), labels.numpy())
    assert knn_predict(bank, labels, queries, k=7, num_classes=4).tolist() == ref.predict(queries.double().numpy()).tolist()


def test_tiny_pretrain_writes_run_folder(tmp_path):
    rc = main(["pretrain", "--epochs", "2", "--tau", "0.5", "--out_dir", str(tmp_path), "--name", "r", *TINY])
    assert rc == 0
    run = tmp_path / "r"
    for f in ("config.json", "metrics.jsonl", "metrics.json", "model.safetensors", "projection.safetensors",
              "curves.png", "checkpoint.safetensors", "best.safetensors"):
        assert (run / f).is_file(), f
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(math.isfinite(r[k]) for r in rows for k in ("train_loss", "val_knn_acc", "val_alignment",
                                                            "val_uniformity"))
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["task"] == "pretrain" and cfg["pretrain"]["tau"] == 0.5 and cfg["model"]["num_classes"] == 0
    final = json.loads((run / "metrics.json").read_text())
    assert final["metric"] == "val_knn_acc" and final["best_val_knn_acc"] == max(r["val_knn_acc"] for r in rows)

    # the final test kNN accuracy, recomputed with scikit-learn from the saved encoder's features
    from sklearn.neighbors import KNeighborsClassifier

    from vitlab.configio import from_dict
    from vitlab.config import RunConfig
    from vitlab.data import Normalize, load_data
    from vitlab.train import load_model
    from vitlab.train.tasks.pretrain import encode

    encoder, meta = load_model(run)
    splits = load_data(from_dict(RunConfig, cfg).data)
    normalize = Normalize(meta["mean"], meta["std"])
    bank, queries = encode(encoder, splits.train.images, normalize), encode(encoder, splits.test.images, normalize)
    knn = KNeighborsClassifier(n_neighbors=5, metric="cosine", weights=lambda d: 1 - d, algorithm="brute")
    knn.fit(bank.double().numpy(), splits.train.labels.numpy())
    acc = float(np.mean(knn.predict(queries.double().numpy()) == splits.test.labels.numpy()))
    assert final["test_knn_acc"] == pytest.approx(acc, abs=1.5 / len(splits.test))  # float32 vs float64: <= 1 vote


@pytest.mark.parametrize("tau", ["0", "-0.1"])
def test_bad_tau_exits_2(tmp_path, capsys, tau):
    assert main(["pretrain", "--tau", tau, "--out_dir", str(tmp_path), *TINY]) == 2
    assert "pretrain.tau must be" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_projection_head_shapes_and_params():
    from vitlab.models.projection import ProjectionHead

    g = ProjectionHead(in_dim=96, hidden_dim=256, out_dim=64)
    assert g(torch.randn(5, 96)).shape == (5, 64)
    # fc1 without bias (BatchNorm follows): 96·256; BN: 2·256; fc2: 256·64 + 64
    assert sum(p.numel() for p in g.parameters()) == 96 * 256 + 2 * 256 + 256 * 64 + 64
    plain = ProjectionHead(in_dim=96, hidden_dim=256, out_dim=64, batch_norm=False)
    assert sum(p.numel() for p in plain.parameters()) == 96 * 256 + 256 + 256 * 64 + 64
    assert isinstance(plain.norm, torch.nn.Identity)
    with pytest.raises(ValueError, match="out_dim"):
        ProjectionHead(in_dim=4, hidden_dim=4, out_dim=0)


def test_resume_is_bit_identical_with_the_moco_queue(tmp_path):
    """2 epochs then `--resume RUN --epochs 3` equals 3 epochs straight: encoder, projection, queue, metrics.

    Two warm-up epochs make the learning rate of epochs 1-2 independent of the total length; the views are
    random, so the random streams matter, and the queue carries negatives across the break."""
    from safetensors.torch import load_file

    from vitlab.train.checkpoint import load_tensors

    args = [*TINY, "--optim.warmup_epochs", "2", "--pretrain.queue_size", "300", "--out_dir", str(tmp_path)]
    assert main(["pretrain", "--epochs", "3", "--name", "straight", *args]) == 0
    assert main(["pretrain", "--epochs", "2", "--name", "part", *args]) == 0
    assert main(["train", "--resume", str(tmp_path / "part"), "--epochs", "3", "-q"]) == 0

    straight, part = tmp_path / "straight", tmp_path / "part"
    for name in ("model.safetensors", "projection.safetensors"):
        a, b = load_file(straight / name), load_file(part / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    qa, qb = load_tensors(straight / "checkpoint.safetensors")[0], load_tensors(part / "checkpoint.safetensors")[0]
    key = "model.criterion._extra_state"  # the queue travels as the loss module's extra state
    assert qa[key].shape == (300, 8) and torch.equal(qa[key], qb[key])
    rows = lambda run: [{k: v for k, v in json.loads(line).items() if k not in ("epoch_time_s", "images_per_s")}  # noqa: E731
                        for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows(straight) == rows(part) and [r["epoch"] for r in rows(part)] == [1, 2, 3]


def test_resume_refuses_a_changed_setting(tmp_path, capsys):
    assert main(["pretrain", "--epochs", "1", "--name", "r", "--out_dir", str(tmp_path), *TINY]) == 0
    before = (tmp_path / "r" / "checkpoint.safetensors").read_bytes()
    assert main(["pretrain", "--resume", str(tmp_path / "r"), "--tau", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "only --optim.epochs" in err and "pretrain.tau" in err
    assert (tmp_path / "r" / "checkpoint.safetensors").read_bytes() == before


def test_unknown_recipe_lists_the_known_ones(tmp_path, capsys):
    assert main(["pretrain", "--recipe", "imagenet", "--out_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'imagenet'" in err and "digits" in err and "fashion-mnist" in err
    assert not any(tmp_path.iterdir())


def _run_and_resume_a_copy_at_step_12(tmp_path, args):
    """Run ``args`` as "full" with a checkpoint every 3 steps; "mid" is a copy of it as it stood at step 12 (epoch
    2, batch 2), resumed to the end. Returns both folders."""
    import shutil

    assert main(["pretrain", "--name", "full", "--ckpt-every", "3", "--keep-last", "10", *args]) == 0
    full, mid = tmp_path / "full", tmp_path / "mid"
    mid.mkdir()
    for f in ("config.json", "metrics.jsonl"):
        shutil.copy(full / f, mid / f)
    shutil.copy(full / "checkpoint-step000012.safetensors", mid / "checkpoint.safetensors")
    assert main(["train", "--resume", str(mid), "-q"]) == 0
    return full, mid


def test_a_pretraining_run_stopped_inside_an_epoch_resumes_bit_for_bit(tmp_path):
    """Pretraining has the engine's mid-epoch checkpoints too: a copy of the run as it stood at step 12 (inside
    epoch 2, with the MoCo queue and the views' random stream) resumed equals the uninterrupted run."""
    from safetensors.torch import load_file

    args = [*TINY, "--optim.warmup_epochs", "1", "--pretrain.queue_size", "300", "--out_dir", str(tmp_path),
            "--epochs", "2"]
    full, mid = _run_and_resume_a_copy_at_step_12(tmp_path, args)
    for name in ("model.safetensors", "projection.safetensors"):
        a, b = load_file(full / name), load_file(mid / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    rows = lambda run: [{k: v for k, v in json.loads(line).items() if k not in ("epoch_time_s", "images_per_s")}  # noqa: E731
                        for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows(full) == rows(mid)


# -- the momentum encoder (MoCo v2 / v3): its schedule, its update, its loss, its resume ---------------------------
def test_the_momentum_rises_from_its_base_to_one_on_a_half_cosine():
    from vitlab.train.tasks.pretrain import momentum_at

    # m = 1 - (1 - 0.99)(1 + cos(pi t / 100)) / 2, worked by hand: t = 0, 25, 50, 100
    expected = {0: 0.99, 25: 1 - 0.01 * (1 + math.sqrt(0.5)) / 2, 50: 0.995, 100: 1.0}
    for t, m in expected.items():
        assert momentum_at(t, 100, 0.99) == pytest.approx(m, abs=1e-15), t


def test_the_key_encoder_follows_its_moving_average_over_several_training_steps():
    """Five real pretraining steps (views, queries, keys, AdamW): after each, every parameter of the key encoder
    equals θ_k ← m_t·θ_k + (1 − m_t)·θ_q, worked in float64 from snapshots of the query encoder taken before the
    step, with m_0 = 0 (a copy) and m_t from the half-cosine schedule. The optimiser never moves the keys."""
    from vitlab.config import DataConfig, ModelConfig, OptimConfig, PretrainConfig, RunConfig
    from vitlab.data import Normalize
    from vitlab.train.optim import build_optimizer
    from vitlab.train.tasks import Context, get_task
    from vitlab.train.tasks.pretrain import momentum_at

    cfg = RunConfig(task="pretrain", data=DataConfig(name="digits"),
                    model=ModelConfig(img_size=8, patch_size=2, in_chans=1, num_classes=0, dim=16, depth=1, heads=2,
                                      mlp_ratio=1.0),
                    optim=OptimConfig(batch_size=32, lr=1e-2),
                    pretrain=PretrainConfig(proj_hidden=16, proj_dim=8, momentum=0.8, predictor_hidden=16))
    task = get_task("pretrain")
    splits = task.data(cfg)
    torch.manual_seed(0)
    module = task.model(cfg, splits)
    # a key encoder that starts unlike the query encoder: step 0 must copy, not average
    torch.nn.init.normal_(module.momentum_projection.fc2.weight)
    optimizer = build_optimizer(module, cfg.optim, module.encoder)
    assert not any(p.requires_grad for p in module.momentum_encoder.parameters())
    ctx = Context(cfg, torch.device("cpu"), Normalize(*splits.train.channel_stats()), task.augment(cfg, splits),
                  splits.train, total_steps=10)
    online = lambda: [p.detach().double().clone() for p in  # noqa: E731
                      (*module.encoder.parameters(), *module.projection.parameters())]
    keys = lambda: [p.detach().double() for p in  # noqa: E731
                    (*module.momentum_encoder.parameters(), *module.momentum_projection.parameters())]
    expected = None
    for t in range(5):
        ctx.step = t
        before = online()
        loss, _ = task.step(module, splits.train.images[32 * t:32 * (t + 1)], splits.train.labels[:32], ctx)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        m = momentum_at(t, 10, 0.8) if t else 0.0
        expected = before if t == 0 else [m * k + (1 - m) * q for k, q in zip(expected, before)]
        for got, want in zip(keys(), expected):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # the query encoder moved away from the keys (so the check above is not of two equal copies)
    assert max((q - k).abs().max().item() for q, k in zip(online(), keys())) > 1e-3


def test_the_momentum_loss_against_a_hand_written_cross_entropy():
    """momentum_info_nce on unit rows: −log of the softmax of q_i·k_i/τ over q_i·[k; queue]/τ, by Python loops;
    InfoNCE with keys is the mean of its two directions; the keys and the queue get no gradient."""
    from vitlab.losses import InfoNCE, momentum_info_nce

    g = torch.Generator().manual_seed(0)
    q1, q2, k1, k2 = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(4))
    queue = torch.randn(2, 3, generator=g, dtype=torch.float64)
    tau = 0.3

    def by_hand(q, k, extra):
        unit = lambda v: v / math.sqrt(sum(float(x) ** 2 for x in v))  # noqa: E731
        total = 0.0
        for i in range(len(q)):
            logits = [float(unit(q[i]) @ unit(key)) / tau for key in [*k, *extra]]
            total -= logits[i] - math.log(sum(math.exp(s) for s in logits))
        return total / len(q)

    assert momentum_info_nce(q1, k2, tau).item() == pytest.approx(by_hand(q1, k2, []), rel=1e-12)
    assert momentum_info_nce(q1, k2, tau, queue).item() == pytest.approx(by_hand(q1, k2, queue), rel=1e-12)
    loss = InfoNCE(temperature=tau)
    keys = k1.clone().requires_grad_(True), k2.clone().requires_grad_(True)
    q = q1.clone().requires_grad_(True)
    value = loss(q, q2, keys)
    assert value.item() == pytest.approx((by_hand(q1, k2, []) + by_hand(q2, k1, [])) / 2, rel=1e-12)
    value.backward()
    assert q.grad.abs().max() > 0 and keys[0].grad is None and keys[1].grad is None
    # the queue takes the second view's keys, unit length, not the queries
    queued = InfoNCE(temperature=tau, queue_size=8)
    queued(q1, q2, (k1, k2))
    torch.testing.assert_close(queued.queue, torch.nn.functional.normalize(k2, dim=1))


def test_a_moco_v3_run_stopped_inside_an_epoch_resumes_bit_for_bit(tmp_path):
    """Momentum encoder, predictor and queue through the engine: a copy of the run at step 12 (inside epoch 2)
    resumed equals the uninterrupted run, key encoder included (it lives in the checkpoint, not in SRC)."""
    from safetensors.torch import load_file

    from vitlab.train.checkpoint import load_tensors

    args = [*TINY, "--optim.warmup_epochs", "1", "--pretrain.queue_size", "300", "--pretrain.momentum", "0.9",
            "--pretrain.predictor_hidden", "16", "--out_dir", str(tmp_path), "--epochs", "2"]
    full, mid = _run_and_resume_a_copy_at_step_12(tmp_path, args)
    a, b = load_tensors(full / "checkpoint.safetensors")[0], load_tensors(mid / "checkpoint.safetensors")[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("model.momentum_encoder.") for k in a) and any(k.startswith("model.predictor.") for k in a)
    # the key encoder trailed the query encoder (m = 0.9 and up), so the two are not one tensor saved twice
    q, k = a["model.encoder.blocks.0.attn.to_qkv.weight"], a["model.momentum_encoder.blocks.0.attn.to_qkv.weight"]
    assert (q - k).abs().max() > 1e-4
    for name in ("model.safetensors", "projection.safetensors"):
        x, y = load_file(full / name), load_file(mid / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name


@pytest.mark.parametrize("flags, message", [
    (["--pretrain.predictor_hidden", "16"], "pretrain.predictor_hidden=16 needs a momentum encoder"),
    (["--pretrain.momentum", "1"], "pretrain.momentum must be in [0, 1)"),
    (["--pretrain.momentum", "-0.5"], "pretrain.momentum must be in [0, 1)"),
])
def test_bad_momentum_settings_exit_2_before_a_run_folder(tmp_path, capsys, flags, message):
    assert main(["pretrain", "--out_dir", str(tmp_path), "--name", "bad", *TINY, *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_the_pretraining_loss_is_fp32_under_bf16_autocast():
    """Under bf16 autocast (precision=bf16, or auto on CUDA) the encoder runs in bf16 but InfoNCE's similarities
    do not: the step's loss equals the NT-Xent of the same embeddings worked in float64 by Python loops to 1e-5, where
    bf16 cosines (8 bits of mantissa, ±0.004) at τ = 0.05 would move it by ~1e-2."""
    from vitlab.config import DataConfig, ModelConfig, OptimConfig, PretrainConfig, RunConfig
    from vitlab.data import Normalize
    from vitlab.train.tasks import Context, get_task

    tau = 0.05
    cfg = RunConfig(task="pretrain", data=DataConfig(name="digits"),
                    model=ModelConfig(img_size=8, patch_size=2, in_chans=1, num_classes=0, dim=16, depth=1, heads=2,
                                      mlp_ratio=1.0),
                    optim=OptimConfig(batch_size=16), pretrain=PretrainConfig(proj_hidden=16, proj_dim=8, tau=tau))
    task = get_task("pretrain")
    splits = task.data(cfg)
    torch.manual_seed(0)
    module = task.model(cfg, splits)
    ctx = Context(cfg, torch.device("cpu"), Normalize(*splits.train.channel_stats()), task.augment(cfg, splits),
                  splits.train, total_steps=1)
    seen = {}
    forward = module.forward

    def record(*args, **kwargs):  # the embeddings the loss is given, as the model returned them
        seen["z"] = forward(*args, **kwargs)
        return seen["z"]

    module.forward = record
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = task.step(module, splits.train.images[:16], splits.train.labels[:16], ctx)
    assert seen["z"].dtype == torch.bfloat16  # the autocast really ran
    z = seen["z"].double().tolist()
    unit = [[v / math.sqrt(sum(x * x for x in row)) for v in row] for row in z]
    n2, total = len(unit), 0.0
    for i in range(n2):
        logits = {j: sum(a * b for a, b in zip(unit[i], unit[j])) / tau for j in range(n2) if j != i}
        total -= logits[(i + n2 // 2) % n2] - math.log(sum(math.exp(s) for s in logits.values()))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(total / n2, abs=1e-5)


def test_a_bf16_pretraining_run_evaluates_its_knn_in_fp32(tmp_path):
    """precision=bf16 pretraining on the CPU runs to its end (its kNN monitor once failed under autocast: bf16
    similarities scattered into fp32 votes), and knn_predict under bf16 autocast votes exactly as it does outside."""
    rc = main(["pretrain", "--epochs", "1", "--precision", "bf16", "--out_dir", str(tmp_path), "--name", "b", *TINY])
    assert rc == 0
    row = json.loads((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["val_knn_acc"] > 0.3  # ten classes: a working encoder's monitor, not chance (0.1)
    g = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(300, 16, generator=g), torch.randn(50, 16, generator=g)
    labels = torch.randint(0, 10, (300,), generator=g)
    outside = knn_predict(bank, labels, queries, 5, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = knn_predict(bank, labels, queries, 5, 10)
    assert torch.equal(inside, outside)
