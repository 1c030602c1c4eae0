"""InfoNCE in SimCLR's NT-Xent form, with an optional MoCo queue of extra negatives.

InfoNCE (Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding") scores
each anchor's positive against a set of negatives with a softmax cross-entropy. SimCLR (Chen et
al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations", eq. 1) calls the
form used here NT-Xent: cosine similarities of L2-normalised embeddings divided by a temperature τ,
every one of the 2N views in a batch of N pairs is an anchor, its positive is the other view of the
same sample and its negatives are the other 2N − 2 views. MoCo (He et al. 2020, "Momentum Contrast
for Unsupervised Visual Representation Learning") adds a FIFO queue of K past embeddings as extra
negatives, so the number of negatives no longer depends on the batch size.

Rows and columns are laid out as [view 1 of samples 0..N-1; view 2 of samples 0..N-1], so the
positive of anchor i is i + N (mod 2N); queue columns come after the 2N in-batch columns.

Alignment and uniformity (Wang & Isola 2020, "Understanding Contrastive Representation Learning through
Alignment and Uniformity on the Hypersphere", §4.1) split the contrastive objective into two properties of
L2-normalised embeddings, and are measured here beside the loss:

* alignment  = E_{(x, x⁺)} ‖f(x) − f(x⁺)‖₂^α over positive pairs, α = 2 (lower is better, 0 = identical);
* uniformity = log E_{x, y} exp(−t ‖f(x) − f(y)‖₂²) over pairs of distinct samples, t = 2 (lower is better;
  its minimum on the sphere spreads the points evenly). As in the paper's reference code (``torch.pdist``),
  the expectation is over the N(N−1)/2 unordered pairs i < j: a point is never paired with itself.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _check_temperature(temperature: float) -> float:
    try:
        tau = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}") from None
    if not (math.isfinite(tau) and tau > 0):  # `not (x > 0)` also catches nan
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return tau


def _check_views(z1: torch.Tensor, z2: torch.Tensor, queue: torch.Tensor | None) -> None:
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"z1 and z2 must both be (N, D) with the same shape, got z1 {tuple(z1.shape)} "
                         f"and z2 {tuple(z2.shape)}")
    if z1.shape[0] == 0:
        raise ValueError(f"need at least one pair of views, got z1 {tuple(z1.shape)}")
    if queue is not None and (queue.dim() != 2 or queue.shape[1] != z1.shape[1]):
        raise ValueError(f"queue must be (K, D) with the embeddings' D={z1.shape[1]}, got queue "
                         f"{tuple(queue.shape)} for z1 {tuple(z1.shape)}")


def _positive_index(n: int, device: torch.device) -> torch.Tensor:
    """Column of each anchor's positive: i + N (mod 2N), shape (2N,)."""
    return (torch.arange(2 * n, device=device) + n) % (2 * n)


def similarities(z1: torch.Tensor, z2: torch.Tensor, queue: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine similarities of every view with every view and every queue entry.

    Args:
        z1: embeddings of the first view.
        z2: embeddings of the second view (row n is the same sample as row n of ``z1``).
        queue: optional past embeddings used as extra negatives.

    Shape:
        z1, z2: (N, D); queue: (K, D) -> (2N, 2N + K), rows [z1; z2], columns [z1; z2; queue].
    """
    _check_views(z1, z2, queue)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D), unit rows
    keys = z if queue is None else torch.cat([z, F.normalize(queue.to(z.dtype), dim=1)])  # (2N + K, D)
    return z @ keys.T  # (2N, 2N + K)


def info_nce_from_similarities(sim: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent from a precomputed similarity matrix (the core of :func:`info_nce`).

    Each anchor's own column (the diagonal) is masked out; the rest of its row, divided by τ, are
    the logits of a (2N + K − 1)-way classification whose target is the positive column i + N.

    Args:
        sim: cosine similarities laid out as :func:`similarities` returns them.
        temperature: τ > 0.

    Shape:
        sim: (2N, 2N + K) -> scalar, the mean over the 2N anchors.
    """
    tau = _check_temperature(temperature)
    if sim.dim() != 2 or sim.shape[0] % 2 or sim.shape[0] == 0 or sim.shape[1] < sim.shape[0]:
        raise ValueError(f"sim must be (2N, 2N + K) with N >= 1, K >= 0, got {tuple(sim.shape)}")
    two_n = sim.shape[0]
    self_mask = torch.eye(two_n, sim.shape[1], dtype=torch.bool, device=sim.device)  # (2N, 2N + K)
    logits = (sim / tau).masked_fill(self_mask, float("-inf"))  # exp(-inf) = 0: self is no negative
    return F.cross_entropy(logits, _positive_index(two_n // 2, sim.device))


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float,
             queue: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE / NT-Xent loss of two views (SimCLR eq. 1, averaged over all 2N anchors).

    loss = −(1/2N) Σ_i log( exp(s_i,p(i)/τ) / Σ_{j≠i} exp(s_ij/τ) ), s = cosine similarity,
    p(i) the other view of anchor i's sample, j over the 2N in-batch views and the K queue entries.
    With N = 1 and no queue an anchor has no negatives and the loss is 0.

    Args:
        z1: embeddings of the first view (any scale: rows are L2-normalised here).
        z2: embeddings of the second view, row n paired with row n of ``z1``.
        temperature: τ > 0; smaller τ weights hard negatives more (SimCLR §5.1, Table 5).
        queue: optional (K, D) past embeddings, extra negatives for every anchor (MoCo).

    Shape:
        z1, z2: (N, D); queue: (K, D) -> scalar.
    """
    _check_temperature(temperature)
    return info_nce_from_similarities(similarities(z1, z2, queue), temperature)


def momentum_info_nce(q: torch.Tensor, k: torch.Tensor, temperature: float,
                      queue: torch.Tensor | None = None) -> torch.Tensor:
    """MoCo's InfoNCE (He et al. 2020, eq. 1; Chen et al. 2021, "An Empirical Study of Training Self-Supervised
    Vision Transformers", Algorithm 1): query i's positive is key i, the momentum encoder's embedding of another
    view of the same sample; its negatives are the other N − 1 keys and the K queue entries.

    loss = −(1/N) Σ_i log( exp(q_i·k_i/τ) / (Σ_j exp(q_i·k_j/τ) + Σ_m exp(q_i·u_m/τ)) ), rows L2-normalised,
    u the queue. Keys carry no gradient (they come from the momentum encoder).

    Shape:
        q, k: (N, D); queue: (K, D) -> scalar, the mean over the N queries.
    """
    tau = _check_temperature(temperature)
    _check_views(q, k, queue)
    q = F.normalize(q, dim=1)  # (N, D)
    keys = F.normalize(k.detach(), dim=1)
    if queue is not None:
        keys = torch.cat([keys, F.normalize(queue.to(keys.dtype), dim=1)])  # (N + K, D)
    logits = q @ keys.T / tau  # (N, N + K)
    return F.cross_entropy(logits, torch.arange(len(q), device=q.device))


def negative_weights(z1: torch.Tensor, z2: torch.Tensor, temperature: float,
                     queue: torch.Tensor | None = None) -> torch.Tensor:
    """Hardness weights: for each anchor, the softmax over its negatives only, exp(s_ij/τ) / Σ_neg.

    The loss's gradient with respect to a negative similarity s_ij is (1 − p_i) · w_ij / (2Nτ),
    p_i the anchor's softmax probability of its positive, so w_ij is how much of the anchor's push
    goes to negative j (Wang & Liu 2021, "Understanding the Behaviour of Contrastive Loss": the
    hardness-aware property). Lower τ concentrates it on the most similar negatives.

    Args:
        z1, z2, temperature, queue: as for :func:`info_nce`.

    Shape:
        -> (2N, 2N + K), columns as in :func:`similarities`; zero at each anchor's own and positive
        column; each row sums to 1.
    """
    tau = _check_temperature(temperature)
    sim = similarities(z1, z2, queue)  # (2N, 2N + K)
    two_n, cols = sim.shape
    if cols - 2 < 1:
        raise ValueError(f"no negatives with N={two_n // 2} and K={cols - two_n}: need 2N - 2 + K >= 1")
    anchors = torch.arange(two_n, device=sim.device)
    not_negative = torch.eye(two_n, cols, dtype=torch.bool, device=sim.device)  # self ...
    not_negative[anchors, _positive_index(two_n // 2, sim.device)] = True  # ... and positive
    return (sim / tau).masked_fill(not_negative, float("-inf")).softmax(dim=1)  # (2N, 2N + K)


class InfoNCE(nn.Module):
    """InfoNCE / NT-Xent loss with an optional MoCo-style queue of past second-view embeddings.

    With ``queue_size`` K > 0, each training-mode forward pushes the batch's ``z2`` (detached,
    L2-normalised) into a FIFO buffer that keeps the last K rows, oldest first; from the next
    forward on they are extra negatives for every anchor (He et al. 2020). The current batch is
    pushed after the loss is computed, so a view is never its own negative. The buffer is filled
    lazily (D is learnt from the first batch); it travels in the state dict as the module's extra state
    (``get_extra_state``: a tensor whose length grows while it fills), so a checkpoint of a module that
    holds this loss carries the queue across a resume. Under torchrun, give it
    the gathered global batch (vitlab.train.distributed.gather_with_grad): every process then holds
    the same queue.

    Args:
        temperature: τ > 0.
        queue_size: K >= 0; 0 means no queue (plain SimCLR).

    Shape:
        z1, z2: (N, D) -> scalar.
    """

    def __init__(self, *, temperature: float, queue_size: int = 0):
        super().__init__()
        self.temperature = _check_temperature(temperature)
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 0:
            raise ValueError(f"queue_size must be an int >= 0, got {queue_size!r}")
        self.queue_size = queue_size
        self.register_buffer("queue", None, persistent=False)  # (k, D), k <= K, once filled

    def forward(self, z1: torch.Tensor, z2: torch.Tensor,
                keys: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """NT-Xent of the views' embeddings z1, z2; with ``keys`` = (k1, k2) from a momentum encoder, MoCo's
        symmetrised form (½ of :func:`momentum_info_nce` of (z1, k2) and of (z2, k1)), and k2 enters the queue.
        The similarities are computed as the embeddings come, outside any bf16 autocast: at τ = 0.05 a bf16 cosine's
        ±0.004 would move a logit by ±0.08."""
        with torch.autocast(z1.device.type, enabled=False):
            if keys is None:
                loss, pushed = info_nce(z1, z2, self.temperature, queue=self.queue), z2
            else:
                k1, k2 = keys
                loss = (momentum_info_nce(z1, k2, self.temperature, self.queue) +
                        momentum_info_nce(z2, k1, self.temperature, self.queue)) / 2
                pushed = k2
        if self.training and self.queue_size:
            self._enqueue(pushed)
        return loss

    def get_extra_state(self) -> torch.Tensor:
        """The queue, so that it travels in ``state_dict()`` (and a checkpoint) though its length changes while it
        fills: (k, D), or (0,) while empty."""
        return self.queue if self.queue is not None else torch.zeros(0)

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.queue = state.detach().clone() if state.numel() else None

    @torch.no_grad()
    def _enqueue(self, z2: torch.Tensor) -> None:
        new = F.normalize(z2.detach(), dim=1)  # (N, D)
        stacked = new if self.queue is None else torch.cat([self.queue, new.to(self.queue.dtype)])
        self.queue = stacked[-self.queue_size:].clone()  # (min(K, seen), D): the newest K rows

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, queue_size={self.queue_size}"


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> float:
    """Mean ‖z1_i − z2_i‖^α of the L2-normalised rows (Wang & Isola 2020, eq. 4).

    Shape:
        z1, z2: (N, D), row i of each a positive pair -> float.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"z1 and z2 must be (N, D) of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    a, b = F.normalize(z1.double(), dim=1), F.normalize(z2.double(), dim=1)
    return float((a - b).norm(dim=1).pow(alpha).mean())


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """log of the mean of exp(−t ‖z_i − z_j‖²) over the unordered pairs i < j of L2-normalised rows
    (Wang & Isola 2020, eq. 5).

    Shape:
        z: (N, D), N >= 2 -> float.
    """
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"uniformity needs (N, D) with N >= 2, got {tuple(z.shape)}")
    u = F.normalize(z.double(), dim=1)
    sq = torch.pdist(u).pow(2)  # (N(N−1)/2,) squared distances, i < j
    return float(torch.logsumexp(-t * sq, dim=0) - math.log(sq.numel()))  # log-mean-exp, stable
