"""vitlab/configio.py: dataclasses <-> dicts, files and dotted overrides, strictly typed."""
import json

import pytest

from vitlab.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from vitlab.configio import ConfigError, apply_overrides, from_dict, load_config_file, merge, to_dict, valid_keys
from vitlab.recipes import digits


def test_to_dict_from_dict_round_trip_through_json():
    cfg = RunConfig(
        model=ModelConfig(img_size=32, patch_size=4, in_chans=1, num_classes=7, dim=48, depth=3, heads=6,
                          mlp_ratio=3.0, qkv_bias=False, pool="max", drop_path=0.2, init="kaiming_fan_out",
                          attn_impl="explicit", dynamic_img_size=True),
        data=DataConfig(val_split=0.3, split_seed=5, augment="none", rotate=7.5),
        optim=OptimConfig(epochs=3, batch_size=16, lr=3e-3, min_lr=1e-6, betas=(0.8, 0.95), grad_clip=0.0),
        name="x", out_dir="/somewhere", seed=11, device="cpu", threads=2, progress=False,
    )
    d = to_dict(cfg)
    # Plain JSON types only: nested dicts, tuples as lists.
    assert d["model"]["dim"] == 48 and d["optim"]["betas"] == [0.8, 0.95] and d["progress"] is False
    back = from_dict(RunConfig, json.loads(json.dumps(d)))
    assert back == cfg
    assert back.optim.betas == (0.8, 0.95) and isinstance(back.optim.betas, tuple)


def test_from_dict_partial_keeps_defaults():
    cfg = from_dict(RunConfig, {"model": {"depth": 2}, "seed": 4})
    assert cfg.model.depth == 2 and cfg.seed == 4
    assert cfg.model.dim == ModelConfig().dim and cfg.optim == OptimConfig()


def test_valid_keys_are_the_dotted_leaf_fields():
    keys = valid_keys()
    assert "model.dim" in keys and "optim.betas" in keys and "data.augment" in keys and "seed" in keys
    assert "model" not in keys and "optim" not in keys
    from vitlab.config import InitConfig, PretrainConfig, SegmentConfig

    sections = (ModelConfig, DataConfig, OptimConfig, SegmentConfig, PretrainConfig, InitConfig)
    # task, name, out_dir, seed, device, threads, compile, precision, progress, ckpt_every, keep_last,
    # dist_timeout_s, tensorboard
    n_leaves = sum(len(c.__dataclass_fields__) for c in sections) + 13
    assert len(keys) == len(set(keys)) == n_leaves
    assert "pretrain.tau" in keys and "segment.upsample" in keys  # one configuration for every task
    assert {"init.source", "init.sha256", "init.freeze", "init.stats", "optim.layer_decay"} <= set(keys)


def test_unknown_dotted_override_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        apply_overrides(digits(), {"model.dimm": 3})
    msg = str(e.value)
    assert "model.dimm" in msg
    for key in ("model.dim", "model.depth", "optim.lr", "data.augment", "seed"):
        assert key in msg


def test_unknown_key_in_from_dict_names_section_and_lists_its_keys():
    with pytest.raises(ConfigError) as e:
        from_dict(RunConfig, {"optim": {"lr": 1e-3, "learning_rate": 1.0}})
    msg = str(e.value)
    assert "optim.learning_rate" in msg and "optim.lr" in msg and "optim.warmup_epochs" in msg


@pytest.mark.parametrize("suffix, text", [
    (".json", '{"model": {"dim": 64, "dimm": 3}}'),
    (".toml", "[model]\ndim = 64\ndimm = 3\n"),
    (".toml", "[modle]\ndim = 64\n"),
])
def test_unknown_key_in_config_file(tmp_path, suffix, text):
    path = tmp_path / f"cfg{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        merge(digits(), load_config_file(path))
    msg = str(e.value)
    assert ("model.dimm" in msg or "modle.dim" in msg) and "model.dim," in msg and "optim.lr" in msg


@pytest.mark.parametrize("key, value", [
    ("model.depth", "abc"),
    ("model.depth", "6.5"),
    ("model.depth", 6.0),
    ("model.depth", True),
    ("optim.lr", "fast"),
    ("optim.lr", True),
    ("progress", "maybe"),
    ("progress", 2),
    ("optim.betas", "0.9"),
    ("optim.betas", "0.9,0.98,0.999"),
    ("optim.betas", [0.9]),
    ("optim.betas", "0.9,x"),
    ("name", 5),
])
def test_wrong_type_names_the_key(key, value):
    with pytest.raises(ConfigError) as e:
        apply_overrides(digits(), {key: value})
    assert key in str(e.value)


def test_string_coercion():
    cfg = apply_overrides(digits(), {"model.depth": "6", "optim.lr": "3e-3", "model.qkv_bias": "false",
                                     "progress": "true", "optim.betas": "0.9,0.98", "seed": "3",
                                     "optim.epochs": " 7 ", "model.mlp_ratio": "2"})
    assert cfg.model.depth == 6 and type(cfg.model.depth) is int
    assert cfg.optim.lr == 0.003 and type(cfg.optim.lr) is float
    assert cfg.model.qkv_bias is False and cfg.progress is True
    assert cfg.optim.betas == (0.9, 0.98) and type(cfg.optim.betas) is tuple
    assert cfg.seed == 3 and cfg.optim.epochs == 7
    assert cfg.model.mlp_ratio == 2.0 and type(cfg.model.mlp_ratio) is float


@pytest.mark.parametrize("text, expected", [("true", True), ("False", False), ("1", True), ("0", False),
                                            ("yes", True), ("off", False)])
def test_bool_spellings(text, expected):
    assert apply_overrides(digits(), {"model.fc_norm": text}).model.fc_norm is expected


def test_overrides_leave_the_input_unchanged_and_other_fields_alone():
    base = digits()
    cfg = apply_overrides(base, {"model.dim": 32})
    assert base.model.dim == digits().model.dim
    assert cfg.model == ModelConfig(**{**to_dict(base.model), "dim": 32})
    assert cfg.optim == base.optim and cfg.data == base.data


def test_invariant_violation_from_override_is_a_value_error():
    # A well-typed value that breaks an invariant is reported by the dataclass itself.
    with pytest.raises(ValueError, match="model.dim=100 is not divisible by model.heads=3"):
        apply_overrides(digits(), {"model.dim": 100, "model.heads": 3})


def test_toml_partial_file_merged_over_recipe(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text('seed = 3\n[model]\ndim = 48\nheads = 3\n[optim]\nlr = 3e-3\nbetas = [0.9, 0.98]\n'
                    'epochs = 5\n[data]\naugment = "none"\n')
    base = digits()
    cfg = merge(base, load_config_file(path))
    assert (cfg.model.dim, cfg.model.heads, cfg.optim.lr, cfg.optim.betas, cfg.optim.epochs) == \
           (48, 3, 3e-3, (0.9, 0.98), 5)
    assert cfg.seed == 3 and cfg.data.augment == "none"
    # Everything the file does not mention keeps the recipe's value.
    assert cfg.model.depth == base.model.depth and cfg.model.patch_size == base.model.patch_size
    assert cfg.optim.batch_size == base.optim.batch_size and cfg.data.name == base.data.name


def test_json_partial_file_merged_over_recipe(tmp_path):
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"optim": {"batch_size": 16, "lr": 1}, "model": {"pool": "max"}, "name": "j"}))
    base = digits()
    cfg = merge(base, load_config_file(path))
    assert cfg.optim.batch_size == 16 and cfg.optim.lr == 1.0 and type(cfg.optim.lr) is float
    assert cfg.model.pool == "max" and cfg.name == "j"
    assert cfg.model.dim == base.model.dim and cfg.optim.epochs == base.optim.epochs


def test_wrong_type_in_config_file_names_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[optim]\nepochs = "many"\n')
    with pytest.raises(ConfigError, match="optim.epochs"):
        merge(digits(), load_config_file(path))


def test_missing_and_malformed_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\ndim = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(bad)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{'model': 1}")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config_file(bad_json)


def test_section_that_is_not_a_table_is_rejected():
    with pytest.raises(ConfigError, match="model"):
        from_dict(RunConfig, {"model": 5})
