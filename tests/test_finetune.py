"""vitlab/train/finetune.py, the layer decay of train/optim.py, recipes/finetune.py and `vitlab train --init SRC`:
runs initialised from pretrained weights, on the bundled digits, on CPU.

Most checks look at the model a run starts from. ``first_step`` replaces the task's step with one that records the
module, the normaliser and the logits of the first batch, before any update, and stops the run there: the data,
the model, the initialisation and the run folder's config.json are all real, and no epoch is trained. The SRC
models are tiny ViTs (32 wide, 2 blocks) saved as vitlab model files, HF folders or timm state dicts; the few
runs that train take one or two epochs.
"""
import hashlib
import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from vitlab.cli import main
from vitlab.config import DataConfig, ModelConfig, RunConfig
from vitlab.configio import ConfigError, apply_overrides
from vitlab.data import load_data
from vitlab.errors import CheckpointError, MissingFileError
from vitlab.interop import from_hf, to_timm
from vitlab.models import ViT
from vitlab.recipes import digits
from vitlab.sweep import expand, parse_grid
from vitlab.train import RESUMABLE_KEYS, fit, load_model, load_run_config, loop
from vitlab.train.artifacts import save_model
from vitlab.train.checkpoint import load_meta, load_tensors
from vitlab.train.finetune import keeps_head
from vitlab.train.optim import param_groups
from vitlab.train.rng import seed_everything

from test_reliability import assert_same_run, read_jsonl

CLASSES = [str(i) for i in range(10)]  # the digits' class names
ARCH = dict(img_size=8, patch_size=4, in_chans=1, num_classes=10, dim=32, depth=2, heads=2, mlp_ratio=2.0)
# The run: the architecture of ARCH, no stochastic depth (so the first forward in train mode is the eval one)
RUN = {**{f"model.{k}": v for k, v in ARCH.items()}, "model.drop_path": 0.0, "data.augment": "none",
       "optim.epochs": 1, "optim.batch_size": 64, "optim.lr": 2e-3, "optim.warmup_epochs": 0.0, "device": "cpu",
       "progress": False, "threads": 1, "tensorboard": False, "seed": 3}
CLI = ["--epochs", "1", "--threads", "1", "--device", "cpu", "-q", "--tensorboard", "false", "--model.drop_path", "0"]


def config(out, name, **changes):
    return apply_overrides(digits(), {**RUN, "out_dir": str(out), "name": name,
                                      **{k.replace("__", "."): v for k, v in changes.items()}})


def save_src(path, seed=123, classes=CLASSES, mean=(0.3,), std=(0.2,), **arch):
    """A seeded random ViT saved as a vitlab model file (what a classification run leaves)."""
    torch.manual_seed(seed)
    model = ViT(ModelConfig(**{**ARCH, **arch}))
    save_model(path, model, {"task": "classify", "mean": list(mean), "std": list(std), "classes": classes,
                             "resize": "center-crop"})
    return model


def encoder_state(state):
    return {k: v for k, v in state.items() if not k.startswith("head.")}


def assert_equal_tensors(got, expected):
    assert set(got) == set(expected)
    for k in expected:
        assert torch.equal(got[k], expected[k]), k


class FirstStep(Exception):
    """Raised by the step stand-in once it has recorded what the run starts from."""


@pytest.fixture
def first_step(monkeypatch):
    """Runs stop at their first step; the dict gets the module's state, the module, the Context and the logits of
    the first batch, all before any update."""
    seen = {}
    real = loop.get_task

    def get_task(name):
        def step(trained, images, labels, ctx):
            module = getattr(trained, "module", trained)
            x = ctx.normalize(ctx.augment(images.float().div_(255)))
            with torch.no_grad():
                seen.update(state={k: v.clone() for k, v in module.state_dict().items()}, module=module, ctx=ctx,
                            x=x, logits=trained(x) if ctx.cfg.task == "classify" else None, labels=labels)
            if ctx.cfg.task == "classify":  # the loss the task's own step takes its first update from
                seen["loss"] = real(name).step(trained, images, labels, ctx)[0].detach()
            raise FirstStep

        return real(name)._replace(step=step)

    monkeypatch.setattr(loop, "get_task", get_task)
    return seen


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "model.safetensors"
    save_src(path)
    return path


# -- layer-wise learning-rate decay ------------------------------------------------------------------------------
def test_layer_decay_scales_every_parameter_as_beit_does():
    """BEiT's rule worked by hand for depth 2 and decay 0.5: lr * 0.5 ** (3 - layer), the embeddings layer 0,
    block i layer i + 1, the final norm and the head layer 3."""
    torch.manual_seed(0)
    model = ViT(ModelConfig(**ARCH))
    by_hand = {"cls_token": 0.125, "pos_embed": 0.125, "to_patch_embedding.": 0.125, "blocks.0.": 0.25,
               "blocks.1.": 0.5, "norm.": 1.0, "head.": 1.0}
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.5)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert len(scale) == len(names)  # each parameter in exactly one group
    for name, p in names.items():
        expected = next(v for prefix, v in by_hand.items() if name.startswith(prefix))
        assert scale[id(p)] == expected, name
        matrix = p.ndim > 1 and name not in ("cls_token", "pos_embed")
        assert decay[id(p)] == (0.05 if matrix else 0.0), name  # weight decay as without layer decay
    # off (1.0): the two groups of every run before layer decay, decayed first
    plain = param_groups(model, weight_decay=0.05)
    assert [(g["weight_decay"], g["lr_scale"]) for g in plain] == [(0.05, 1.0), (0.0, 1.0)]


@pytest.fixture(scope="module")
def last_block_run(src, tmp_path_factory):
    """One epoch of all-but-last-1 with layer decay 0.5."""
    out = tmp_path_factory.mktemp("last")
    return fit(config(out, "last", init__source=str(src), init__freeze="all-but-last-1", optim__layer_decay=0.5))


def test_all_but_last_1_trains_exactly_the_last_block_the_norm_and_the_head(src, last_block_run):
    before = load_tensors(src)[0]
    after = load_tensors(last_block_run / "model.safetensors")[0]
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {k for k in before if k.startswith(("blocks.1.", "norm.", "head."))}


def test_the_loop_sets_each_groups_lr_to_the_schedules_times_its_scale(last_block_run):
    header = load_meta(last_block_run / "checkpoint.safetensors")
    lr = read_jsonl(last_block_run / "metrics.jsonl")[-1]["lr"]  # the last step's
    groups = header["optimizer"]["param_groups"]
    # frozen: the embeddings and block 0; block 1 at 0.5, the norm and head at 1 (decayed and not, each)
    assert sorted(g["lr_scale"] for g in groups) == [0.5, 0.5, 1.0, 1.0]
    for g in groups:
        assert g["lr"] == lr * g["lr_scale"]


# -- what comes from SRC, what is new ------------------------------------------------------------------------------
def test_same_classes_keep_the_head_and_the_first_forward_is_srcs(src, tmp_path, first_step):
    with pytest.raises(FirstStep):
        fit(config(tmp_path, "same", init__source=str(src)))
    reference, meta = load_model(src)
    assert_equal_tensors(first_step["state"], reference.state_dict())
    # normalised with SRC's statistics (init.stats=source), and the same logits, bit for bit
    assert first_step["ctx"].normalize.mean.flatten().tolist() == pytest.approx(meta["mean"])
    assert first_step["ctx"].normalize.std.flatten().tolist() == pytest.approx(meta["std"])
    with torch.no_grad():
        assert torch.equal(first_step["logits"], reference(first_step["x"]))


def test_other_classes_get_a_new_seeded_head_on_srcs_encoder(src, tmp_path, first_step):
    cfg = config(tmp_path, "other", init__source=str(src), init__stats="data", data__classes="a,b,c,d,e,f,g,h,i,j")
    with pytest.raises(FirstStep):
        fit(cfg)
    state = first_step["state"]
    assert_equal_tensors(encoder_state(state), encoder_state(load_tensors(src)[0]))
    seed_everything(cfg.seed)  # the head a run from scratch starts with
    scratch = ViT(cfg.model)
    assert torch.equal(state["head.weight"], scratch.head.weight) and torch.equal(state["head.bias"], scratch.head.bias)
    # init.stats=data: the training split's statistics, not SRC's 0.3 / 0.2
    mean, std = load_data(cfg.data).train.channel_stats()
    assert first_step["ctx"].normalize.mean.flatten().tolist() == pytest.approx(mean)
    assert first_step["ctx"].normalize.std.flatten().tolist() == pytest.approx(std)


def test_a_head_is_kept_only_for_the_datas_classes():
    assert keeps_head(CLASSES, 10, CLASSES, 10)
    assert keeps_head(None, 10, CLASSES, 10)  # a source without names: the count decides
    assert not keeps_head(CLASSES[::-1], 10, CLASSES, 10)  # the same names in another order are other classes
    assert not keeps_head(None, 5, CLASSES, 10)
    assert not keeps_head(CLASSES, 10, CLASSES, 0)  # no head to keep it in (segmentation, pretraining)


def bicubic(pos_embed, old, new):
    """The reference: the patch positions of a class-token pos_embed interpolated bicubically on their grid
    (ViT paper §3.2), the class token's slot left alone. Shape: (1, 1 + old², D) -> (1, 1 + new², D)."""
    grid = pos_embed[:, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)  # (1, D, old, old)
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)  # (1, D, new, new)
    return torch.cat([pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, new * new, -1)], dim=1)


def test_a_different_image_size_resamples_pos_embed(tmp_path, first_step):
    path = tmp_path / "big.safetensors"
    big = save_src(path, img_size=16)  # a 4x4 grid; digits are 8x8: a 2x2 grid
    with pytest.raises(FirstStep):
        fit(config(tmp_path, "small", init__source=str(path)))
    expected = bicubic(big.pos_embed.detach(), 4, 2)
    assert torch.allclose(first_step["state"]["pos_embed"], expected, rtol=0, atol=1e-6)
    rest = {k: v for k, v in big.state_dict().items() if k != "pos_embed"}
    assert_equal_tensors({k: v for k, v in first_step["state"].items() if k != "pos_embed"}, rest)


def test_a_folder_is_fitted_to_a_size_srcs_patch_divides_and_must_have_srcs_channels(tmp_path, first_step, capsys):
    from test_own_data import photos

    folder = photos(tmp_path / "pets", {"cat": 12, "dog": 12})  # RGB, shorter sides 50, 48, 60: median 50
    path = tmp_path / "p7.safetensors"
    seven = save_src(path, img_size=14, patch_size=7)  # a 2x2 grid of 7x7 patches, 1 channel
    argv = ["train", "--init", str(path), "--data", f"folder:{folder}", "--out_dir", str(tmp_path), *CLI]
    assert main([*argv, "--name", "rgb"]) == 2
    err = capsys.readouterr().err
    assert "has 3 channels but model.in_chans=1" in err and "--data.channels 1 converts a folder" in err
    assert not (tmp_path / "rgb").exists()
    with pytest.raises(FirstStep):
        main([*argv, "--name", "grey", "--data.channels", "1"])
    cfg = first_step["ctx"].cfg
    assert (cfg.model.img_size, cfg.model.patch_size, cfg.model.num_classes) == (49, 7, 2)  # 50 down to 7 x 7
    assert torch.allclose(first_step["state"]["pos_embed"], bicubic(seven.pos_embed.detach(), 2, 7), rtol=0,
                          atol=1e-6)


def test_config_json_records_the_source_and_its_sha256(src, tmp_path, first_step):
    with pytest.raises(FirstStep):
        fit(config(tmp_path, "recorded", init__source=str(src)))
    init = json.loads((tmp_path / "recorded" / "config.json").read_text())["init"]
    assert init["source"] == str(src)
    assert init["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


def test_a_run_without_a_checkpoint_needs_its_src_unchanged(tmp_path, first_step):
    path = tmp_path / "src.safetensors"
    save_src(path)
    with pytest.raises(FirstStep):
        fit(config(tmp_path, "early", init__source=str(path)))
    run = tmp_path / "early"
    assert not (run / "checkpoint.safetensors").exists()  # stopped before its first checkpoint
    path.unlink()
    with pytest.raises(MissingFileError, match="init.source .* does not exist"):
        fit(config(tmp_path, "x"), resume=run)  # from step 0: the initial weights are SRC's
    save_src(path, seed=124)  # another file at the same path
    with pytest.raises(CheckpointError, match="refusing init.source .*the file changed"):
        fit(config(tmp_path, "x"), resume=run)


def test_resume_after_src_is_deleted_is_bit_identical(tmp_path):
    path = tmp_path / "src.safetensors"
    save_src(path, dim=16, depth=1)
    tiny = dict(model__dim=16, model__depth=1, data__augment="digits", optim__warmup_epochs=1.0,
                init__source=str(path))  # augmentation on: the restored random state matters
    full = fit(config(tmp_path, "full", optim__epochs=3, **tiny))
    part = fit(config(tmp_path, "part", optim__epochs=1, **tiny))
    path.unlink()
    resumed = fit(config(tmp_path, "ignored", optim__epochs=3, **tiny), resume=part)
    assert resumed == part and load_run_config(part).init == load_run_config(full).init
    assert_same_run(full, part)
    means = [load_meta(run / "model.safetensors")["mean"] for run in (full, part)]
    assert means[0] == means[1] == pytest.approx([0.3])  # SRC's statistics, from the checkpoint on resume


@pytest.fixture(scope="module")
def frozen_run(src, tmp_path_factory):
    """One epoch with the whole encoder frozen."""
    return fit(config(tmp_path_factory.mktemp("frozen"), "frozen", init__source=str(src), init__freeze="encoder"))


def test_freeze_encoder_leaves_every_encoder_tensor_bit_identical(src, frozen_run):
    before, (after, _) = load_tensors(src)[0], load_tensors(frozen_run / "model.safetensors")
    assert_equal_tensors(encoder_state(after), encoder_state(before))
    assert not torch.equal(after["head.weight"], before["head.weight"])  # the head trained


def test_a_frozen_batchnorm_keeps_its_running_statistics():
    from vitlab.config import InitConfig
    from vitlab.train.finetune import freeze

    torch.manual_seed(0)
    model = ViT(ModelConfig(**ARCH, norm="batch"))
    frozen = freeze(model, InitConfig(source="src", freeze="all-but-last-1"))
    assert frozen and all(not name.startswith(("blocks.1.", "norm.", "head.")) for name in frozen)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # what the loop does every epoch
    model(torch.randn(4, 1, 8, 8))
    after = model.state_dict()
    assert torch.equal(after["blocks.0.norm1.running_mean"], before["blocks.0.norm1.running_mean"])  # frozen
    assert not torch.equal(after["blocks.1.norm1.running_mean"], before["blocks.1.norm1.running_mean"])  # trains
    assert model.training and not model.blocks[0].norm1.training and model.blocks[1].norm1.training


def test_stats_source_normalises_with_srcs_mean_and_std(frozen_run):
    meta = load_meta(frozen_run / "model.safetensors")  # what predict, eval and export read
    assert meta["mean"] == pytest.approx([0.3]) and meta["std"] == pytest.approx([0.2])


# -- other layouts and tasks -----------------------------------------------------------------------------------------
def test_init_from_an_hf_save_pretrained_folder(tmp_path, first_step, capsys):
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    hf = ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=32,
                                             num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                             num_labels=10)).eval()
    hf.save_pretrained(tmp_path / "hf")
    with pytest.raises(FirstStep):
        main(["train", "--init", str(tmp_path / "hf"), "--out_dir", str(tmp_path), "--name", "ft", *CLI])
    expected = from_hf(hf.state_dict())
    # LABEL_0..9 are HF's placeholders: no names, ten classes: the head is kept
    assert_equal_tensors(first_step["state"], expected)
    cfg = first_step["ctx"].cfg
    assert cfg.model.norm_eps == 1e-12 and cfg.model.dim == 32 and cfg.model.depth == 2  # HF's architecture
    assert cfg.optim.lr == pytest.approx(digits().optim.lr * 0.3)  # the fine-tuning default
    with torch.no_grad():  # the imported model computes what HF does
        torch.testing.assert_close(first_step["logits"], hf(pixel_values=first_step["x"]).logits, rtol=0, atol=1e-5)
    out = capsys.readouterr().out
    assert "init " in out and "hf ViT" in out and "fine-tuning schedule: lr" in out


def test_an_hf_model_fine_tunes_on_other_classes_and_size_from_the_loss_hf_computes(tmp_path, first_step):
    """Issue 17's parity check: an HF ViTForImageClassification (10 classes, 8x8) saved with save_pretrained,
    fine-tuned on a folder of 3 classes at 16x16. The run's first-step loss, before any update, is the loss HF
    itself computes on the same batch with the same new head (HF given that head, and its own bicubic resampling
    of the position embedding, ``interpolate_pos_encoding=True``)."""
    from transformers import ViTConfig, ViTForImageClassification

    from test_own_data import photos

    torch.manual_seed(0)
    hf = ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=32,
                                             num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                             num_labels=10))
    hf.save_pretrained(tmp_path / "hf")
    folder = photos(tmp_path / "shapes", {"a": 10, "b": 10, "c": 10}, sizes=((16, 16),))
    with pytest.raises(FirstStep):
        main(["train", "--init", str(tmp_path / "hf"), "--data", f"folder:{folder}", "--data.channels", "1",
              "--data.augment", "none", "--optim.label_smoothing", "0", "--out_dir", str(tmp_path), "--name", "ft",
              *CLI])
    cfg, state = first_step["ctx"].cfg, first_step["state"]
    assert (cfg.model.img_size, cfg.model.num_classes, state["head.weight"].shape) == (16, 3, (3, 32))
    new = ViTForImageClassification.from_pretrained(tmp_path / "hf", num_labels=3, ignore_mismatched_sizes=True)
    with torch.no_grad():
        new.classifier.weight.copy_(state["head.weight"])
        new.classifier.bias.copy_(state["head.bias"])
        expected = new.train()(pixel_values=first_step["x"], labels=first_step["labels"],
                               interpolate_pos_encoding=True).loss
    torch.testing.assert_close(first_step["loss"], expected, rtol=0, atol=1e-5)
    assert first_step["loss"] > 0.5  # a real cross-entropy of a new 3-way head, not a degenerate one


def test_init_from_a_timm_layout_state_dict(tmp_path, first_step, capsys):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    model = ViT(ModelConfig(**ARCH))
    save_file({k: v.contiguous() for k, v in to_timm(model.state_dict()).items()}, str(tmp_path / "timm.safetensors"))
    argv = ["train", "--init", str(tmp_path / "timm.safetensors"), "--out_dir", str(tmp_path), *CLI]
    # a bare state dict does not say its heads (width 32 is not a multiple of 64): one line saying to set them
    assert main([*argv, "--name", "a"]) == 2
    err = capsys.readouterr().err
    assert "number of heads for width 32" in err and "set --model.heads" in err
    assert not (tmp_path / "a").exists()
    with pytest.raises(FirstStep):
        main([*argv, "--name", "b", "--model.heads", "2", "--lr", "1e-3"])
    assert_equal_tensors(first_step["state"], model.state_dict())
    assert first_step["ctx"].cfg.optim.lr == 1e-3  # set, so kept


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory):
    cfg = apply_overrides(RunConfig(task="pretrain", model=replace(ModelConfig(**ARCH), num_classes=0, dim=16,
                                                                    depth=1),
                                    data=DataConfig(name="digits")),
                          {"optim.epochs": 1, "optim.batch_size": 128, "pretrain.proj_hidden": 16,
                           "pretrain.proj_dim": 8, "pretrain.knn_k": 5, "device": "cpu", "progress": False,
                           "threads": 1, "tensorboard": False, "out_dir": str(tmp_path_factory.mktemp("pre")),
                           "name": "pre"})
    return fit(cfg)


def test_a_pretraining_runs_encoder_initialises_a_classification_run(pretrain_run, tmp_path, first_step):
    with pytest.raises(FirstStep):  # the run folder itself (its config.json is a RunConfig, not HF's)
        main(["train", "--init", str(pretrain_run), "--out_dir", str(tmp_path), "--name", "cls", *CLI])
    encoder, _ = load_model(pretrain_run)
    state = first_step["state"]
    assert_equal_tensors(encoder_state(state), encoder.state_dict())  # num_classes=0: no head there
    cfg = first_step["ctx"].cfg
    assert cfg.task == "classify" and cfg.model.num_classes == 10 and cfg.model.dim == 16
    seed_everything(cfg.seed)
    assert torch.equal(state["head.weight"], ViT(cfg.model).head.weight)  # new, seeded


def test_a_segmenters_encoder_is_srcs_and_its_decoder_new(src, tmp_path, first_step):
    from vitlab.models.segmenter import Segmenter
    from vitlab.recipes import segment

    cfg = apply_overrides(segment(), {**RUN, "model.img_size": 32, "model.num_classes": 0, "model.stem": "patch",
                                      "model.pool": "token", "model.class_token": True, "segment.train_images": 64,
                                      "segment.val_images": 16, "segment.test_images": 16, "init.source": str(src),
                                      "out_dir": str(tmp_path), "name": "seg"})
    with pytest.raises(FirstStep):
        fit(cfg)
    state = first_step["state"]
    theirs = load_tensors(src)[0]
    ours = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    assert_equal_tensors({k: v for k, v in ours.items() if k != "pos_embed"},
                         {k: v for k, v in encoder_state(theirs).items() if k != "pos_embed"})
    assert torch.allclose(ours["pos_embed"], bicubic(theirs["pos_embed"], 2, 8), rtol=0, atol=1e-6)  # 8x8 canvases
    seed_everything(cfg.seed)
    scratch = Segmenter(cfg.model, cfg.segment, num_classes=11).state_dict()
    assert_equal_tensors({k: v for k, v in state.items() if not k.startswith("encoder.")},
                         {k: v for k, v in scratch.items() if not k.startswith("encoder.")})


# -- bad input: one line, before any run folder ----------------------------------------------------------------
@pytest.mark.parametrize("changes, fragment", [
    ({"init.source": "x", "init.freeze": "all-but-last-0"}, "init.freeze='all-but-last-0' is not none, encoder"),
    ({"init.source": "x", "init.freeze": "some"}, "all-but-last-N with N a positive integer"),
    ({"init.freeze": "encoder"}, "would freeze randomly initialised weights"),
    ({"optim.layer_decay": 0}, "optim.layer_decay must be in (0, 1]"),
    ({"optim.layer_decay": 1.5}, "optim.layer_decay must be in (0, 1]"),
    ({"optim.layer_decay": float("nan")}, "optim.layer_decay must be in (0, 1]"),
    ({"init.source": "x", "init.stats": "imagenet"}, "init.stats='imagenet' is not one of"),
    ({"init.source": "x", "init.sha256": "abc"}, "init.sha256 must be 64 lower-case hex digits"),
])
def test_bad_settings_are_refused_naming_them(changes, fragment):
    with pytest.raises(ConfigError) as e:
        apply_overrides(digits(), changes)
    assert fragment in str(e.value)


def missing(folder):
    return folder / "missing.safetensors"


def text_file(folder):
    (folder / "notes.txt").write_text("hello")
    return folder / "notes.txt"


def cnn_weights(folder):
    torch.save({"encoder.weight": torch.zeros(2, 2)}, folder / "cnn.pth")
    return folder / "cnn.pth"


def needs_code(folder):
    torch.save({"model": FirstStep("an object of a test class")}, folder / "trainer.pth")  # unpickling runs code
    return folder / "trainer.pth"


def timm_file(name, **kwargs):
    """A file of timm's own VisionTransformer, of an architecture vitlab's ViT cannot express."""
    def make(folder):
        from safetensors.torch import save_file
        from timm_shim import import_timm

        timm = import_timm()
        model = timm.models.VisionTransformer(img_size=8, patch_size=4, in_chans=1, num_classes=10, embed_dim=64,
                                              depth=1, num_heads=1, **kwargs)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / f"{name}.safetensors")
        return folder / f"{name}.safetensors"
    return make


@pytest.mark.parametrize("make, fragment", [
    (missing, "does not exist"), (text_file, "unknown format '.txt'"), (cnn_weights, "not a ViT state dict"),
    (needs_code, "needs arbitrary code to unpickle"),
    (timm_file("layer_scale", init_values=1e-5), "no mapping for ['blocks.0.ls1.gamma', 'blocks.0.ls2.gamma']"),
    (timm_file("no_embed_class", no_embed_class=True), "none for the class token (timm's no_embed_class=True)"),
])
def test_a_missing_or_foreign_src_is_one_line_before_any_run_folder(tmp_path, capsys, make, fragment):
    path = make(tmp_path)
    assert main(["train", "--init", str(path), "--out_dir", str(tmp_path / "runs"), "--name", "r", *CLI]) == 2
    err = capsys.readouterr().err
    assert fragment in err and str(path) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_what_contradicts_srcs_weights_is_one_line_naming_both(src, tmp_path, capsys):
    assert main(["train", "--init", str(src), "--model.dim", "64", "--out_dir", str(tmp_path), *CLI]) == 2
    err = capsys.readouterr().err
    assert "model.dim=64 was set" in err and "model.dim=32" in err and len(err.strip().splitlines()) == 1
    rgb = tmp_path / "rgb.safetensors"
    save_src(rgb, in_chans=3, mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    assert main(["train", "--init", str(rgb), "--out_dir", str(tmp_path), "--name", "r", *CLI]) == 2
    err = capsys.readouterr().err
    assert "has 1 channels but model.in_chans=3" in err and str(rgb) in err and not (tmp_path / "r").exists()
    # the engine, given a model that is not SRC's (the Python API, no CLI to take SRC's architecture)
    with pytest.raises(ConfigError, match="trained on 3-channel images but model.in_chans=1"):
        fit(config(tmp_path, "api", init__source=str(rgb)))
    with pytest.raises(ConfigError, match="trains the last 3 blocks, but the model has 2"):
        fit(config(tmp_path, "api", init__source=str(src), init__freeze="all-but-last-3"))
    assert not (tmp_path / "api").exists()


# -- configuration: resume, overrides, sweeps ----------------------------------------------------------------------
def test_init_keys_cannot_change_on_resume_and_sweeps_take_layer_decay(src, tmp_path, capsys):
    assert not [k for k in RESUMABLE_KEYS if k.startswith("init.")]
    assert main(["train", "--resume", str(tmp_path / "r"), "--init", str(src)]) == 2
    assert "only --optim.epochs" in capsys.readouterr().err
    grid = parse_grid(["optim.layer_decay=0.65,1.0", "init.freeze=none,all-but-last-1"])
    points = expand(config(tmp_path, "base", init__source=str(src)), grid, seeds=1, out_dir=tmp_path / "sweep")
    assert sorted((c.optim.layer_decay, c.init.freeze) for p in points for c in p.configs) == [
        (0.65, "all-but-last-1"), (0.65, "none"), (1.0, "all-but-last-1"), (1.0, "none")]
    with pytest.raises(ConfigError, match="optim.layer_decay must be in"):
        expand(config(tmp_path, "base"), parse_grid(["optim.layer_decay=0.5,2"]), seeds=1, out_dir=tmp_path)
