"""The Vision Transformer classifier (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words").

Read it beside the paper: eq. 1 is ``forward_features`` up to the blocks, eqs. 2–3 are
``Block``, eq. 4 is the final norm and ``forward_head``.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..config import ModelConfig
from ..layers import Block, build_stem, init_weights, make_norm, resample_pos_embed
from ..layers.init import trunc_normal_std_


class ViT(nn.Module):
    """Vision Transformer: patches -> tokens (+ class token, + position) -> blocks -> norm -> pool -> head.

    ``cfg.stem`` picks the tokeniser (the paper's patch embedding or a convolutional stem,
    ``vitlab.layers.stems``) and ``cfg.norm`` the encoder norm (LayerNorm, or BatchNorm over
    batch × tokens, ``vitlab.layers.norm``); the defaults are the paper's ViT.

    Args:
        cfg: the model configuration; every invariant is checked when it is built.

    Shape:
        ``forward_features``: (B, C, H, W) -> (B, N, D) with N = prefix + (H/P)(W/P) (after the final
        norm, unless ``fc_norm`` puts it after the pooling);
        ``forward_head``: (B, N, D) -> (B, num_classes), or (B, D) with ``pre_logits``.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.num_prefix_tokens = 1 if cfg.class_token else 0
        # every forward refuses a NaN/Inf input with one clear line; the training engine, whose inputs are uint8
        # images standardised by finite statistics, checks once per data set instead and turns this off (~2% a step)
        self.check_finite = True
        self.to_patch_embedding = build_stem(cfg)  # PatchEmbed for stem='patch', else a ConvStem
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if cfg.class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix_tokens + cfg.num_patches, cfg.dim))
        self.pos_drop = nn.Dropout(cfg.dropout)
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # stochastic depth grows with depth
        self.blocks = nn.ModuleList(
            Block(dim=cfg.dim, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
                  dropout=cfg.dropout, attn_dropout=cfg.attn_dropout, drop_path=rate,
                  norm_eps=cfg.norm_eps, attn_impl=cfg.attn_impl, norm=cfg.norm)
            for rate in rates
        )
        # the final norm: on every token (the ViT paper), or on the pooled features (fc_norm, timm's avg models)
        self.norm = nn.Identity() if cfg.fc_norm else make_norm(cfg.norm, cfg.dim, eps=cfg.norm_eps)
        self.fc_norm = make_norm(cfg.norm, cfg.dim, eps=cfg.norm_eps) if cfg.fc_norm else nn.Identity()
        self.head = nn.Linear(cfg.dim, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.pos_embed.is_meta:
            return
        self.apply(partial(init_weights, scheme=self.cfg.init))
        trunc_normal_std_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)

    def no_weight_decay(self) -> set[str]:
        """Parameter names kept out of weight decay besides norms and biases."""
        return {"pos_embed", "cls_token"}

    # -- the model surface ------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor, return_weights: bool = False):
        """Tokens after the final norm, (B, N, D); with ``return_weights`` also each block's (B, H, N, N)."""
        grid = self._check_input(x)
        x = self.to_patch_embedding(x)  # (B, N_p, D)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + N_p, D)
        x = self.pos_drop(x + self._pos_embed_for(grid))
        weights = []
        for block in self.blocks:
            if return_weights:
                x, w = block(x, return_weights=True)
                weights.append(w)
            else:
                x = block(x)
        x = self.norm(x)
        return (x, weights) if return_weights else x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the tokens (class token, mean or max over patch tokens), [fc_norm], then classify."""
        if self.cfg.pool == "token":
            x = x[:, 0]  # (B, D)
        elif self.cfg.pool == "avg":
            x = x[:, self.num_prefix_tokens:].mean(dim=1)  # (B, D)
        else:
            x = x[:, self.num_prefix_tokens:].amax(dim=1)  # (B, D)
        x = self.fc_norm(x)  # identity unless cfg.fc_norm
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # -- helpers ----------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> tuple[int, int]:
        """Validate an input batch and return its patch grid (rows, cols)."""
        cfg = self.cfg
        if x.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != cfg.in_chans:
            raise ValueError(f"expected {cfg.in_chans} input channels, got {x.shape[1]} (input shape {tuple(x.shape)})")
        if (self.check_finite and x.is_floating_point() and not x.is_meta and not torch.compiler.is_compiling()
                and not torch.isfinite(x).all()):
            bad = (~torch.isfinite(x)).sum().item()
            raise ValueError(f"input holds {bad} NaN or Inf value(s) (input shape {tuple(x.shape)}): "
                             f"check the data and its normalisation")
        h, w = x.shape[-2:]
        if cfg.dynamic_img_size:
            if h % cfg.patch_size or w % cfg.patch_size:
                raise ValueError(f"input size {h}x{w} is not divisible by the patch size {cfg.patch_size}")
        elif (h, w) != (cfg.img_size, cfg.img_size):
            raise ValueError(
                f"expected input resolution {cfg.img_size}x{cfg.img_size}, got {h}x{w}; build the model with "
                f"img_size={h} and load the weights with load_state_dict_resampled, or set dynamic_img_size=True"
            )
        return h // cfg.patch_size, w // cfg.patch_size

    def _pos_embed_for(self, grid: tuple[int, int]) -> torch.Tensor:
        # Decide by the grid, not the token count: a 64x16 input on a 32x32 model has the same
        # 16 patches as the trained 4x4 grid but laid out 8x2, so it still needs resampling.
        # resample_pos_embed returns pos_embed itself when the grid is unchanged.
        return resample_pos_embed(self.pos_embed, grid, num_prefix_tokens=self.num_prefix_tokens,
                                  old_grid=(self.cfg.grid_size, self.cfg.grid_size))


def load_state_dict_resampled(model: ViT, state_dict: dict[str, torch.Tensor], strict: bool = True):
    """Load weights trained at another resolution, resampling ``pos_embed`` to this model's grid."""
    sd = dict(state_dict)
    pe = sd.get("pos_embed")
    if pe is not None and pe.shape != model.pos_embed.shape:
        g = model.cfg.grid_size
        sd["pos_embed"] = resample_pos_embed(pe, (g, g), num_prefix_tokens=model.num_prefix_tokens)
    return model.load_state_dict(sd, strict=strict)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
