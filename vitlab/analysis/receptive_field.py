"""Receptive field, jump and centre of the units of a stack of convolutions and poolings.

For a single path of layers (a convolutional stem, a patch embedding, a CNN backbone
without branches) three numbers per layer tell which input pixels an output unit can see:

* ``r`` — receptive-field size: the extent, in input pixels, of the region that can
  influence one output unit;
* ``j`` — jump: the distance, in input pixels, between the centres of two adjacent
  output units (the product of the strides so far);
* ``start`` — the centre of the first output unit in input coordinates.

Output unit ``i`` (along one axis) then sees input pixels
``start + i*j - (r-1)/2 ... start + i*j + (r-1)/2``, clipped to the image where the
layers pad. The recurrences, with the effective kernel ``k_eff = d(k-1) + 1``, are::

    j_out     = j_in * s
    r_out     = r_in + (k_eff - 1) * j_in
    start_out = start_in + ((k_eff - 1)/2 - p) * j_in
    n_out     = floor((n_in + 2p - k_eff) / s) + 1

from Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks",
Distill 2019 (https://distill.pub/2019/computing-receptive-fields/), and Dang Ha The Hien,
"A guide to receptive field arithmetic for Convolutional Neural Networks" (2017).
Coordinates here are pixel indices: the centre of input pixel 0 is 0 (the guide puts it
at 0.5), so ``start`` is a whole or a half number.

Two caveats, both shown in ``tests/test_receptive_field.py``:

* ``r`` is the extent, not a count: a dilated kernel (or a stride larger than the kernel)
  leaves holes, e.g. a lone 3×3 convolution with dilation 2 sees pixels 0, 2, 4 of a
  5-pixel extent.
* Clipped to the image, the extent is exact for units away from the border but only an
  upper bound at it: where a later layer pads an intermediate map, the pixels that only
  the missing (padded) unit would have seen drop out — with dilated taps, or when a
  strided layer already dropped the last rows of its input.

The tests check every number against the gradient and the impulse response of the real
PyTorch layers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace

from torch import nn

from ..errors import ConfigError

KINDS = ("conv", "maxpool", "avgpool")

GRAMMAR = ("comma-separated tokens KIND K [sS] [pP] [dD], in that order: KIND is one of "
           "conv | maxpool | avgpool, K the kernel, S the stride (default 1), P the padding "
           "(default 0), D the dilation (default 1); e.g. 'conv7s2p3,maxpool3s2p1'")

_TOKEN = re.compile(r"(conv|maxpool|avgpool)(\d+)(?:s(\d+))?(?:p(\d+))?(?:d(\d+))?")


@dataclass(frozen=True)
class LayerSpec:
    """Geometry of one square convolution or pooling layer; channels do not matter here.

    Args:
        kind: 'conv', 'maxpool' or 'avgpool'.
        kernel: kernel size k >= 1.
        stride: stride s >= 1.
        padding: zero (or -inf) padding p >= 0 on each side; for the pools at most k // 2,
            as PyTorch requires (so every window holds at least one real pixel).
        dilation: spacing d >= 1 between kernel taps; must be 1 for 'avgpool', which
            ``nn.AvgPool2d`` does not dilate.
    """

    kind: str
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"layer kind={self.kind!r} is not one of {KINDS}")
        for field, low in (("kernel", 1), ("stride", 1), ("padding", 0), ("dilation", 1)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{field}={value!r} for a {self.kind} layer; expected an int >= {low}")
        if self.kind == "avgpool" and self.dilation != 1:
            raise ConfigError(f"dilation={self.dilation} for an avgpool layer; expected 1 "
                              "(nn.AvgPool2d has no dilation)")
        if self.kind != "conv" and self.padding > self.kernel // 2:
            raise ConfigError(f"padding={self.padding} for a {self.kind} layer with kernel={self.kernel}; "
                              f"expected at most kernel // 2 = {self.kernel // 2}")

    @property
    def effective_kernel(self) -> int:
        """k_eff = d(k-1) + 1: the span of the dilated kernel in input pixels."""
        return self.dilation * (self.kernel - 1) + 1

    @property
    def token(self) -> str:
        """The canonical ``parse_spec`` token, defaults left out (``conv3s2p1``)."""
        out = f"{self.kind}{self.kernel}"
        for letter, value, default in (("s", self.stride, 1), ("p", self.padding, 0), ("d", self.dilation, 1)):
            if value != default:
                out += f"{letter}{value}"
        return out


def parse_spec(spec: str) -> list[LayerSpec]:
    """Parse a compact layer list such as ``"conv3s1p1,maxpool2s2,conv3s2p1d2"``.

    Grammar: comma-separated tokens ``KIND K [sS] [pP] [dD]`` with the optional parts in
    that order; KIND is ``conv``, ``maxpool`` or ``avgpool``; K is the kernel, S the stride
    (default 1), P the padding (default 0), D the dilation (default 1). Spaces around
    tokens are ignored.

    Raises:
        ValueError: naming the first bad token and restating the grammar.
    """
    specs = []
    for raw in spec.split(","):
        token = raw.strip()
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise ConfigError(f"bad layer token {token!r} in {spec!r}; expected {GRAMMAR}")
        kind, k, s, p, d = match.groups()
        try:
            specs.append(LayerSpec(kind, int(k), int(s or 1), int(p or 0), int(d or 1)))
        except ValueError as err:  # LayerSpec's ConfigError is a ValueError
            raise ConfigError(f"bad layer token {token!r}: {err}") from None
    return specs


def _square(module: nn.Module, name: str, attr: str) -> int:
    value = getattr(module, attr)
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"{name} ({type(module).__name__}) has {attr}={tuple(value)}; "
                             "expected a square one (the same value on both axes)")
        value = value[0]
    return int(value)


def _conv_padding(module: nn.Conv2d, name: str) -> int:
    if module.padding == "valid":
        return 0
    if module.padding == "same":  # PyTorch pads k_eff - 1 in total, the odd pixel on the right
        total = _square(module, name, "dilation") * (_square(module, name, "kernel_size") - 1)
        if total % 2:
            raise ValueError(f"{name} (Conv2d) has padding='same' with an even effective kernel "
                             f"{total + 1}, which pads unevenly; expected an odd effective kernel")
        return total // 2
    return _square(module, name, "padding")


# Layers that move or resample pixels in ways the recurrences above do not model.
_UNSUPPORTED = (nn.Conv1d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
                nn.MaxPool1d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool3d, nn.LPPool2d,
                nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.FractionalMaxPool2d, nn.MaxUnpool2d,
                nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle, nn.Unfold, nn.Fold)


def from_module(module: nn.Module) -> list[LayerSpec]:
    """The ``LayerSpec`` of every ``Conv2d`` / ``MaxPool2d`` / ``AvgPool2d`` in ``module``.

    Layers are taken in registration order (``module.modules()``), which is the order they
    run in an ``nn.Sequential``; pointwise layers (activations, norms, dropout) leave the
    geometry alone and are skipped. A module reused twice is listed once, so write such a
    network out as a spec string instead.

    Raises:
        ValueError: for a non-square kernel, stride, padding or dilation, for ``ceil_mode``
            pooling, and for layers that change the geometry in other ways (transposed or
            1-D/3-D convolutions, adaptive pools, upsampling, pixel shuffle, ...).
    """
    specs = []
    for name, layer in module.named_modules():
        name = name or type(layer).__name__
        if isinstance(layer, nn.Conv2d):
            specs.append(LayerSpec("conv", _square(layer, name, "kernel_size"), _square(layer, name, "stride"),
                                   _conv_padding(layer, name), _square(layer, name, "dilation")))
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            if layer.ceil_mode:
                raise ValueError(f"{name} ({type(layer).__name__}) has ceil_mode=True; expected "
                                 "ceil_mode=False (the output-size formula here floors)")
            is_max = isinstance(layer, nn.MaxPool2d)
            specs.append(LayerSpec("maxpool" if is_max else "avgpool", _square(layer, name, "kernel_size"),
                                   _square(layer, name, "stride"), _square(layer, name, "padding"),
                                   _square(layer, name, "dilation") if is_max else 1))
        elif isinstance(layer, _UNSUPPORTED):
            raise ValueError(f"{name} ({type(layer).__name__}) changes the spatial geometry in a way "
                             "this calculator does not model; expected only Conv2d, MaxPool2d, "
                             "AvgPool2d and pointwise layers")
    return specs


def receptive_field(specs: list[LayerSpec], input_size: int | None = None) -> list[dict]:
    """Receptive field, jump and first-unit centre after each layer (module docstring).

    Args:
        specs: the layers, first to last (``parse_spec`` or ``from_module``).
        input_size: side of the square input in pixels; adds each layer's output size.

    Returns:
        One dict per layer with ``name`` (the canonical token), ``kernel``, ``stride``,
        ``padding``, ``dilation``, ``r``, ``j``, ``start`` (float, a multiple of 0.5) and,
        when ``input_size`` is given, ``size`` (output side in units).

    Raises:
        ValueError: if ``input_size`` < 1 or a layer's window no longer fits its input.
    """
    if input_size is not None and (isinstance(input_size, bool) or not isinstance(input_size, int)
                                   or input_size < 1):
        raise ConfigError(f"input_size={input_size!r}; expected an int >= 1 or None")
    r, j, start, n = 1, 1, 0.0, input_size  # the input: one pixel per unit, pixel 0 centred at 0
    rows = []
    for index, spec in enumerate(specs):
        k_eff = spec.effective_kernel
        r = r + (k_eff - 1) * j
        start = start + ((k_eff - 1) / 2 - spec.padding) * j
        j = j * spec.stride
        row = {"name": spec.token, "kernel": spec.kernel, "stride": spec.stride, "padding": spec.padding,
               "dilation": spec.dilation, "r": r, "j": j, "start": start}
        if n is not None:
            if n + 2 * spec.padding < k_eff:
                raise ConfigError(f"layer {index} ({spec.token}) gets a {n}-pixel input, padded to "
                                  f"{n + 2 * spec.padding}; expected at least its effective kernel {k_eff}")
            n = (n + 2 * spec.padding - k_eff) // spec.stride + 1
            row["size"] = n
        rows.append(row)
    return rows


_COLUMNS = (("name", "layer"), ("kernel", "k"), ("stride", "s"), ("padding", "p"), ("dilation", "d"),
            ("r", "r"), ("j", "j"), ("start", "start"), ("size", "size"))


LEGEND = ("k kernel, s stride, p padding, d dilation; r: receptive field, the input pixels one output unit sees "
          "(per side); j: jump, the input pixels between neighbouring output units; start: the input position of "
          "the first output unit's centre (pixel centres at 0.5, 1.5, ...); size: the output side")


def _cell(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_table(rows: list[dict]) -> str:
    """An aligned text table of ``receptive_field`` rows: names left, numbers right.

    The ``size`` column appears only when the rows carry it.
    """
    columns = [(key, title) for key, title in _COLUMNS if key != "size" or (rows and "size" in rows[0])]
    header = ["#"] + [title for _, title in columns]
    body = [[str(i)] + [_cell(row[key]) for key, _ in columns] for i, row in enumerate(rows)]
    widths = [max(len(line[c]) for line in [header] + body) for c in range(len(header))]

    def line(cells):
        return "  ".join(cell.ljust(w) if c == 1 else cell.rjust(w)
                         for c, (cell, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(cells) for cells in body])


# -- the tokeniser stems of vitlab.layers.stems --------------------------------------------------------------------
def stem_specs(stem: str, patch_size: int) -> list[LayerSpec]:
    """The layer geometry of the stem named ``stem`` (vitlab.layers.stems) with total down-sampling ``patch_size``.

    Channels do not change the geometry, so the stem is built on the meta device with placeholder widths.
    """
    import torch

    from ..layers.stems import build_stem

    with torch.device("meta"):
        module = build_stem(SimpleNamespace(stem=stem, patch_size=patch_size, img_size=None, in_chans=1, dim=8))
    return from_module(module)


def stem_grid(stem: nn.Module, img_size: int) -> int:
    """Side of the token grid a stem (PatchEmbed or ConvStem) makes from an img_size × img_size image."""
    return receptive_field(from_module(stem), input_size=img_size)[-1]["size"]
