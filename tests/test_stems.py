"""vitlab/layers/stems.py: shapes, parameter counts, FLOPs and receptive fields of the tokeniser stems."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitlab import config
from vitlab.analysis.receptive_field import from_module, receptive_field
from vitlab.config import ModelConfig
from vitlab.flops import forward_flops
from vitlab.analysis import stem_grid, stem_specs
from vitlab.flops import stem_summary
from vitlab.layers import STEMS, ConvStem, PatchEmbed, build_stem
from vitlab.layers.stems import CONV_STEMS
from vitlab.models import ViT

CONV = ("conv+maxpool", "conv+stride", "conv+avgpool")


def small(**kw):
    return ModelConfig(**{**dict(img_size=16, patch_size=4, in_chans=3, num_classes=5, dim=16, depth=1, heads=2),
                          **kw})


def test_config_and_layer_agree_on_the_choices():
    assert config.STEMS == STEMS


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("img,patch", [(16, 4), (16, 2), (24, 8)])
def test_output_shape_and_grid(stem, img, patch):
    cfg = small(img_size=img, patch_size=patch, stem=stem)
    module = build_stem(cfg)
    g = img // patch
    out = module(torch.randn(2, 3, img, img))
    assert out.shape == (2, g * g, 16)
    assert stem_grid(module, img) == g and stem_summary(cfg)["grid"] == g
    assert ViT(cfg)(torch.randn(2, 3, img, img)).shape == (2, 5)


def test_conv_stem_tokens_are_row_major():
    stem = ConvStem(kind="conv+stride", patch_size=4, in_chans=3, dim=16).eval()
    x = torch.randn(1, 3, 16, 16)
    fmap = stem.to_dim(stem.stages(x))  # (1, D, 4, 4)
    torch.testing.assert_close(stem(x)[0, 1 * 4 + 2], fmap[0, :, 1, 2])


def test_default_stem_is_the_patch_embedding_with_its_keys():
    model = ViT(small())
    assert type(model.to_patch_embedding) is PatchEmbed
    keys = {k for k in model.state_dict() if k.startswith("to_patch_embedding")}
    assert keys == {"to_patch_embedding.proj.weight", "to_patch_embedding.proj.bias"}
    conv = ViT(small(stem="conv+stride"))
    assert not any(k.startswith("to_patch_embedding.proj.") for k in conv.state_dict())


def test_parameter_counts_by_hand():
    # C=3, D=16, P=4: two steps with widths 8, 16 (doubling up to D), then a 1x1 conv to D.
    assert ConvStem(kind="conv+stride", patch_size=4, in_chans=3, dim=16).stages[0].out_channels == 8
    conv_stem = (3 * 8 * 9 + 2 * 8) + (8 * 16 * 9 + 2 * 16) + (16 * 16 + 16)  # conv (no bias) + BN, ..., 1x1 + bias
    assert conv_stem == 1688
    for stem in CONV:  # the pools have no parameters
        assert stem_summary(small(stem=stem))["params"] == conv_stem
        assert sum(p.numel() for p in build_stem(small(stem=stem)).parameters()) == conv_stem
    assert stem_summary(small())["params"] == 3 * 16 * 4 * 4 + 16
    # the stem is the only difference in the whole model
    assert (sum(p.numel() for p in ViT(small(stem="conv+maxpool")).parameters())
            - sum(p.numel() for p in ViT(small()).parameters())) == conv_stem - (3 * 16 * 16 + 16)


def test_flops_by_hand():
    # 2 * MACs of each convolution: Cout * Hout * Wout * Cin * k * k.
    stride = 2 * (8 * 8 * 8 * 3 * 9 + 16 * 4 * 4 * 8 * 9 + 16 * 4 * 4 * 16 * 1)  # 16 -> 8 -> 4, then 1x1
    pooled = 2 * (8 * 16 * 16 * 3 * 9 + 16 * 8 * 8 * 8 * 9 + 16 * 4 * 4 * 16 * 1)  # convs at 16 and 8
    assert stem_summary(small(stem="conv+stride"))["flops"] == stride == 72704
    assert stem_summary(small(stem="conv+maxpool"))["flops"] == pooled
    assert stem_summary(small(stem="conv+avgpool"))["flops"] == pooled
    assert stem_summary(small())["flops"] == 2 * 16 * 4 * 4 * 3 * 4 * 4
    # forward_flops of the whole model changes by exactly the stem's difference, for either norm
    for norm in ("layer", "batch"):
        diff = forward_flops(small(stem="conv+stride", norm=norm)) - forward_flops(small(norm=norm))
        assert diff == stride - 2 * 16 * 4 * 4 * 3 * 4 * 4


# analytic tables at P=4: (r, j, start) after the last layer
TABLE = {"patch": (4, 4, 1.5), "conv+maxpool": (10, 4, 1.5), "conv+avgpool": (10, 4, 1.5),
         "conv+stride": (7, 4, 0.0)}


@pytest.mark.parametrize("stem", STEMS)
def test_receptive_field_table(stem):
    specs = stem_specs(stem, 4)
    assert specs == from_module(build_stem(small(stem=stem)))
    last = receptive_field(specs, input_size=16)[-1]
    assert (last["r"], last["j"], last["start"], last["size"]) == (*TABLE[stem], 4)


def _positive_and_smooth(stem: nn.Module) -> nn.Module:
    """Positive weights, eval-mode BatchNorm (identity stats) and max-pools swapped for avg-pools of the
    same geometry, so every input pixel in the receptive field gets a nonzero gradient (a max-pool
    would route it to one pixel per window)."""
    stem = copy.deepcopy(stem).eval()
    for name, child in list(stem.named_modules()):
        for cname, sub in list(child.named_children()):
            if isinstance(sub, nn.MaxPool2d):
                setattr(child, cname, nn.AvgPool2d(sub.kernel_size, sub.stride, sub.padding))
    with torch.no_grad():
        for m in stem.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(0.1)
    return stem


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("row,col", [(1, 2), (0, 0), (3, 3)])
def test_receptive_field_matches_the_gradient(stem, row, col):
    img, g = 16, 4
    module = build_stem(small(stem=stem, in_chans=1))
    last = receptive_field(from_module(module), input_size=img)[-1]
    net = _positive_and_smooth(module)
    geometry = lambda specs: [(s.kernel, s.stride, s.padding, s.dilation) for s in specs]  # noqa: E731
    assert geometry(from_module(net)) == geometry(from_module(module))
    x = (torch.rand(1, 1, img, img) + 0.5).requires_grad_()
    net(x)[0, row * g + col].sum().backward()
    seen = x.grad[0, 0] != 0

    def span(i):
        centre = last["start"] + i * last["j"]
        lo, hi = centre - (last["r"] - 1) / 2, centre + (last["r"] - 1) / 2
        return max(int(lo), 0), min(int(hi), img - 1)

    (r0, r1), (c0, c1) = span(row), span(col)
    expected = torch.zeros(img, img, dtype=torch.bool)
    expected[r0:r1 + 1, c0:c1 + 1] = True
    assert torch.equal(seen, expected), (stem, row, col)
    if (row, col) == (1, 2):  # an interior token sees the whole r × r extent
        assert int(seen.sum()) == last["r"] ** 2


@pytest.mark.parametrize("stem", CONV)
@pytest.mark.parametrize("patch", [1, 3, 6, 12])
def test_conv_stem_patch_must_be_a_power_of_two(stem, patch):
    with pytest.raises(ValueError, match=f"patch_size={patch}"):
        ModelConfig(img_size=12 * patch, patch_size=patch, stem=stem)
    with pytest.raises(ValueError, match=f"patch_size={patch}"):
        ConvStem(kind=stem, patch_size=patch, in_chans=3, dim=8)
    ModelConfig(img_size=12 * patch, patch_size=patch)  # the patch stem takes any P


def test_indivisible_image_and_unknown_stem():
    with pytest.raises(ValueError, match="img_size=18 is not divisible by model.patch_size=4"):
        ModelConfig(img_size=18, patch_size=4, stem="conv+stride")
    with pytest.raises(ValueError, match="img_size=18 is not divisible by patch_size=4"):
        build_stem(type("C", (), dict(stem="conv+stride", img_size=18, patch_size=4, in_chans=3, dim=8))())
    with pytest.raises(ValueError, match="'patch', 'conv\\+maxpool', 'conv\\+stride', 'conv\\+avgpool'"):
        ModelConfig(stem="resnet")
    with pytest.raises(ValueError, match="conv\\+maxpool"):
        ConvStem(kind="patch", patch_size=4, in_chans=3, dim=8)


def test_conv_stem_with_dynamic_img_size():
    model = ViT(small(stem="conv+avgpool", dynamic_img_size=True, class_token=False, pool="avg")).eval()
    assert model.forward_features(torch.randn(1, 3, 24, 8)).shape == (1, 6 * 2, 16)


def test_cli_rf_takes_a_stem_name(capsys):
    from vitlab.cli import main

    assert main(["rf", "conv+maxpool", "--img-size", "32", "--patch-size", "4"]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.strip().splitlines() if line[:1].isdigit()]
    assert "maxpool2s2" in out and table[-1].split() == ["4", "conv1", "1", "1", "0", "1", "10", "4", "1.5", "8"]
    assert main(["rf", "conv3p1,maxpool2s2", "--input-size", "8"]) == 0  # spec strings still work
    assert "maxpool2s2" in capsys.readouterr().out


@pytest.mark.parametrize("stem", CONV_STEMS)
def test_conv_stem_runs_channels_last_with_the_numbers_of_nchw(stem):
    """The conv weights are stored channels-last (oneDNN's fast layout) yet compute what the same weights in
    plain NCHW compute, forward and backward; the state dict saves contiguous and loads back into the layout."""
    torch.manual_seed(0)
    m = ConvStem(kind=stem, patch_size=4, in_chans=3, dim=16).eval()
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not convs[0].weight.is_contiguous()  # a 3x3 kernel over 3 channels: the layouts differ (a 1x1 one not)
    x = torch.randn(2, 3, 16, 16, requires_grad=True)

    def nchw(v):  # the same layers, weights copied contiguous, applied by torch's functional ops
        for layer in m.stages:
            if isinstance(layer, nn.Conv2d):
                v = F.conv2d(v, layer.weight.contiguous(), layer.bias, layer.stride, layer.padding)
            else:
                v = layer(v)
        v = F.conv2d(v, m.to_dim.weight.contiguous(), m.to_dim.bias)
        return v.flatten(2).transpose(1, 2)
    out, ref = m(x), nchw(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    g_out, = torch.autograd.grad(out.square().sum(), x)
    g_ref, = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(g_out, g_ref, rtol=1e-4, atol=1e-5)
    sd = m.state_dict()
    fresh = ConvStem(kind=stem, patch_size=4, in_chans=3, dim=16)
    fresh.load_state_dict({k: v.contiguous() for k, v in sd.items()})
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last)
               for c in fresh.modules() if isinstance(c, nn.Conv2d))
    torch.testing.assert_close(fresh.eval()(x), out, rtol=0, atol=0)


def test_a_deeper_stem_is_the_hand_written_stack_of_its_convolutions():
    """stem_depth=2, conv+stride, C=3, D=16, P=4: each stride-2 step is followed by one more 3x3 conv at its output
    resolution and width. The same layers written out with torch.nn and given the stem's weights give its tokens;
    parameters and FLOPs add up by hand."""
    cfg = small(stem="conv+stride", stem_depth=2)
    stem = build_stem(cfg).eval()

    def block(c_in, c_out, stride):
        return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    by_hand = nn.Sequential(*block(3, 8, 2), *block(8, 8, 1), *block(8, 16, 2), *block(16, 16, 1),
                            nn.Conv2d(16, 16, 1)).eval()
    torch.manual_seed(0)
    for m in stem.modules():  # non-trivial running statistics, so that eval-mode BN is checked too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(), m.running_var.uniform_(0.5, 2.0), m.weight.data.normal_()
    by_hand.load_state_dict({k: v.contiguous() for k, v in
                             zip(by_hand.state_dict(), [*stem.stages.state_dict().values(),
                                                        *stem.to_dim.state_dict().values()])})
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(stem(x), by_hand(x).flatten(2).transpose(1, 2))
    params = (3 * 8 * 9 + 2 * 8) + (8 * 8 * 9 + 2 * 8) + (8 * 16 * 9 + 2 * 16) + (16 * 16 * 9 + 2 * 16) + 16 * 16 + 16
    assert stem_summary(cfg)["params"] == params
    assert stem_summary(cfg)["flops"] == 2 * (8 * 8 * 8 * 3 * 9 + 8 * 8 * 8 * 8 * 9 + 16 * 4 * 4 * 8 * 9
                                              + 16 * 4 * 4 * 16 * 9 + 16 * 4 * 4 * 16)
    # receptive field by hand: 3 (s2, jump 2), +2*2 = 7 (s1), +2*2 = 11 (s2, jump 4), +2*4 = 19 (s1); depth 1: 3, 7
    assert stem_grid(stem, 16) == 4 and receptive_field(from_module(stem))[-1]["r"] == 19
    assert receptive_field(stem_specs("conv+stride", 4))[-1]["r"] == 7
    assert ViT(cfg)(x).shape == (2, 5)


@pytest.mark.parametrize("bad", [dict(stem_depth=0), dict(stem_depth=2), dict(stem_depth=2.0, stem="conv+stride")])
def test_stem_depth_is_checked(bad):
    with pytest.raises(config.ConfigError, match="model.stem_depth must be a positive integer"):
        small(**bad)
