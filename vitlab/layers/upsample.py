"""2× up-sampling for a dense-prediction decoder, on PyTorch's own ops, plus output-size formulas.

Four ways to double a feature map, from fixed to learned to remembered:

* ``nearest`` — copy every value into a 2×2 block;
* ``bilinear`` — interpolate, with ``align_corners=False`` (pixel centres at half-integers,
  the convention of most image libraries);
* ``transposed`` — a learned ``ConvTranspose2d`` with kernel 2, stride 2. A transposed
  convolution is the same as inserting ``s - 1`` zeros between the inputs, padding by
  ``d(k-1) - p`` and convolving with the spatially flipped kernel (Dumoulin & Visin 2016,
  "A guide to convolution arithmetic for deep learning", §4); with k = s = 2 the kernels
  do not overlap, so each input pixel paints its own 2×2 block and the uneven overlap
  that makes checkerboards (Odena et al. 2016, "Deconvolution and Checkerboard
  Artifacts", Distill) cannot occur;
* ``unpool`` — ``MaxUnpool2d(2)`` puts each value back where the matching
  ``MaxPool2d(2, return_indices=True)`` found its maximum and zeros elsewhere (SegNet,
  Badrinarayanan et al. 2017), so the encoder's pooling indices must be passed in.

``tests/test_upsample.py`` checks each against an independent reference, including the
zero-insertion claim above.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

METHODS = ("nearest", "bilinear", "transposed", "unpool")


class Upsample2x(nn.Module):
    """Double the height and width of a feature map.

    Args:
        method: 'nearest', 'bilinear', 'transposed' or 'unpool'.
        channels: C, the channels in and out (only 'transposed' has weights, C×C×2×2 + C).

    Shape:
        x (B, C, H, W) -> (B, C, 2H, 2W). For 'unpool', ``indices`` (B, C, H, W) from
        ``nn.MaxPool2d(2, return_indices=True)``; the other methods ignore it, so a
        decoder can pass it whatever the method.
    """

    def __init__(self, method: str, channels: int):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"upsample method={method!r} is not one of {METHODS}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels={channels!r}; expected an int >= 1")
        self.method = method
        self.channels = channels
        if method == "transposed":
            self.to_up = nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)
        elif method == "unpool":
            self.to_up = nn.MaxUnpool2d(2)

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        if self.method == "nearest":
            return F.interpolate(x, scale_factor=2, mode="nearest")  # (B, C, 2H, 2W)
        if self.method == "bilinear":
            return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # (B, C, 2H, 2W)
        if self.method == "transposed":
            return self.to_up(x)  # (B, C, 2H, 2W)
        if indices is None:
            raise ValueError("method='unpool' needs the indices from the matching "
                             "nn.MaxPool2d(2, return_indices=True); got indices=None")
        if indices.shape != x.shape:
            raise ValueError(f"unpool indices have shape {tuple(indices.shape)}; expected the shape of x, "
                             f"{tuple(x.shape)}")
        return self.to_up(x, indices)  # (B, C, 2H, 2W): x at the arg-max positions, 0 elsewhere

    def extra_repr(self) -> str:
        return f"method={self.method!r}, channels={self.channels}"


def _check_ints(**values: int) -> None:
    lows = {"n": 1, "k": 1, "s": 1, "p": 0, "dilation": 1, "output_padding": 0}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < lows[name]:
            raise ValueError(f"{name}={value!r}; expected an int >= {lows[name]}")


def _positive(n_out: int, formula: str) -> int:
    if n_out < 1:
        raise ValueError(f"{formula} gives output size {n_out}; expected at least 1 (input too small)")
    return n_out


def conv_out(n: int, k: int, s: int = 1, p: int = 0, dilation: int = 1) -> int:
    """Output side of ``nn.Conv2d``: floor((n + 2p - d(k-1) - 1) / s) + 1 (PyTorch docs)."""
    _check_ints(n=n, k=k, s=s, p=p, dilation=dilation)
    return _positive((n + 2 * p - dilation * (k - 1) - 1) // s + 1,
                     f"conv_out(n={n}, k={k}, s={s}, p={p}, dilation={dilation})")


def pool_out(n: int, k: int, s: int | None = None, p: int = 0, dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output side of ``nn.MaxPool2d`` / ``nn.AvgPool2d`` (stride defaults to the kernel).

    floor((n + 2p - d(k-1) - 1) / s) + 1, or ceil instead of floor with ``ceil_mode``; then, as
    PyTorch does, a last window that would start inside the right padding is dropped.
    """
    s = k if s is None else s
    _check_ints(n=n, k=k, s=s, p=p, dilation=dilation)
    if p > k // 2:
        raise ValueError(f"p={p} for a pool with k={k}; expected at most k // 2 = {k // 2}")
    span = n + 2 * p - dilation * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return _positive(out, f"pool_out(n={n}, k={k}, s={s}, p={p}, dilation={dilation}, ceil_mode={ceil_mode})")


def conv_transpose_out(n: int, k: int, s: int, p: int, output_padding: int = 0, dilation: int = 1) -> int:
    """Output side of ``nn.ConvTranspose2d``: (n-1)s - 2p + d(k-1) + output_padding + 1 (PyTorch docs).

    ``output_padding`` (< max(s, d), as PyTorch requires) picks among the sizes that the
    matching strided ``Conv2d`` maps to the same n.
    """
    _check_ints(n=n, k=k, s=s, p=p, output_padding=output_padding, dilation=dilation)
    if output_padding >= max(s, dilation):
        raise ValueError(f"output_padding={output_padding}; expected less than max(s, dilation) = "
                         f"{max(s, dilation)}")
    return _positive((n - 1) * s - 2 * p + dilation * (k - 1) + output_padding + 1,
                     f"conv_transpose_out(n={n}, k={k}, s={s}, p={p}, output_padding={output_padding}, "
                     f"dilation={dilation})")
