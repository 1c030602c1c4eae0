"""vitlab/train/checkpoint.py: safetensors on disk, atomic writes, strict loading, optimiser state."""
import copy
import hashlib
import json
import struct

import numpy as np
import pytest
import torch

from vitlab.config import ModelConfig
from vitlab.models import ViT
from vitlab.fileio import atomic_write_bytes
from vitlab.train.checkpoint import (CheckpointError, load_model_state, load_tensors, optimizer_from_tensors,
                                     optimizer_to_tensors, save_tensors)
from vitlab.train.optim import param_groups

SAFETENSORS_DTYPES = {"F32": np.float32, "I64": np.int64, "U8": np.uint8}


def tiny_vit(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(img_size=8, patch_size=4, in_chans=1, num_classes=10, dim=16, depth=1, heads=2, mlp_ratio=2.0)
    return ViT(ModelConfig(**{**cfg, **kw}))


def sample_tensors():
    return {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 7,
            "idx": torch.tensor([3, -1, 2**40], dtype=torch.int64),
            "bytes": torch.tensor([0, 255, 7], dtype=torch.uint8),
            "view": torch.arange(12, dtype=torch.float32).reshape(3, 4).t()}  # non-contiguous


def read_safetensors_by_hand(path):
    """Parse the format from its spec: u64 little-endian header length, JSON header, raw data."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[start:end], dtype=np.dtype(SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<"))
        tensors[name] = arr.reshape(info["shape"])
    return header, tensors, raw


def test_save_tensors_writes_a_real_safetensors_file(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    src = sample_tensors()
    meta = {"epoch": 3, "classes": ["a", "b"], "nested": {"x": [1.5, None]}}
    save_tensors(path, src, meta)
    header, tensors, raw = read_safetensors_by_hand(path)
    assert set(tensors) == set(src)
    for name, t in src.items():
        np.testing.assert_array_equal(tensors[name], t.numpy())
        assert list(header[name]["shape"]) == list(t.shape)
    assert header["w"]["dtype"] == "F32" and header["idx"]["dtype"] == "I64" and header["bytes"]["dtype"] == "U8"
    # vitlab's metadata is one JSON string under the spec's __metadata__ key, with the tensors' SHA-256 added:
    # worked out here from the bytes on disk, in name order, as name|dtype|shape| then the raw data
    stored = json.loads(header["__metadata__"]["vitlab"])
    h = hashlib.sha256()
    torch_dtypes = {"F32": "torch.float32", "I64": "torch.int64", "U8": "torch.uint8"}
    for name in sorted(tensors):
        h.update(f"{name}|{torch_dtypes[header[name]['dtype']]}|{tuple(header[name]['shape'])}|".encode())
        h.update(np.ascontiguousarray(tensors[name]).tobytes())
    assert stored == {**meta, "sha256": h.hexdigest()}
    # no pickle anywhere: not a pickle stream (0x80 protocol byte) nor a torch.save zip archive
    assert raw[:1] != b"\x80" and raw[:4] != b"PK\x03\x04"
    assert b"torch._utils" not in raw and b"cnumpy" not in raw
    # and our own reader agrees
    loaded, loaded_meta = load_tensors(path)
    assert loaded_meta == meta
    for name, t in src.items():
        assert torch.equal(loaded[name], t) and loaded[name].dtype == t.dtype


def test_missing_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(CheckpointError, match="nope.safetensors"):
        load_tensors(path)


@pytest.mark.parametrize("damage", ["truncate_data", "truncate_header", "random", "empty"])
def test_corrupted_files_raise_checkpoint_error_naming_the_path(tmp_path, damage):
    good = tmp_path / "good.safetensors"
    save_tensors(good, {"w": torch.randn(64, 64)}, {"epoch": 1})
    raw = good.read_bytes()
    bad = tmp_path / f"bad-{damage}.safetensors"
    if damage == "truncate_data":
        bad.write_bytes(raw[:len(raw) // 2])
    elif damage == "truncate_header":
        bad.write_bytes(raw[:20])
    elif damage == "random":
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:
        bad.write_bytes(b"")
    with pytest.raises(CheckpointError) as e:
        load_tensors(bad)
    assert str(bad) in str(e.value)


def test_flipped_tensor_bytes_fail_the_checksum_naming_the_file(tmp_path):
    """Issue 11, defect 9: a bit flipped on disk inside the tensor data is refused, not loaded silently."""
    path = tmp_path / "ckpt.safetensors"
    save_tensors(path, {"w": torch.arange(1000, dtype=torch.float32), "b": torch.ones(3)}, {"epoch": 1})
    raw = bytearray(path.read_bytes())
    raw[-1000] ^= 0x01  # one bit of w's data: still a valid safetensors file, with another value in it
    path.write_bytes(bytes(raw))
    from safetensors.torch import load_file

    assert not torch.equal(load_file(str(path))["w"], torch.arange(1000, dtype=torch.float32))  # really changed
    with pytest.raises(CheckpointError) as e:
        load_tensors(path)
    assert str(path) in str(e.value) and "SHA-256" in str(e.value)
    # a file written by another tool (no vitlab checksum) is still read
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    assert torch.equal(load_tensors(tmp_path / "foreign.safetensors")[0]["w"], torch.zeros(2))


def test_corrupted_metadata_json_is_a_checkpoint_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "meta.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"vitlab": "{not json"})
    with pytest.raises(CheckpointError, match="meta.safetensors"):
        load_tensors(path)


def test_load_model_state_accepts_a_matching_state():
    src, dst = tiny_vit(seed=1), tiny_vit(seed=2)
    assert not torch.equal(src.head.weight, dst.head.weight)
    load_model_state(dst, src.state_dict(), "src.safetensors")
    for (n, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a, b), n


def test_load_model_state_lists_missing_unexpected_and_misshaped_keys():
    model = tiny_vit()
    before = copy.deepcopy(model.state_dict())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    del state["blocks.0.mlp.fc1.bias"]
    del state["norm.weight"]
    state["blocks.1.attn.to_qkv.weight"] = torch.zeros(3)
    state["head.weight"] = torch.zeros(5, 16)
    state["to_patch_embedding.proj.weight"] = torch.zeros(16, 1, 2, 2)
    with pytest.raises(CheckpointError) as e:
        load_model_state(model, state, "some/file.safetensors")
    msg = str(e.value)
    assert "some/file.safetensors" in msg
    assert "missing keys ['blocks.0.mlp.fc1.bias', 'norm.weight']" in msg
    assert "unexpected keys ['blocks.1.attn.to_qkv.weight']" in msg
    assert "head.weight: file (5, 16) vs model (10, 16)" in msg
    assert "to_patch_embedding.proj.weight: file (16, 1, 2, 2) vs model (16, 1, 4, 4)" in msg
    # nothing was loaded
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("breakage", ["non_tensor", "bad_meta"])
def test_failed_save_leaves_previous_file_and_no_temporaries(tmp_path, breakage):
    path = tmp_path / "checkpoint.safetensors"
    save_tensors(path, {"w": torch.ones(3)}, {"epoch": 1})
    before = path.read_bytes()
    if breakage == "non_tensor":
        tensors, meta = {"w": torch.zeros(3), "oops": "not a tensor"}, {"epoch": 2}
    else:
        tensors, meta = {"w": torch.zeros(3)}, {"epoch": object()}  # not JSON-serialisable
    with pytest.raises((AttributeError, TypeError)):
        save_tensors(path, tensors, meta)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]
    assert load_tensors(path)[1] == {"epoch": 1}


def test_atomic_write_bytes_replaces_or_keeps(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write_bytes(path, b"first\n")
    atomic_write_bytes(path, b"second\n")
    assert path.read_bytes() == b"second\n"
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "a str, not bytes")
    assert path.read_bytes() == b"second\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_optimizer_state_round_trip_through_a_file(tmp_path):
    """Two AdamW optimisers, one restored from the other's saved state, take identical next steps."""
    model_a = tiny_vit(seed=3)
    opt_a = torch.optim.AdamW(param_groups(model_a, 0.05), lr=3e-3, betas=(0.8, 0.95))
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 1, 8, 8, generator=gen), torch.randint(0, 10, (8,), generator=gen))
               for _ in range(4)]

    def step(model, opt, batch):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
        opt.step()

    for batch in batches[:3]:
        step(model_a, opt_a, batch)

    tensors, meta = optimizer_to_tensors(opt_a)
    assert all(k.startswith("optim.") for k in tensors)
    save_tensors(tmp_path / "opt.safetensors", {**tensors, **{f"model.{k}": v for k, v in
                                                               model_a.state_dict().items()}}, {"optimizer": meta})
    loaded, loaded_meta = load_tensors(tmp_path / "opt.safetensors")

    model_b = tiny_vit(seed=4)
    load_model_state(model_b, {k[6:]: v for k, v in loaded.items() if k.startswith("model.")}, "opt.safetensors")
    # different hyper-parameters on purpose: the restored state must bring the saved ones back
    opt_b = torch.optim.AdamW(param_groups(model_b, 0.5), lr=1.0, betas=(0.5, 0.5))
    optimizer_from_tensors(opt_b, {k: v for k, v in loaded.items() if k.startswith("optim.")},
                           loaded_meta["optimizer"])
    assert [g["lr"] for g in opt_b.param_groups] == [3e-3, 3e-3]
    assert [g["weight_decay"] for g in opt_b.param_groups] == [0.05, 0.0]
    assert tuple(opt_b.param_groups[0]["betas"]) == (0.8, 0.95)
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert float(sa["step"]) == float(sb["step"]) == 3.0
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])

    step(model_a, opt_a, batches[3])
    step(model_b, opt_b, batches[3])
    for (name, pa), pb in zip(model_a.named_parameters(), model_b.parameters()):
        assert torch.equal(pa, pb), name


def test_fresh_optimizer_restores_an_untouched_state():
    model = tiny_vit()
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3)
    tensors, meta = optimizer_to_tensors(opt)
    assert tensors == {} and meta["scalars"] == {}
    optimizer_from_tensors(opt, tensors, json.loads(json.dumps(meta)))
    assert len(opt.state) == 0 and opt.param_groups[0]["lr"] == 1e-3
