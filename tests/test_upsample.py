"""Upsample2x and the size formulas (vitlab/layers/upsample.py) against independent references.

* sizes: the real ``nn.Conv2d`` / pools / ``nn.ConvTranspose2d`` output shapes, and a few worked by hand;
* nearest: ``repeat_interleave`` on both axes;
* bilinear: 2×2 -> 4×4 worked by hand, and an interpolation matrix built from the
  ``align_corners=False`` coordinate map src = (dst + 0.5) / 2 - 0.5;
* transposed: "insert s-1 zeros between inputs, pad d(k-1)-p, convolve with the flipped
  kernel" written with ``F.pad`` and ``F.conv2d`` (Dumoulin & Visin 2016, §4);
* unpool: every position of a hand-made 4×4 example.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitlab.layers.upsample import METHODS, Upsample2x


# ---------------------------------------------------------------- the four methods

@pytest.mark.parametrize("method", METHODS)
def test_every_method_doubles_height_and_width(method):
    up = Upsample2x(method, 3)
    x = torch.randn(2, 3, 6, 8) if method != "unpool" else None
    indices = None
    if method == "unpool":
        x, indices = nn.MaxPool2d(2, return_indices=True)(torch.randn(2, 3, 12, 16))
    assert up(x, indices).shape == (2, 3, 12, 16)


def test_nearest_is_repeat_interleave():
    x = torch.randn(2, 3, 4, 5)
    expected = x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # (B, C, 2H, 2W)
    assert torch.equal(Upsample2x("nearest", 3)(x), expected)


def test_bilinear_by_hand():
    # align_corners=False: output pixel i samples src = (i + 0.5)/2 - 0.5, clamped to [0, 1]:
    # i = 0, 1, 2, 3 -> -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1). So along each
    # axis the weights on input pixel 1 are [0, 0.25, 0.75, 1].
    # [[0, 1], [2, 3]] is the plane v = x + 2y, which bilinear reproduces exactly:
    # row y-weight w gives [0, .25, .75, 1] + 2w.
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2)
    expected = torch.tensor([[0.00, 0.25, 0.75, 1.00],
                             [0.50, 0.75, 1.25, 1.50],
                             [1.50, 1.75, 2.25, 2.50],
                             [2.00, 2.25, 2.75, 3.00]])
    torch.testing.assert_close(Upsample2x("bilinear", 1)(x)[0, 0], expected, rtol=0, atol=1e-6)
    # a lone 1 in the corner: the outer product of the pixel-0 weights [1, .75, .25, 0]
    x = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).reshape(1, 1, 2, 2)
    expected = torch.tensor([[1.0000, 0.7500, 0.2500, 0.0],
                             [0.7500, 0.5625, 0.1875, 0.0],
                             [0.2500, 0.1875, 0.0625, 0.0],
                             [0.0000, 0.0000, 0.0000, 0.0]])
    torch.testing.assert_close(Upsample2x("bilinear", 1)(x)[0, 0], expected, rtol=0, atol=1e-6)


def _bilinear_matrix(n: int) -> torch.Tensor:
    """(2n, n): row i interpolates input pixels at src = (i + 0.5)/2 - 0.5, clamped at the edges."""
    m = torch.zeros(2 * n, n, dtype=torch.float64)
    for i in range(2 * n):
        src = max((i + 0.5) / 2 - 0.5, 0.0)
        lo = int(src)
        hi = min(lo + 1, n - 1)
        frac = src - lo
        m[i, lo] += 1 - frac
        m[i, hi] += frac
    return m


def test_bilinear_matches_interpolation_matrices():
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    expected = _bilinear_matrix(5) @ x @ _bilinear_matrix(7).T  # (B, C, 10, 14): rows, then columns
    out = Upsample2x("bilinear", 3)(x)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    # and PyTorch's size-based path, which derives the scale from the shapes instead
    reference = F.interpolate(x, size=(10, 14), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-12)


def _transposed_by_hand(x, weight, bias, s, p, output_padding=0, dilation=1):
    """ConvTranspose2d as zero insertion + padding + an ordinary convolution with the flipped kernel."""
    b, c, h, w = x.shape
    k = weight.shape[-1]
    spread = x.new_zeros(b, c, (h - 1) * s + 1, (w - 1) * s + 1)
    spread[:, :, ::s, ::s] = x  # (B, Cin, (H-1)s+1, (W-1)s+1): s-1 zeros between inputs
    edge = dilation * (k - 1) - p  # negative means crop
    spread = F.pad(spread, (edge, edge + output_padding, edge, edge + output_padding))
    kernel = weight.transpose(0, 1).flip(-2, -1)  # (Cin, Cout, k, k) -> (Cout, Cin, k, k), flipped
    return F.conv2d(spread, kernel, bias, dilation=dilation)


@pytest.mark.parametrize("k,s,p,op,d", [
    (2, 2, 0, 0, 1), (3, 2, 1, 1, 1), (4, 2, 1, 0, 1), (3, 3, 0, 2, 1), (3, 2, 3, 0, 1), (3, 2, 1, 0, 2),
])
def test_conv_transpose_is_zero_insertion_then_flipped_conv(k, s, p, op, d):
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(3, 2, k, stride=s, padding=p, output_padding=op, dilation=d).double()
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    expected = _transposed_by_hand(x, layer.weight, layer.bias, s, p, op, d)
    torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)


def test_transposed_method():
    torch.manual_seed(0)
    up = Upsample2x("transposed", 4).double()
    assert sum(p.numel() for p in up.parameters()) == 4 * 4 * 2 * 2 + 4
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    expected = _transposed_by_hand(x, up.to_up.weight, up.to_up.bias, s=2, p=0)
    torch.testing.assert_close(up(x), expected, rtol=1e-12, atol=1e-12)
    # kernel 2 = stride 2: no overlap, output block (i, j) depends on input pixel (i, j) alone
    block = torch.einsum("bchw,cokl->bohkwl", x, up.to_up.weight).reshape(2, 4, 6, 10)
    torch.testing.assert_close(up(x), block + up.to_up.bias.reshape(1, 4, 1, 1), rtol=1e-12, atol=1e-12)


def test_unpool_by_hand():
    # the 2×2 blocks have their maximum at every corner once:
    #   block (0,0) [[1, 5], [3, 2]] -> 5 at (0, 1), top-right
    #   block (0,1) [[0, 2], [7, 1]] -> 7 at (1, 2), bottom-left
    #   block (1,0) [[6, 0], [4, 2]] -> 6 at (2, 0), top-left
    #   block (1,1) [[1, 1.5], [3, 9]] -> 9 at (3, 3), bottom-right
    x = torch.tensor([[1.0, 5.0, 0.0, 2.0],
                      [3.0, 2.0, 7.0, 1.0],
                      [6.0, 0.0, 1.0, 1.5],
                      [4.0, 2.0, 3.0, 9.0]]).reshape(1, 1, 4, 4)
    pooled, indices = nn.MaxPool2d(2, return_indices=True)(x)
    assert pooled.flatten().tolist() == [5.0, 7.0, 6.0, 9.0]
    assert indices.flatten().tolist() == [1, 6, 8, 15]  # row * 4 + col of each maximum
    up = Upsample2x("unpool", 1)
    assert up(pooled, indices)[0, 0].tolist() == [[0.0, 5.0, 0.0, 0.0],
                                                  [0.0, 0.0, 7.0, 0.0],
                                                  [6.0, 0.0, 0.0, 0.0],
                                                  [0.0, 0.0, 0.0, 9.0]]
    # a decoder unpools its own features, not the pooled values: they land at the same places
    y = torch.tensor([[10.0, 20.0], [30.0, 40.0]]).reshape(1, 1, 2, 2)
    assert up(y, indices)[0, 0].tolist() == [[0.0, 10.0, 0.0, 0.0],
                                             [0.0, 0.0, 20.0, 0.0],
                                             [30.0, 0.0, 0.0, 0.0],
                                             [0.0, 0.0, 0.0, 40.0]]


def test_unpool_keeps_block_maxima_only():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 8, dtype=torch.float64)  # continuous values: no ties
    pooled, indices = nn.MaxPool2d(2, return_indices=True)(x)
    block_max = x.reshape(2, 3, 3, 2, 4, 2).amax(dim=(3, 5))  # (B, C, H/2, W/2)
    block_max = block_max.repeat_interleave(2, -2).repeat_interleave(2, -1)  # (B, C, H, W)
    expected = torch.where(x == block_max, x, torch.zeros_like(x))
    out = Upsample2x("unpool", 3)(pooled, indices)
    assert torch.equal(out, expected)
    assert (out != 0).sum() == 2 * 3 * 3 * 4  # one survivor a block


def test_indices_ignored_by_other_methods():
    x = torch.randn(1, 2, 3, 3)
    _, indices = nn.MaxPool2d(2, return_indices=True)(torch.randn(1, 2, 6, 6))
    up = Upsample2x("nearest", 2)
    assert torch.equal(up(x, indices), up(x))


# ---------------------------------------------------------------- errors

def test_errors():
    with pytest.raises(ValueError, match=r"method='pixelshuffle' is not one of \('nearest', 'bilinear', "
                                         r"'transposed', 'unpool'\)"):
        Upsample2x("pixelshuffle", 4)
    with pytest.raises(ValueError, match="channels=0; expected an int >= 1"):
        Upsample2x("transposed", 0)
    up = Upsample2x("unpool", 2)
    with pytest.raises(ValueError, match=r"needs the indices from the matching "
                                         r"nn.MaxPool2d\(2, return_indices=True\)"):
        up(torch.randn(1, 2, 3, 3))
    _, indices = nn.MaxPool2d(2, return_indices=True)(torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match=r"indices have shape \(1, 2, 4, 4\); "
                                         r"expected the shape of x, \(1, 2, 3, 3\)"):
        up(torch.randn(1, 2, 3, 3), indices)
