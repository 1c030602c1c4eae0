"""vitlab/models/segmenter.py, the metrics of vitlab/train/metrics.py and the segmentation task (train/tasks/segment.py)."""
import math

import pytest
import torch

from vitlab.config import ModelConfig, SegmentConfig
from vitlab.models.segmenter import Segmenter
from vitlab.train.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy

torch.set_num_threads(1)
TINY = dict(img_size=16, patch_size=4, in_chans=1, dim=16, depth=1, heads=2, mlp_ratio=2.0)


@pytest.mark.parametrize("method", ["nearest", "bilinear", "transposed", "unpool"])
@pytest.mark.parametrize("patch", [2, 4, 8])
def test_output_is_the_input_size(method, patch):
    model = Segmenter(ModelConfig(**{**TINY, "patch_size": patch}), SegmentConfig(upsample=method, width=8),
                      num_classes=11)
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 11, 16, 16)


@pytest.mark.parametrize("class_token", [True, False])
def test_gradients_reach_the_encoder(class_token):
    cfg = ModelConfig(**TINY, class_token=class_token, pool="token" if class_token else "avg")
    model = Segmenter(cfg, SegmentConfig(upsample="unpool", width=8))
    out = model(torch.randn(2, 1, 16, 16))
    torch.nn.functional.cross_entropy(out, torch.randint(0, 11, (2, 16, 16))).backward()
    enc = model.encoder
    assert enc.to_patch_embedding.proj.weight.grad.abs().sum() > 0
    assert enc.pos_embed.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert not model.index_conv.weight.requires_grad  # the unpool index path is fixed (no gradient through indices)


def test_construction_errors_name_the_sizes():
    with pytest.raises(ValueError, match=r"patch_size=3 is not a power of two.*4x4.*12x12"):
        Segmenter(ModelConfig(**{**TINY, "img_size": 12, "patch_size": 3}))
    with pytest.raises(ValueError, match="img_size=18 is not divisible"):
        Segmenter(ModelConfig(**{**TINY, "img_size": 18}))


def test_unpool_puts_values_where_the_image_peaked():
    model = Segmenter(ModelConfig(**TINY), SegmentConfig(upsample="unpool", width=4)).eval()
    x = torch.randn(1, 1, 16, 16)
    indices = model.pool_indices(x)
    assert [tuple(i.shape) for i in indices] == [(1, 4, 8, 8), (1, 4, 4, 4)]


# -- metrics, against hand-worked confusion matrices ----------------------------------------------------
def test_confusion_matrix_and_metrics_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 0, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 0]])
    cm = confusion_matrix(pred, target, 4)
    # rows true, columns predicted: class 0: 3 right, 1 called 1; class 1: 2 right; class 2: 1 right, 1 called 0
    assert cm.tolist() == [[3, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert pixel_accuracy(cm) == pytest.approx(6 / 8)
    iou = iou_per_class(cm)
    # IoU_k = TP / (TP + FP + FN): 0: 3/(3+1+1), 1: 2/(2+1+0), 2: 1/(1+0+1); class 3 absent everywhere: NaN
    assert iou[:3].tolist() == pytest.approx([3 / 5, 2 / 3, 1 / 2])
    assert math.isnan(iou[3])
    assert mean_iou(cm) == pytest.approx((3 / 5 + 2 / 3 + 1 / 2) / 3)  # class 3 left out of the mean


def test_a_class_only_predicted_counts_as_zero():
    cm = torch.tensor([[2, 1], [0, 0]])  # class 1 never true, predicted once: IoU 0, kept in the mean
    assert iou_per_class(cm).tolist() == pytest.approx([2 / 3, 0.0])
    assert mean_iou(cm) == pytest.approx(1 / 3)
    assert pixel_accuracy(cm) == pytest.approx(2 / 3)


def test_perfect_prediction():
    y = torch.randint(0, 5, (3, 8, 8))
    cm = confusion_matrix(y, y, 11)
    assert pixel_accuracy(cm) == 1.0 and mean_iou(cm) == 1.0
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(y[0], y, 11)


SEG_TINY = {"model.img_size": 16, "model.patch_size": 2, "model.dim": 32, "model.depth": 1, "model.heads": 2,
            "model.stem": "patch", "segment.canvas": 16, "segment.scale": 1, "segment.max_digits": 2,
            "segment.width": 16, "segment.train_images": 400, "segment.val_images": 100, "segment.test_images": 100,
            "optim.epochs": 12, "optim.lr": 2e-3, "optim.batch_size": 16, "threads": 1, "device": "cpu",
            "progress": False}


def test_tiny_segment_run_learns_and_writes_the_run_folder(tmp_path):
    import json

    from vitlab.configio import apply_overrides
    from vitlab.data.segmentation import load_segmentation
    from vitlab.recipes import recipe
    from vitlab.train import fit

    cfg = apply_overrides(recipe(task="segment"), {**SEG_TINY, "out_dir": str(tmp_path), "name": "seg"})
    run = fit(cfg)
    for name in ("config.json", "argv.json", "metrics.jsonl", "metrics.json", "model.safetensors", "curves.png",
                 "checkpoint.safetensors", "best.safetensors"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {"val_pixel_acc", "val_miou", "val_loss", "train_pixel_acc"} <= set(rows[0])
    final = json.loads((run / "metrics.json").read_text())
    assert final["metric"] == "val_miou" and final["best_val_miou"] == max(r["val_miou"] for r in rows)
    test = load_segmentation(cfg.segment, cfg.data).test
    background = float((test.labels == 0).float().mean())
    assert final["test_pixel_acc"] > background + 0.003  # above the all-background baseline
    assert final["test_miou"] > 1 / 11  # better than predicting background everywhere (IoU 0.89 / 11 classes)


def test_segment_run_resumes_bit_for_bit(tmp_path, capsys):
    """2 epochs, then `vitlab train --resume RUN --epochs 4`, equals 4 epochs straight: same weights and metrics;
    and one stopped inside an epoch (ckpt_every) resumes bit for bit too (segmentation has every engine feature)."""
    import json
    import shutil

    from safetensors.torch import load_file

    from vitlab.cli import main
    from vitlab.configio import apply_overrides
    from vitlab.recipes import recipe
    from vitlab.train import fit

    def cfg(name, epochs, **more):
        return apply_overrides(recipe(task="segment"), {
            **SEG_TINY, "model.dim": 16, "model.drop_path": 0.1, "segment.width": 8, "segment.train_images": 64,
            "segment.val_images": 16, "segment.test_images": 16, "optim.epochs": epochs, "optim.warmup_epochs": 2,
            "out_dir": str(tmp_path), "name": name, **more})

    # two warm-up epochs: the learning rate of epochs 1-2 does not depend on the total length, so a run
    # configured for 2 epochs and resumed to 4 must retrace the 4-epoch run; drop path draws random numbers
    straight = fit(cfg("straight", 4))
    part = fit(cfg("part", 2))
    assert main(["train", "--resume", str(part), "--epochs", "4", "-q"]) == 0
    assert json.loads((part / "config.json").read_text())["optim"]["epochs"] == 4
    stepped = fit(cfg("stepped", 4, ckpt_every=3, keep_last=10))
    mid = tmp_path / "mid"
    mid.mkdir()
    for f in ("config.json", "metrics.jsonl"):
        shutil.copy(stepped / f, mid / f)
    shutil.copy(stepped / "checkpoint-step000009.safetensors", mid / "checkpoint.safetensors")  # epoch 3, batch 1
    assert main(["train", "--resume", str(mid), "-q"]) == 0

    a = load_file(straight / "model.safetensors")
    rows = lambda run: [{k: v for k, v in json.loads(line).items() if k not in ("epoch_time_s", "images_per_s")}  # noqa: E731
                        for line in (run / "metrics.jsonl").read_text().splitlines()]
    for other in (part, stepped, mid):
        b = load_file(other / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), other.name
        assert rows(straight) == rows(other) and len(rows(other)) == 4, other.name

    # `vitlab eval` rebuilds the Segmenter and re-scores the test canvases: the run's own final numbers
    capsys.readouterr()
    assert main(["eval", str(part)]) == 0
    final = json.loads((part / "metrics.json").read_text())
    out = capsys.readouterr().out
    assert f"test mIoU {final['test_miou']:.4f}, pixel accuracy {final['test_pixel_acc']:.4f}" in out
    assert (part / "confusion.png").is_file()
    # a classifier loader asked for a segmentation model says what to use instead
    from vitlab.train import CheckpointError, load_model

    with pytest.raises(CheckpointError, match="load_segmenter"):
        load_model(part)


def test_train_task_segment_works_on_its_own(tmp_path, capsys):
    """`vitlab train --task segment` needs no other flag: the task's default recipe (issue 11; it used to fail
    with 'model.img_size=8 must equal segment.canvas=32'). One short epoch of it here."""
    from vitlab.cli import main

    assert main(["train", "--task", "segment", "--epochs", "1", "--segment.train_images", "64",
                 "--segment.val_images", "16", "--segment.test_images", "16", "--out_dir", str(tmp_path),
                 "--name", "s", "--threads", "1", "-q"]) == 0
    out = capsys.readouterr().out
    assert "segment: val miou" in out and (tmp_path / "s" / "model.safetensors").is_file()


def test_curves_show_the_tasks_headline_metric():
    """The segmentation curves used to show only pixel accuracy (mostly background); they show mIoU now."""
    from vitlab.train.plots import curves_figure, plt

    rows = [{"epoch": e, "train_loss": 1 / e, "train_pixel_acc": 0.9, "val_loss": 1.1 / e, "val_pixel_acc": 0.91,
             "val_miou": 0.1 * e} for e in (1, 2, 3)]
    fig = curves_figure(rows, "miou")
    metric_axes = fig.axes[1]
    assert [line.get_label() for line in metric_axes.lines] == ["val"] and metric_axes.get_ylabel() == "miou"
    assert list(metric_axes.lines[0].get_ydata()) == pytest.approx([0.1, 0.2, 0.3])
    assert [line.get_label() for line in fig.axes[0].lines] == ["train", "val"]
    plt.close(fig)
