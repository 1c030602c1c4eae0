"""resample_pos_embed (vitlab/layers/pos_embed.py) against hand-worked bicubic interpolation.

PyTorch's bicubic is Keys' cubic convolution with a = -0.75 (the OpenCV choice), border
samples clamped, and with ``align_corners=False`` output index o samples the input at
(o + 0.5) * in / out - 0.5. ``_keys_resample`` below writes that out in plain Python.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vitlab.layers import resample_pos_embed

A = -0.75  # PyTorch's (and OpenCV's) cubic convolution parameter


def _keys_kernel(s: float) -> float:
    s = abs(s)
    if s <= 1:
        return (A + 2) * s**3 - (A + 3) * s**2 + 1
    if s < 2:
        return A * s**3 - 5 * A * s**2 + 8 * A * s - 4 * A
    return 0.0


def _source(o: int, n_in: int, n_out: int) -> float:
    return (o + 0.5) * n_in / n_out - 0.5


def _keys_resample_1d(values: list[float], n_out: int) -> list[float]:
    n_in = len(values)
    out = []
    for o in range(n_out):
        src = _source(o, n_in, n_out)
        i = math.floor(src)
        t = src - i
        acc = 0.0
        for k, offset in zip(range(i - 1, i + 3), (1 + t, t, 1 - t, 2 - t)):
            acc += _keys_kernel(offset) * values[min(max(k, 0), n_in - 1)]  # clamp at the borders
        out.append(acc)
    return out


def _keys_resample(grid: torch.Tensor, new_hw: tuple[int, int]) -> torch.Tensor:
    """(h, w) float64 grid -> (H, W), separably: columns along each row, then rows along each column."""
    rows = [_keys_resample_1d(r.tolist(), new_hw[1]) for r in grid]  # h x W
    cols = [_keys_resample_1d([rows[y][x] for y in range(len(rows))], new_hw[0]) for x in range(new_hw[1])]
    return torch.tensor(cols, dtype=torch.float64).T  # (H, W)


def _pos_embed(grid_hw, dim=4, prefix=1, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, prefix + grid_hw[0] * grid_hw[1], dim, generator=g, dtype=dtype)


def test_same_grid_returns_the_input_unchanged():
    pe = _pos_embed((5, 5))
    assert torch.equal(resample_pos_embed(pe, (5, 5)), pe)
    pe = _pos_embed((3, 4), prefix=0)
    assert torch.equal(resample_pos_embed(pe, (3, 4), num_prefix_tokens=0, old_grid=(3, 4)), pe)


@pytest.mark.parametrize("new_grid", [(7, 7), (2, 2), (9, 3), (4, 4)])
def test_constant_embedding_stays_constant(new_grid):
    """The four cubic weights sum to one for every fractional offset."""
    pe = torch.full((1, 1 + 16, 3), 0.0, dtype=torch.float64)
    pe[..., 1:, :] = torch.tensor([1.5, -2.0, 7.25], dtype=torch.float64)  # one constant per channel
    out = resample_pos_embed(pe, new_grid)
    assert out.shape == (1, 1 + new_grid[0] * new_grid[1], 3)
    expected = torch.tensor([1.5, -2.0, 7.25], dtype=torch.float64).expand(new_grid[0] * new_grid[1], 3)
    torch.testing.assert_close(out[0, 1:], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("prefix", [1, 2])
def test_prefix_tokens_are_untouched(prefix):
    pe = _pos_embed((4, 4), dim=6, prefix=prefix)
    out = resample_pos_embed(pe, (6, 3), num_prefix_tokens=prefix)
    assert out.shape == (1, prefix + 18, 6)
    assert torch.equal(out[:, :prefix], pe[:, :prefix])


def _linear_grid(h, w, a=0.3, b=1.7, c=-0.9):
    r = torch.arange(h, dtype=torch.float64).view(h, 1)
    s = torch.arange(w, dtype=torch.float64).view(1, w)
    return a + b * r + c * s  # f(row, col), linear in the grid coordinates


def _as_pos_embed(grid: torch.Tensor) -> torch.Tensor:
    """(h, w) -> (1, 1 + h*w, 1) with a class-token row of 42."""
    return torch.cat([torch.full((1, 1), 42.0, dtype=grid.dtype), grid.reshape(1, -1)], dim=1).unsqueeze(-1)


def test_linear_function_reproduced_where_the_kernel_is_symmetric():
    """Halving the grid samples at midpoints (offset t = 1/2), where the a=-0.75 weights
    (-3/32, 19/32, 19/32, -3/32) are symmetric: a linear function comes back exactly at
    interior points (those whose four taps are inside the grid, away from the clamping)."""
    h, w, new = 8, 6, (4, 3)
    out = resample_pos_embed(_as_pos_embed(_linear_grid(h, w)), new, old_grid=(h, w))[0, 1:, 0].reshape(new)
    checked = 0
    for o_r in range(new[0]):
        for o_c in range(new[1]):
            src_r, src_c = _source(o_r, h, new[0]), _source(o_c, w, new[1])
            if math.floor(src_r) - 1 < 0 or math.floor(src_r) + 2 > h - 1:
                continue
            if math.floor(src_c) - 1 < 0 or math.floor(src_c) + 2 > w - 1:
                continue
            expected = 0.3 + 1.7 * src_r - 0.9 * src_c
            assert out[o_r, o_c].item() == pytest.approx(expected, abs=1e-12)
            checked += 1
    assert checked == 2  # (1, 1) and (2, 1)


def test_linear_function_upsampled_2x_is_off_by_the_worked_bias():
    """With a = -0.75 cubic convolution reproduces constants but not lines (only a = -1/2
    does, Keys 1981). Doubling the grid samples at t = 1/4 and 3/4, where the weights are
    (-27/256, 225/256, 67/256, -9/256) with first moment 19/64 = t + 3/64: an interior
    sample of a line with slope m lands m·3/64 past the line (mirrored at t = 3/4)."""
    n, slope = 8, 1.7
    grid = _linear_grid(1, n, a=0.3, b=0.0, c=slope)  # one row: f(col) = 0.3 + slope * col
    out = resample_pos_embed(_as_pos_embed(grid), (1, 2 * n), old_grid=(1, n))[0, 1:, 0]
    weights = [_keys_kernel(s) for s in (1.25, 0.25, 0.75, 1.75)]
    assert weights == [-27 / 256, 225 / 256, 67 / 256, -9 / 256]
    for o in range(2 * n):
        src = _source(o, n, 2 * n)
        if math.floor(src) - 1 < 0 or math.floor(src) + 2 > n - 1:
            continue  # clamped border taps
        t = src - math.floor(src)
        bias = 3 / 64 if t == 0.25 else -3 / 64
        assert out[o].item() == pytest.approx(0.3 + slope * (src + bias), abs=1e-12)


@pytest.mark.parametrize("old,new", [((4, 4), (7, 7)), ((3, 5), (7, 4)), ((6, 6), (4, 5)), ((2, 3), (5, 2))])
def test_matches_hand_written_cubic_convolution(old, new):
    pe = _pos_embed(old, dim=2, seed=3)
    out = resample_pos_embed(pe, new, old_grid=old)
    for ch in range(2):
        expected = _keys_resample(pe[0, 1:, ch].reshape(old), new)
        torch.testing.assert_close(out[0, 1:, ch].reshape(new), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_f_interpolate_on_the_reshaped_grid(dtype):
    old, new, dim = (3, 5), (7, 4), 6
    pe = _pos_embed(old, dim=dim, seed=5, dtype=dtype)
    grid = pe[:, 1:].reshape(1, old[0], old[1], dim).permute(0, 3, 1, 2)  # (1, D, h, w)
    grid = F.interpolate(grid, size=new, mode="bicubic", align_corners=False)
    expected = torch.cat([pe[:, :1], grid.permute(0, 2, 3, 1).reshape(1, new[0] * new[1], dim)], dim=1)
    out = resample_pos_embed(pe, new, old_grid=old)
    assert out.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(out, expected, rtol=0, atol=tol)


def test_bfloat16_is_resampled_in_float32_and_returned_in_bfloat16():
    pe = _pos_embed((4, 4), dim=3, dtype=torch.float32)
    out = resample_pos_embed(pe.bfloat16(), (6, 6))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), resample_pos_embed(pe, (6, 6)), rtol=2e-2, atol=2e-2)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\(17, 4\)"):
        resample_pos_embed(torch.zeros(17, 4), (3, 3))
    with pytest.raises(ValueError, match="15"):
        resample_pos_embed(torch.zeros(1, 1 + 15, 4), (3, 3))  # 15 positions: not a square grid
    with pytest.raises(ValueError, match=r"\(3, 4\).*16"):
        resample_pos_embed(torch.zeros(1, 1 + 16, 4), (5, 5), old_grid=(3, 4))
