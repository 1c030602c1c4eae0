"""``task='pretrain'``: contrastive pretraining of a ViT encoder (SimCLR, Chen et al. 2020), with a kNN accuracy
as the headline metric.

Per step: two views -> encoder h = f(x) (pooled, pre-logits) -> z = g(h) -> InfoNCE(τ); under torchrun both
views are gathered from every process with gradients, so the negatives are those of the global batch and
the MoCo queue (``pretrain.queue_size``) is the same on every process. With ``pretrain.momentum`` > 0 the
step is MoCo's (v3 with ``pretrain.predictor_hidden``): each view's query p(g(f(x))) is matched with the
other view's key from a momentum encoder, a moving average of f and g updated before the keys are computed
(:meth:`Contrastive.keys`; Chen et al. 2021, Algorithm 1). Evaluation: the kNN accuracy of h (the
un-augmented training split as the memory bank), and alignment and uniformity of z on fixed views.

The run leaves ``model.safetensors`` (the encoder, ``num_classes=0``: its head is the identity, so
``load_model`` rebuilds it and ``model(x)`` is the (B, D) feature) and ``projection.safetensors`` (g).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from torch import nn

from ...config import RunConfig
from ...data import ImageSet, Normalize, Splits, batch_indices, load_data
from ...data.views import make_views
from ...errors import ConfigError
from ...losses import InfoNCE, alignment, uniformity
from ...models import ViT
from ...models.projection import ProjectionHead
from ..artifacts import PROJECTION_FILE, save_model, save_projection
from ..distributed import all_sum, gather_parts, gather_with_grad, my_part
from ..metrics import knn_predict
from . import Context, Task
from .classify import check_data_fits_model

VIEWS_SEED = 12345  # fixed views for alignment and uniformity: the same images, the same views, every epoch
VIEWS_IMAGES = 1024  # how many images of a split they are measured on (uniformity is over all pairs)


class Contrastive(nn.Module):
    """Encoder f, projection g and the InfoNCE loss as one module: DDP sees one forward x -> z = g(f(x)), and
    the checkpoint holds all of it (the MoCo queue as the loss's extra state).

    With ``momentum`` > 0 it also holds the momentum encoder (copies of f and g that the optimiser never
    touches: ``momentum_encoder``, ``momentum_projection``) and, optionally, MoCo v3's ``predictor``.
    """

    def __init__(self, encoder: ViT, projection: ProjectionHead, criterion: InfoNCE, *, momentum: float = 0.0,
                 predictor: ProjectionHead | None = None):
        super().__init__()
        self.encoder, self.projection, self.criterion = encoder, projection, criterion
        self.momentum, self.predictor = momentum, predictor
        if momentum > 0:
            self.momentum_encoder = copy.deepcopy(encoder).requires_grad_(False)
            self.momentum_projection = copy.deepcopy(projection).requires_grad_(False)

    def no_weight_decay(self) -> set[str]:
        return {f"encoder.{n}" for n in self.encoder.no_weight_decay()}

    def forward(self, x: torch.Tensor, predict: bool = False) -> torch.Tensor:
        z = self.projection(encoder_features(self.encoder, x))  # (B, proj_dim)
        return self.predictor(z) if predict and self.predictor is not None else z  # the query q = p(z)

    @torch.no_grad()
    def keys(self, x: torch.Tensor, m: float) -> torch.Tensor:
        """Update the momentum encoder, θ_k ← m·θ_k + (1 − m)·θ_q for f and g (m = 0 copies them), then return its
        embeddings of ``x``. Shape: (B, C, H, W) -> (B, proj_dim)."""
        online = [*self.encoder.parameters(), *self.projection.parameters()]
        target = [*self.momentum_encoder.parameters(), *self.momentum_projection.parameters()]
        if m == 0:
            torch._foreach_copy_(target, online)
        else:
            torch._foreach_lerp_(target, online, 1.0 - m)  # t + (1 − m)(p − t) = m·t + (1 − m)·p
        return self.momentum_projection(encoder_features(self.momentum_encoder, x))


def momentum_at(step: int, total_steps: int, base: float) -> float:
    """MoCo v3's momentum schedule (after BYOL): m rises from ``base`` at step 0 to 1 at the last step on a half
    cosine, m = 1 − (1 − base)·(1 + cos(π·step/total))/2, so the keys change less and less as training settles."""
    return 1.0 - (1.0 - base) * (1.0 + math.cos(math.pi * step / max(total_steps, 1))) / 2.0


PROBE_FEATURES = ("pooled", "blocks", "tokens")  # what a linear probe reads (:func:`encoder_features`)
LAST_BLOCKS = 4  # DINO's linear evaluation of ViT-S reads the last four blocks


def encoder_features(model: ViT, x: torch.Tensor, features: str = "pooled") -> torch.Tensor:
    """The encoder's features of a batch, as a linear probe reads them. Shape: (B, C, H, W) -> (B, F).

    * ``'pooled'`` — h = f(x), the pooled pre-logits features the loss sees: (B, D). SimCLR's protocol.
    * ``'blocks'`` — the tokens after each of the last four blocks (all of them if fewer), each put through the
      final norm and pooled as h is, concatenated: (B, 4·D). DINO's protocol for ViT-S (Caron et al. 2021, §4.1
      and appendix: the class tokens of the last four blocks).
    * ``'tokens'`` — the final normed patch tokens, flattened in row-major grid order: (B, N·D). A spatial
      feature map, as Zhang et al. 2016 probe each convolutional layer's map rather than a pooled vector.
    """
    if features == "pooled":
        return model.forward_head(model.forward_features(x), pre_logits=True)  # (B, D)
    if features == "tokens":
        return model.forward_features(x)[:, model.num_prefix_tokens:].flatten(1)  # (B, N·D)
    if features != "blocks":
        raise ConfigError(f"probe features={features!r} is not one of {PROBE_FEATURES}")
    outputs: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for b in model.blocks[-LAST_BLOCKS:]]
    try:
        model.forward_features(x)
    finally:
        for h in hooks:
            h.remove()
    return torch.cat([model.forward_head(model.norm(t), pre_logits=True) for t in outputs], dim=1)  # (B, k·D)


@torch.no_grad()
def encode(model: ViT, images: torch.Tensor, normalize: Normalize, batch_size: int = 512,
           features: str = "pooled") -> torch.Tensor:
    """Encoder features (:func:`encoder_features`) of uint8 images, un-augmented, in eval mode.
    Shape: (N, C, H, W) -> (N, F)."""
    was_training = model.training
    model.eval()
    device = normalize.mean.device
    batches = list(batch_indices(torch.arange(len(images)), batch_size)) or [torch.arange(0)]  # 0 images: a (0, F) result
    out = [encoder_features(model, normalize(images[idx].to(device)), features).float() for idx in batches]
    model.train(was_training)
    return torch.cat(out)


def knn_accuracy(model: ViT, train: ImageSet, test: ImageSet, normalize: Normalize, k: int) -> float:
    """Accuracy of :func:`vitlab.train.metrics.knn_predict` on ``test`` with the un-augmented ``train`` set as
    the memory bank, in this process."""
    bank, queries = encode(model, train.images, normalize), encode(model, test.images, normalize)
    n_classes = max(len(train.classes), int(train.labels.max()) + 1)
    pred = knn_predict(bank, train.labels.to(bank.device), queries, k, n_classes)
    return float((pred.cpu() == test.labels.cpu()).float().mean())


def data(cfg: RunConfig) -> Splits:
    if cfg.model.num_classes != 0:
        raise ConfigError(f"task='pretrain' trains an encoder without a head: model.num_classes must be 0, got "
                          f"{cfg.model.num_classes}")
    splits = load_data(cfg.data)
    check_data_fits_model(cfg, splits.train)
    c, h, w = splits.train.shape
    if c not in (1, 3) or h != w:
        raise ConfigError(f"task='pretrain': the views need square 1- or 3-channel images, got {c}x{h}x{w}")
    if len(splits.train) < cfg.optim.batch_size:
        raise ConfigError(f"optim.batch_size={cfg.optim.batch_size} exceeds the {len(splits.train)} training images")
    return splits


def model(cfg: RunConfig, splits: Splits) -> nn.Module:
    p = cfg.pretrain
    projection = ProjectionHead(in_dim=cfg.model.dim, hidden_dim=p.proj_hidden, out_dim=p.proj_dim,
                                batch_norm=p.proj_batch_norm)
    predictor = ProjectionHead(in_dim=p.proj_dim, hidden_dim=p.predictor_hidden, out_dim=p.proj_dim,
                               batch_norm=p.proj_batch_norm) if p.predictor_hidden else None
    return Contrastive(ViT(cfg.model), projection, InfoNCE(temperature=p.tau, queue_size=p.queue_size),
                       momentum=p.momentum, predictor=predictor)


def augment(cfg: RunConfig, splits: Splits) -> nn.Module:
    c, h, _ = splits.train.shape
    return make_views(cfg.pretrain, c, h)


def step(trained: nn.Module, images: torch.Tensor, labels: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, dict]:
    """Two views -> one forward of 2N images (BatchNorm sees both) -> gather over processes -> InfoNCE; with a
    momentum encoder, its keys of the same 2N views (after its update) are the positives and negatives."""
    v1, v2 = ctx.augment(images.float().div_(255))  # (N, C, H, W) each, in [0, 1]
    x = ctx.normalize(torch.cat([v1, v2]))  # (2N, C, H, W)
    module = getattr(trained, "module", trained)  # the loss (and its queue) and the key encoder outside DDP
    z1, z2 = trained(x, predict=True).float().chunk(2)  # (N, proj_dim) each: the queries
    z1, z2 = gather_with_grad(z1), gather_with_grad(z2)  # the global batch, with gradients (W·N, proj_dim)
    keys = None
    if module.momentum > 0:  # at step 0 the key encoder becomes a copy of f and g (m = 0), as in MoCo v3
        m = momentum_at(ctx.step, ctx.total_steps, module.momentum) if ctx.step else 0.0
        k1, k2 = module.keys(x, m).float().chunk(2)  # (N, proj_dim) each, no gradient
        keys = gather_with_grad(k1), gather_with_grad(k2)
    loss = module.criterion(z1, z2, keys)  # fp32 (the embeddings are) even under bf16 autocast: InfoNCE turns it off
    return loss, {"loss": loss.detach() * len(images), "n": len(images)}


def evaluate_split(model: Contrastive, split: ImageSet, ctx: Context) -> dict[str, float]:
    """kNN accuracy of h = f(x) (bank: the training split), and alignment / uniformity of z on fixed views of
    the first VIEWS_IMAGES images. Under torchrun each process encodes its part of the bank and the queries."""
    encoder, train = model.encoder, ctx.train
    bank = gather_parts(encode(encoder, train.subset(my_part(len(train))).images, ctx.normalize), len(train))  # (M, D)
    part = split.subset(my_part(len(split)))
    n_classes = max(len(train.classes), int(train.labels.max()) + 1)
    pred = knn_predict(bank, train.labels.to(bank.device), encode(encoder, part.images, ctx.normalize),
                       ctx.cfg.pretrain.knn_k, n_classes)
    correct = all_sum((pred == part.labels.to(pred.device)).sum())
    was_training = model.training
    model.eval()
    x = split.images[:VIEWS_IMAGES].to(ctx.device).float().div_(255)
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(ctx.cfg.seed + VIEWS_SEED)
        za, zb = (model(ctx.normalize(v)).float() for v in ctx.augment(x))
    model.train(was_training)
    return {"knn_acc": float(correct) / len(split), "alignment": alignment(za, zb), "uniformity": uniformity(za)}


def save(path: Path, model: Contrastive, meta: dict) -> None:
    save_model(path, model.encoder, meta)  # the encoder alone: what a probe or a fine-tuning run starts from
    save_projection(path.parent / PROJECTION_FILE, model.projection)


def encoder(module: nn.Module) -> ViT:
    return module.encoder  # the projection head and the loss are the task's own


PRETRAIN = Task(metric="knn_acc", data=data, model=model, augment=augment, step=step, evaluate=evaluate_split,
                save=save, encoder=encoder)
