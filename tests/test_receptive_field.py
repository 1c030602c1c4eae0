"""Receptive-field calculator (vitlab/analysis/receptive_field.py) against hand work and real layers.

Two independent references:
* tables worked out by hand from the definitions (a 3×3 kernel sees 3 pixels, two of them
  see 5, a stride-2 layer doubles the spacing of everything above it, ...);
* the actual ``nn.Conv2d`` / ``nn.MaxPool2d`` / ``nn.AvgPool2d`` stack, with all-positive
  weights (so nothing cancels) and no bias: the input pixels that can influence one output
  unit are found (a) as the non-zero entries of its gradient and (b) as the one-hot input
  images that make it non-zero. (a) sees only the arg-max through a max pool, so for stacks
  with max pooling it gives a subset; (b) is exact for every stack.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vitlab.analysis import LayerSpec, format_table, from_module, parse_spec, receptive_field


def _cols(rows, *keys):
    return [tuple(row[k] for k in keys) for row in rows]


# ---------------------------------------------------------------- hand-worked tables

def test_two_3x3_convs_see_5():
    # unit 0 of conv 1 covers pixels 0..2 (centre 1); unit 0 of conv 2 covers units 0..2 of
    # conv 1, i.e. pixels 0..4 (centre 2). With padding 1 each centre moves back to pixel 0.
    assert _cols(receptive_field(parse_spec("conv3,conv3")), "r", "j", "start") == [(3, 1, 1.0), (5, 1, 2.0)]
    assert _cols(receptive_field(parse_spec("conv3p1,conv3p1")), "r", "j", "start") == [(3, 1, 0.0), (5, 1, 0.0)]


def test_stride_2_then_3x3_sees_7_with_jump_2():
    # conv3s2 units sit on pixels 1, 3, 5, ... (jump 2), each seeing 3 pixels; a 3×3 on top
    # spans 3 of them: centres 1..5, pixels 0..6 -> r = 7, centre of unit 0 = 3.
    rows = receptive_field(parse_spec("conv3s2,conv3"), input_size=15)
    assert _cols(rows, "r", "j", "start", "size") == [(3, 2, 1.0, 7), (7, 2, 3.0, 5)]


def test_patch_embedding_16x16():
    # ViT-B/16's patch conv: each token sees exactly its own 16×16 patch, pixels 0..15 for
    # token 0 (centre 7.5), tokens 16 pixels apart, 224/16 = 14 per side.
    (row,) = receptive_field(parse_spec("conv16s16"), input_size=224)
    assert (row["r"], row["j"], row["start"], row["size"]) == (16, 16, 7.5, 14)


def test_dilation():
    # a 3-tap kernel with dilation 2 spans 5 pixels (taps at 0, 2, 4; centre 2); a second one
    # adds 4 more; with padding 2 the centre is back at 0.
    assert _cols(receptive_field(parse_spec("conv3d2,conv3d2")), "r", "start") == [(5, 2.0), (9, 4.0)]
    assert _cols(receptive_field(parse_spec("conv3p2d2")), "r", "start") == [(5, 0.0)]
    # dilated max pool: k_eff = 2*(3-1)+1 = 5, 20 + 2 - 5 = 17 -> floor(17/2) + 1 = 9 units
    (row,) = receptive_field(parse_spec("maxpool3s2p1d2"), input_size=20)
    assert (row["r"], row["j"], row["start"], row["size"]) == (5, 2, 1.0, 9)


def test_resnet_stem():
    # conv7s2p3: r 7, j 2, centre 3 - 3 = 0, 224 -> 112; maxpool3s2p1 adds (3-1)*2 = 4 -> r 11,
    # j 4, centre 0 + (1 - 1)*2 = 0, 112 -> 56.
    rows = receptive_field(parse_spec("conv7s2p3,maxpool3s2p1"), input_size=224)
    assert _cols(rows, "name", "r", "j", "start", "size") == [("conv7s2p3", 7, 2, 0.0, 112),
                                                             ("maxpool3s2p1", 11, 4, 0.0, 56)]


def test_vgg16_through_pool5_is_212():
    # blocks of 2, 2, 3, 3, 3 conv3p1 each followed by maxpool2s2. Per block, every conv adds
    # 2j and the pool adds j, then j doubles:
    #   j=1: 1+2+2+1 = 6;  j=2: 6+4+4+2 = 16;  j=4: 16+8*3+4 = 44;
    #   j=8: 44+16*3+8 = 100;  j=16: 100+32*3+16 = 212  (the value Araujo et al. list for VGG-16)
    block = lambda n: ",".join(["conv3p1"] * n + ["maxpool2s2"])  # noqa: E731
    rows = receptive_field(parse_spec(",".join(block(n) for n in (2, 2, 3, 3, 3))), input_size=224)
    pools = [row for row in rows if row["name"] == "maxpool2s2"]
    assert [(row["r"], row["j"], row["size"]) for row in pools] == [
        (6, 2, 112), (16, 4, 56), (44, 8, 28), (100, 16, 14), (212, 32, 7)]
    # every pool-2 shifts the centre by +0.5 input pixels of its jump: 0.5, +1, +2, +4, +8
    assert pools[-1]["start"] == 15.5


def test_input_too_small_raises():
    with pytest.raises(ValueError, match=r"layer 1 \(conv5\) gets a 3-pixel input"):
        receptive_field(parse_spec("conv3,conv5"), input_size=5)
    with pytest.raises(ValueError, match="input_size=0"):
        receptive_field(parse_spec("conv3"), input_size=0)


# ---------------------------------------------------------------- against the real layers

def _to_module(specs: list[LayerSpec]) -> nn.Sequential:
    layers = []
    for s in specs:
        if s.kind == "conv":
            conv = nn.Conv2d(1, 1, s.kernel, s.stride, s.padding, s.dilation, bias=False)
            nn.init.constant_(conv.weight, 1.0)  # positive: contributions never cancel
            layers.append(conv)
        elif s.kind == "maxpool":
            layers.append(nn.MaxPool2d(s.kernel, s.stride, s.padding, s.dilation))
        else:
            layers.append(nn.AvgPool2d(s.kernel, s.stride, s.padding))
    return nn.Sequential(*layers)  # float32: every value is positive, so "!= 0" is exact


def _extent(row, index: int) -> tuple[int, int]:
    """First and last input pixel (inclusive, not clipped) of output unit ``index``'s field."""
    centre = row["start"] + index * row["j"]
    lo, hi = centre - (row["r"] - 1) / 2, centre + (row["r"] - 1) / 2
    assert lo == int(lo) and hi == int(hi)  # start is a half-integer exactly when r is even
    return int(lo), int(hi)


def _box(row, y: int, x: int, size: int) -> tuple[torch.Tensor, bool]:
    """The predicted field of unit (y, x) clipped to the image, and whether it needed no clipping."""
    (y0, y1), (x0, x1) = _extent(row, y), _extent(row, x)
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[max(y0, 0):min(y1, size - 1) + 1, max(x0, 0):min(x1, size - 1) + 1] = True
    return mask, min(y0, x0) >= 0 and max(y1, x1) <= size - 1


def _bbox(mask: torch.Tensor) -> tuple[int, int, int, int]:
    ys, xs = mask.nonzero(as_tuple=True)
    return ys.min().item(), ys.max().item(), xs.min().item(), xs.max().item()


def _hole_free(specs) -> bool:
    """Dilation 1 and stride <= kernel in every layer: adjacent units' fields touch or overlap."""
    return all(s.dilation == 1 and s.stride <= s.kernel for s in specs)


# (spec, input side, dense): dense means every pixel inside an interior unit's extent matters;
# dilation, or a stride larger than the kernel, can leave holes (worked out per stack).
STACKS = [
    ("conv3p1,conv3p1", 13, True),
    ("conv3s2p1,conv3p1", 15, True),
    ("conv3,conv3d2,conv3p2d3", 21, True),          # taps {0,1,2} + {0,2,4} + {0,3,6}: 0..12, no holes
    ("conv3d2", 11, False),                         # taps 0, 2, 4 only
    ("conv3d2,conv3p1d2", 15, False),               # even offsets only
    ("conv5s2p2,avgpool3s2p1,conv3p1", 23, True),
    ("conv4s2p1,avgpool2s2,conv2", 22, True),       # even kernels: half-pixel centres
    ("conv1s2,conv3", 13, False),                   # stride > kernel: odd pixels unseen
    ("conv16s16", 32, True),
    ("conv3p1,maxpool2s2,conv3p1,avgpool3p1", 20, True),
    ("conv7s2p3,maxpool3s2p1", 32, True),
    ("maxpool3s2p1d2,conv3", 19, False),            # taps 0, 2, 4 then 0, 2, 4 at jump 2
]


def _units(size: int) -> list[tuple[int, int]]:
    """Output units to probe: the centre, the four corners, and one beside the top edge."""
    c, last = size // 2, size - 1
    return sorted({(c, c), (0, 0), (last, last), (0, last), (last, 0), (min(1, last), c)})


def _check(seen: torch.Tensor, row, y: int, x: int, side: int, dense: bool, hole_free: bool):
    """The claims the calculator makes about one unit, given the pixels found to reach it.

    Always: nothing outside the clipped extent. A unit whose extent lies inside the image:
    exactly the extent (dense) or a subset with the same bounding box (holes). At the
    border the clipped extent is only an upper bound (see ``test_border_*``), except at
    the top-left corner of hole-free stacks: unit 0 of every layer starts at or before
    pixel 0, so a padded unit never sees an image pixel that unit 0 does not.
    """
    box, interior = _box(row, y, x, side)
    assert not (seen & ~box).any(), f"unit {(y, x)} is reached from outside its predicted field"
    if interior and dense or (y, x) == (0, 0) and hole_free:
        assert torch.equal(seen, box), f"unit {(y, x)}"
    elif interior:
        assert _bbox(seen) == _bbox(box), f"unit {(y, x)}"


@pytest.mark.parametrize("spec,side,dense", STACKS)
def test_gradient_support_matches_prediction(spec, side, dense):
    specs = parse_spec(spec)
    rows = receptive_field(specs, input_size=side)
    n = rows[-1]["size"]
    net = _to_module(specs)
    x = torch.ones(1, 1, side, side, dtype=torch.float32, requires_grad=True)
    out = net(x)
    assert out.shape[-2:] == (n, n)  # PyTorch's own output size
    assert _box(rows[-1], n // 2, n // 2, side)[1], "the centre unit should be interior"
    has_max = any(s.kind == "maxpool" for s in specs)
    for y, xx in _units(n):
        (grad,) = torch.autograd.grad(out[0, 0, y, xx], x, retain_graph=True)
        seen = grad[0, 0] != 0
        if has_max:  # the gradient runs through one arg-max per window: a subset, never more
            assert not (seen & ~_box(rows[-1], y, xx, side)[0]).any(), f"unit {(y, xx)}"
        else:
            _check(seen, rows[-1], y, xx, side, dense, _hole_free(specs))


@pytest.mark.parametrize("spec,side,dense", STACKS)
def test_impulse_support_matches_prediction(spec, side, dense):
    # one image per input pixel, that pixel 1 and the rest 0: with positive weights an output
    # unit is positive exactly when the pixel can reach it (max pools included, since every
    # window holds a real, non-negative value that beats the -inf padding).
    specs = parse_spec(spec)
    rows = receptive_field(specs, input_size=side)
    impulses = torch.eye(side * side, dtype=torch.float32).reshape(side * side, 1, side, side)
    with torch.no_grad():
        out = _to_module(specs)(impulses)  # (side*side, 1, n, n)
    for y, xx in _units(rows[-1]["size"]):
        seen = (out[:, 0, y, xx] > 0).reshape(side, side)
        _check(seen, rows[-1], y, xx, side, dense, _hole_free(specs))


def _reach_1d(specs, side: int, unit: int) -> list[int]:
    """Pixels (along one axis) that reach output ``unit``, from the 2-D impulse response."""
    impulses = torch.eye(side * side, dtype=torch.float32).reshape(side * side, 1, side, side)
    with torch.no_grad():
        out = _to_module(specs)(impulses)
    seen = (out[:, 0, unit, unit] > 0).reshape(side, side)
    return seen.any(dim=1).nonzero().flatten().tolist()


def test_border_padding_hides_dilated_taps():
    # maxpool3s2p1d2, unit 0: taps at 0*2 - 1 + t*2 = -1 (padding), 1, 3. The extent is
    # start - (r-1)/2 .. start + (r-1)/2 = 1 - 2 .. 1 + 2 = -1..3, clipped 0..3; pixel 0 and
    # pixel 2 never reach it.
    specs = parse_spec("maxpool3s2p1d2")
    (row,) = receptive_field(specs, input_size=9)
    assert _extent(row, 0) == (-1, 3)
    assert _reach_1d(specs, 9, 0) == [1, 3]


def test_border_dropped_pixels_do_not_come_back():
    # conv3s2 on 8 pixels: units centred on 1, 3, 5 (pixel 7 is dropped: floor((8-3)/2)+1 = 3).
    # conv3p1 then taps units 1, 2, 3 for its last unit 2; unit 3 is padding, so pixels 2..6
    # reach it, while the extent 5 +- 3 = 2..8 clips to 2..7.
    specs = parse_spec("conv3s2,conv3p1")
    rows = receptive_field(specs, input_size=8)
    assert rows[-1]["size"] == 3 and _extent(rows[-1], 2) == (2, 8)
    assert _reach_1d(specs, 8, 2) == [2, 3, 4, 5, 6]


def test_dilated_conv_leaves_holes():
    # the caveat in the module docstring, shown on the real layer: r = 5 but 3 taps per axis
    rows = receptive_field(parse_spec("conv3d2"), input_size=9)
    x = torch.ones(1, 1, 9, 9, dtype=torch.float32, requires_grad=True)
    _to_module(parse_spec("conv3d2"))(x)[0, 0, 2, 2].backward()
    assert rows[0]["r"] == 5
    assert (x.grad[0, 0] != 0).nonzero().tolist() == [[y, xx] for y in (2, 4, 6) for xx in (2, 4, 6)]


# ---------------------------------------------------------------- parsing

def test_parse_spec_defaults_and_fields():
    assert parse_spec("conv3s1p1, maxpool2s2 ,conv3s2p1d2,avgpool3") == [
        LayerSpec("conv", 3, 1, 1, 1), LayerSpec("maxpool", 2, 2, 0, 1),
        LayerSpec("conv", 3, 2, 1, 2), LayerSpec("avgpool", 3, 1, 0, 1)]
    assert parse_spec("conv11p5d3") == [LayerSpec("conv", 11, 1, 5, 3)]


@pytest.mark.parametrize("token", ["conv", "pool3", "conv3x3", "conv3p1s2", "Conv3", "conv3s", "", "conv-3"])
def test_parse_spec_bad_token(token):
    with pytest.raises(ValueError) as err:
        parse_spec(f"conv3,{token}")
    assert repr(token) in str(err.value) and "KIND K [sS] [pP] [dD]" in str(err.value)


@pytest.mark.parametrize("token,message", [
    ("conv0", "kernel=0"), ("conv3s0", "stride=0"), ("conv3d0", "dilation=0"),
    ("avgpool3d2", "dilation=2 for an avgpool"), ("maxpool3p2", "padding=2 for a maxpool"),
])
def test_parse_spec_bad_values(token, message):
    with pytest.raises(ValueError, match=message):
        parse_spec(token)


def test_layerspec_validation():
    with pytest.raises(ValueError, match=r"kind='deconv' is not one of \('conv', 'maxpool', 'avgpool'\)"):
        LayerSpec("deconv", 3)
    with pytest.raises(ValueError, match="padding=-1"):
        LayerSpec("conv", 3, padding=-1)
    with pytest.raises(ValueError, match="stride=1.5"):
        LayerSpec("conv", 3, stride=1.5)
    with pytest.raises(ValueError, match="kernel=True"):
        LayerSpec("conv", True)
    assert LayerSpec("conv", 3, 2, 1, 2).token == "conv3s2p1d2"
    assert LayerSpec("conv", 3, 2, 1, 2).effective_kernel == 5


# ---------------------------------------------------------------- from_module

def test_from_module_on_a_real_stem():
    stem = nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=7, stride=2, padding=3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        nn.Sequential(nn.Conv2d(16, 16, (3, 3), padding="same", dilation=2), nn.GELU()),
        nn.AvgPool2d(2),  # stride defaults to the kernel
        nn.Conv2d(16, 8, 1, padding="valid"),
    )
    specs = from_module(stem)
    assert specs == parse_spec("conv7s2p3,maxpool3s2p1,conv3p2d2,avgpool2s2,conv1")
    rows = receptive_field(specs, input_size=64)
    assert stem(torch.zeros(1, 3, 64, 64)).shape == (1, 8, rows[-1]["size"], rows[-1]["size"])


@pytest.mark.parametrize("module,message", [
    (nn.Conv2d(1, 1, (3, 5)), r"kernel_size=\(3, 5\)"),
    (nn.Sequential(nn.Conv2d(1, 1, 3, stride=(1, 2))), r"0 \(Conv2d\) has stride=\(1, 2\)"),
    (nn.MaxPool2d(3, 2, ceil_mode=True), "ceil_mode=True"),
    (nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1)), "AdaptiveAvgPool2d"),
    (nn.ConvTranspose2d(1, 1, 2, 2), "ConvTranspose2d"),
    (nn.Conv2d(1, 1, 4, padding="same"), "padding='same' with an even effective kernel 4"),
])
def test_from_module_rejects(module, message):
    with pytest.raises(ValueError, match=message):
        from_module(module)


# ---------------------------------------------------------------- table

def test_format_table_is_aligned():
    table = format_table(receptive_field(parse_spec("conv16s16,conv3p1"), input_size=224))
    lines = table.splitlines()
    assert lines[0].split() == ["#", "layer", "k", "s", "p", "d", "r", "j", "start", "size"]
    assert lines[2].split() == ["0", "conv16s16", "16", "16", "0", "1", "16", "16", "7.5", "14"]
    assert lines[3].split() == ["1", "conv3p1", "3", "1", "1", "1", "48", "16", "7.5", "14"]
    # right-aligned numbers: every row ends in the same column
    assert len({len(line) for line in lines}) == 1
    assert "size" not in format_table(receptive_field(parse_spec("conv3")))
