"""Claims 6 and 13: what an embedding layer is, and how it should be trained.

Claim 6 is an identity: ``nn.Embedding`` looks up row ``i`` of its weight ``W`` (V, D), which is what the one-hot
vector ``e_i`` (V,) times ``W`` gives; its gradient w.r.t. ``W`` is ``onehot(idx)ᵀ @ grad_out``, a scatter-add of
the output gradients into the rows of the tokens seen. The check compares both ways against each other and prices
them: the lookup does no multiply-adds, the one-hot product ``V × D`` a token.

Claim 13 is an experiment on a categorical task built so that it has the structure word embeddings exploit
(tokens fall in hidden groups; the label depends on the groups; tokens of a group co-occur in unlabelled text, the
distributional hypothesis of Harris 1954). Four ways to get the token vectors are compared at the same dimension
``d`` and with the same downstream model: learned from scratch with the network; pre-trained without labels by a
truncated SVD of the corpus's positive-PMI co-occurrence matrix (LSA, Deerwester et al. 1990; Levy & Goldberg 2014
showed word2vec's skip-gram factorises a shifted PMI matrix), frozen or fine-tuned; and PCA of the one-hot
vectors of the training tokens, frozen.

Why PCA of one-hot data is degenerate: a one-hot vector ``x = e_t`` drawn with token frequencies ``p`` has mean
``p`` and covariance ``E[x xᵀ] - p pᵀ = diag(p) - p pᵀ`` (``x xᵀ = diag(x)`` for a one-hot ``x``). That is a
diagonal minus a rank-one term, so its eigenvalues interlace the sorted frequencies (``p_(i+1) <= λ_i <= p_(i)``,
Golub 1973) and its leading eigenvectors are close to the indicator vectors of the most frequent tokens: ``d``
components keep the identities of about ``d`` tokens and map every other token to nearly the same point. Nothing
about which tokens co-occur enters ``diag(p) - p pᵀ``, so no amount of data makes it see the groups.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import stats
from .claim import CAVEATS, FAILS, HOLDS, UNDECIDED, Finding, Lab
from .lab import Data, median_seconds, one_thread, pyplot, savefig, train_classifier

# --------------------------------------------------------------------------------------------------------------
# Claim 6: an embedding is a one-hot vector times a weight matrix
# --------------------------------------------------------------------------------------------------------------

_EXACT_TOL = 1e-5  # float32 sums of a few O(1) terms in another order differ by ~1e-7


@dataclass(frozen=True)
class OneHotDiff:
    """Max abs differences between ``embedding(idx)`` and ``onehot(idx) @ W``, forward and weight gradient."""

    forward: float
    grad: float
    grad_unseen: float  # largest |gradient| of the rows of tokens that idx never holds (should be 0)
    grad_repeat: float  # max |grad row of a repeated token - sum of its output gradients| (a hand-worked scatter-add)


def onehot_diff(embedding: nn.Embedding, idx: torch.Tensor, grad_out: torch.Tensor) -> OneHotDiff:
    """Compare ``embedding`` with ``F.one_hot(idx).float() @ embedding.weight`` on the same weight.

    Both are back-propagated from the same upstream gradient ``grad_out``; the embedding's weight gradient is
    also checked against a loop that adds each position's gradient into its token's row.

    Shape:
        idx (...,) int64 in [0, V); grad_out (..., D).
    """
    weight = embedding.weight.detach().clone().requires_grad_(True)  # (V, D): the one-hot path's own copy
    embedding.weight.grad = None
    looked_up = embedding(idx)  # (..., D)
    (looked_up * grad_out).sum().backward()
    onehot = F.one_hot(idx, weight.shape[0]).float()  # (..., V)
    product = onehot @ weight  # (..., D)
    (product * grad_out).sum().backward()
    g_emb = embedding.weight.grad  # (V, D)
    by_hand = torch.zeros_like(weight)
    for token, g in zip(idx.reshape(-1).tolist(), grad_out.reshape(-1, grad_out.shape[-1])):
        by_hand[token] += g
    seen = torch.zeros(weight.shape[0], dtype=torch.bool)
    seen[idx.reshape(-1)] = True
    return OneHotDiff(
        forward=float((looked_up - product).detach().abs().max()),
        grad=float((g_emb - weight.grad).abs().max()),
        grad_unseen=float(g_emb[~seen].abs().max()) if (~seen).any() else 0.0,
        grad_repeat=float((g_emb - by_hand).abs().max()),
    )


@torch.no_grad()
def lookup_cost(vocab: int = 4096, dim: int = 64, tokens: int = 2048, *, seed: int = 0) -> dict[str, float]:
    """Multiply-adds and median seconds of a lookup and of the one-hot product for ``tokens`` tokens."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(vocab, dim, generator=g)  # (V, D)
    idx = torch.randint(vocab, (tokens,), generator=g)  # (N,)
    return {
        "lookup_macs": 0.0,
        "onehot_macs": float(tokens * vocab * dim),
        "lookup_s": median_seconds(lambda: F.embedding(idx, weight), repeats=5),
        "onehot_s": median_seconds(lambda: F.one_hot(idx, vocab).float() @ weight, repeats=5),  # (N, V) @ (V, D)
    }


def claim6(lab: Lab) -> Finding:
    """nn.Embedding against one-hot × W: forward, weight gradient (a scatter-add), and the price of each."""
    g = torch.Generator().manual_seed(lab.seed)
    vocab, dim = 50, 8
    torch.manual_seed(lab.seed)
    embedding = nn.Embedding(vocab, dim)
    idx = torch.randint(vocab // 2, (4, 16), generator=g)  # (B, T): tokens >= 25 never appear; many repeat
    grad_out = torch.randn(4, 16, dim, generator=g)  # (B, T, D)
    diff = onehot_diff(embedding, idx, grad_out)
    counts = torch.bincount(idx.reshape(-1), minlength=vocab)
    # padding_idx makes the layer differ from one-hot × W on purpose: that row gets no gradient
    padded = nn.Embedding(vocab, dim, padding_idx=int(idx[0, 0]))
    padded_diff = onehot_diff(padded, idx, grad_out)
    cost = lookup_cost(seed=lab.seed)

    exact = max(diff.forward, diff.grad, diff.grad_unseen, diff.grad_repeat) <= _EXACT_TOL
    verdict = HOLDS if exact else FAILS
    why = (f"nn.Embedding(idx) and one_hot(idx) @ W agree to {diff.forward:.1e} (forward) and {diff.grad:.1e} "
           f"(weight gradient, a scatter-add: unseen rows {diff.grad_unseen:.1e}), but the lookup costs 0 "
           f"multiply-adds against V×D = {cost['onehot_macs'] / 2048:,.0f} a token "
           f"({cost['onehot_s'] / max(cost['lookup_s'], 1e-9):.0f}× slower here)")
    if not exact:
        why = f"nn.Embedding and one_hot @ W differ by up to {max(diff.forward, diff.grad):.1e}"
    evidence = [
        f"V = {vocab}, D = {dim}, a (4, 16) batch of indices drawn from the first {vocab // 2} tokens "
        f"({int((counts > 0).sum())} distinct, the most frequent {int(counts.max())} times; "
        f"{int((counts == 0).sum())} tokens never seen).",
        "",
        "| check | max abs difference |",
        "|---|---|",
        f"| forward: embedding(idx) vs one_hot(idx) @ W | {diff.forward:.2e} |",
        f"| weight gradient: embedding vs one-hot product | {diff.grad:.2e} |",
        f"| weight gradient vs a loop adding each position's gradient into its token's row | {diff.grad_repeat:.2e} |",
        f"| gradient of the rows of unseen tokens (should be 0) | {diff.grad_unseen:.2e} |",
        f"| with padding_idx = {int(idx[0, 0])} (a variant that is *not* one-hot × W): weight gradient | "
        f"{padded_diff.grad:.2e} |",
        "",
        "The weight gradient is onehot(idx)ᵀ @ grad_out: a token's row gets the sum of the output gradients at "
        "the positions holding it, and the rows of tokens not in the batch get exactly 0 (PyTorch can return it "
        "as a sparse tensor with `sparse=True`).",
        "",
        f"Cost for N = 2,048 tokens, V = 4,096, D = 64: the lookup copies N×D numbers with 0 multiply-adds; the "
        f"one-hot product does N×V×D = {cost['onehot_macs'] / 1e6:,.0f} M multiply-adds (and builds an N×V "
        f"matrix): median {cost['lookup_s'] * 1e3:.3f} ms vs {cost['onehot_s'] * 1e3:.1f} ms on this CPU.",
    ]
    return Finding(verdict, why, evidence)


# --------------------------------------------------------------------------------------------------------------
# Claim 13: learned vs pre-trained vs PCA token vectors
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenTask:
    """A categorical task with hidden token groups, its labelled splits and an unlabelled corpus.

    ``data`` holds bags of token ids (N, k) int64 as inputs and the bag's majority group as the label; ``corpus``
    (U, L) int64 holds unlabelled sequences, each mostly about one group.
    """

    group: torch.Tensor  # (V,) int64: the hidden group of each token
    freq: torch.Tensor  # (V,) float64: the probability of each token (Zipf over a random ranking), sums to 1
    data: Data
    corpus: torch.Tensor  # (U, L) int64

    @property
    def vocab(self) -> int:
        return len(self.group)

    @property
    def groups(self) -> int:
        return int(self.group.max()) + 1


def _draw_from_groups(groups_of_draws: torch.Tensor, group: torch.Tensor, freq: torch.Tensor,
                      g: torch.Generator) -> torch.Tensor:
    """One token of each given group, drawn with the token frequencies restricted to that group.

    Shape:
        groups_of_draws (...,) int64 -> tokens (...,) int64.
    """
    flat = groups_of_draws.reshape(-1)
    tokens = torch.empty_like(flat)
    for k in range(int(group.max()) + 1):
        members = (group == k).nonzero().view(-1)  # (V / G,)
        where = (flat == k).nonzero().view(-1)
        if len(where):
            tokens[where] = members[torch.multinomial(freq[members], len(where), replacement=True, generator=g)]
    return tokens.view(groups_of_draws.shape)


def token_task(seed: int = 0, *, vocab: int = 300, groups: int = 6, bag: int = 5, majority: int = 3,
               train: int = 300, val: int = 1000, test: int = 1000, corpus: int = 4000, length: int = 10,
               purity: float = 0.8, zipf: float = 1.0) -> TokenTask:
    """Draw the task of claim 13.

    Token ``v`` belongs to group ``v % groups``; token frequencies follow Zipf's law, ``p ∝ 1 / rank^zipf``, over
    a ranking drawn from ``seed`` (so every group holds frequent and rare tokens). A labelled bag of ``bag`` tokens
    has a label ``y`` (uniform), ``majority`` tokens drawn from group ``y`` and the others each from a uniformly
    drawn group other than ``y``; with ``majority > bag / 2`` the label is the bag's strict majority group, so the
    groups decide the label exactly. An unlabelled sequence of ``length`` tokens picks a group and draws each
    token from it with probability ``purity``, else from all tokens: tokens of a group co-occur.

    Returns:
        TokenTask: bags (N, bag) int64 and labels (N,) in [0, groups), the corpus (corpus, length) int64.
    """
    if not bag / 2 < majority <= bag:
        raise ValueError(f"majority={majority} must be more than half of bag={bag} (and at most bag)")
    if vocab % groups:
        raise ValueError(f"vocab={vocab} must be divisible by groups={groups}")
    g = torch.Generator().manual_seed(seed)
    group = torch.arange(vocab) % groups  # (V,)
    rank = torch.randperm(vocab, generator=g) + 1  # (V,) in 1..V
    freq = rank.double() ** -zipf
    freq = freq / freq.sum()

    def bags(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(groups, (n,), generator=g)  # (n,)
        shift = torch.randint(1, groups, (n, bag - majority), generator=g)  # (n, k - m): != 0 mod groups
        bag_groups = torch.cat([y.view(-1, 1).expand(n, majority), (y.view(-1, 1) + shift) % groups], 1)
        tokens = _draw_from_groups(bag_groups, group, freq, g)  # (n, k)
        return tokens[:, torch.randperm(bag, generator=g)], y

    splits = [bags(n) for n in (train, val, test)]
    topic = torch.randint(groups, (corpus, 1), generator=g).expand(corpus, length)  # (U, L)
    on_topic = _draw_from_groups(topic, group, freq, g)  # (U, L)
    anywhere = torch.multinomial(freq, corpus * length, replacement=True, generator=g).view(corpus, length)
    sequences = torch.where(torch.rand(corpus, length, generator=g) < purity, on_topic, anywhere)
    (a, ya), (b, yb), (c, yc) = splits
    return TokenTask(group, freq, Data(a, ya, b, yb, c, yc), sequences)


def ppmi_svd_embedding(corpus: torch.Tensor, vocab: int, dim: int) -> torch.Tensor:
    """Token vectors from unlabelled sequences: truncated SVD of the positive-PMI co-occurrence matrix (LSA).

    Two tokens co-occur when they sit in the same sequence (at different positions). PMI(v, w) =
    log(C[v, w] · C_total / (C[v] · C[w])), clipped at 0 (Levy & Goldberg 2014); the vectors are
    ``U_d · sqrt(S_d)``.

    Shape:
        corpus (U, L) int64 -> (vocab, dim) float32.
    """
    counts = F.one_hot(corpus, vocab).sum(1).double()  # (U, V): token counts of each sequence
    cooc = counts.T @ counts - torch.diag(counts.sum(0))  # (V, V): pairs of different positions
    row = cooc.sum(1, keepdim=True)  # (V, 1)
    pmi = torch.log(cooc * cooc.sum() / (row * row.T).clamp_min(1e-12)).clamp_min(0)  # log 0 = -inf -> 0
    u, s, _ = torch.linalg.svd(pmi)
    return (u[:, :dim] * s[:dim].sqrt()).float()


def onehot_pca(tokens: torch.Tensor, vocab: int, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PCA of the one-hot vectors of ``tokens``: the code of each token, the components and the eigenvalues.

    The covariance is formed as ``diag(p) - p pᵀ`` from the token frequencies ``p`` (see the module's
    docstring); the code of token ``v`` is ``(e_v - p) @ W``, what ``sklearn.decomposition.PCA`` gives for
    ``e_v``, up to the sign of each component.

    Shape:
        tokens (...,) int64 -> codes (vocab, dim), components W (vocab, dim), eigenvalues (vocab,) descending.
    """
    p = torch.bincount(tokens.reshape(-1), minlength=vocab).double() / tokens.numel()  # (V,)
    cov = torch.diag(p) - torch.outer(p, p)  # (V, V)
    eigval, eigvec = torch.linalg.eigh(cov)  # ascending
    eigval, eigvec = eigval.flip(0), eigvec.flip(1)
    components = eigvec[:, :dim]  # (V, d)
    codes = components - p.view(1, -1) @ components  # (V, d): (e_v - p) @ W
    return codes, components, eigval


def standardise(table: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Shift and scale each column so that the codes of ``tokens`` have mean 0 and variance 1 (as the N(0, 1)
    initialisation of ``nn.Embedding`` has at the start), so no setting starts at another scale.

    Shape:
        table (V, d), tokens (...,) int64 -> (V, d) float32.
    """
    codes = table.double()[tokens.reshape(-1)]  # (n, d)
    return ((table.double() - codes.mean(0)) / codes.std(0).clamp_min(1e-12)).float()


class BagClassifier(nn.Module):
    """Token vectors → mean over the bag → a two-layer MLP; the token table learned, given and frozen, or given.

    Args:
        vocab, dim: the table's size (V, d).
        classes: the number of labels.
        table: initial token vectors (V, d) or None for nn.Embedding's N(0, 1).
        freeze: keep the table fixed (only the MLP learns).

    Shape:
        (B, k) int64 -> (B, classes).
    """

    def __init__(self, *, vocab: int, dim: int, classes: int, hidden: int = 32, table: torch.Tensor | None = None,
                 freeze: bool = False):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        if table is not None:
            if table.shape != (vocab, dim):
                raise ValueError(f"table has shape {tuple(table.shape)}, expected ({vocab}, {dim})")
            with torch.no_grad():
                self.embed.weight.copy_(table)
        self.embed.weight.requires_grad_(not freeze)
        self.head = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(tokens).mean(1))  # (B, k, d) -> (B, d) -> (B, classes)


def group_agreement(table: torch.Tensor, group: torch.Tensor, k: int = 5) -> float:
    """Fraction of each token's ``k`` nearest tokens (cosine) that share its group; chance is about 1/G."""
    x = F.normalize(table.double(), dim=1)  # (V, d)
    sim = x @ x.T  # (V, V)
    sim.fill_diagonal_(-math.inf)
    near = sim.topk(k, dim=1).indices  # (V, k)
    return float((group[near] == group.view(-1, 1)).double().mean())


def epochs_to(curve: list[float], threshold: float) -> int:
    """The first epoch (1-based) whose value reaches ``threshold``; ``len(curve) + 1`` when none does."""
    return next((i + 1 for i, v in enumerate(curve) if v >= threshold), len(curve) + 1)


def pca_explanation(tokens: torch.Tensor, vocab: int, dim: int) -> dict[str, float]:
    """Numbers that check why PCA of one-hot vectors is degenerate (see the module's docstring).

    ``cov_diff``: max |sample covariance (numpy, of the explicit one-hot matrix) - (diag(p) - p pᵀ)|;
    ``interlace``: the largest violation of ``p_(i+1) <= λ_i <= p_(i)`` over the leading ``dim`` eigenvalues
    (0 when they interlace); ``mass_top``, ``mass_top2``: the share of the components' squared loadings on the
    ``dim`` and the ``2 dim`` most frequent tokens (1 when each component is one of those tokens' indicator;
    ``dim / V`` for directions that ignore frequency); ``peak_loading``: the mean over components of the largest
    squared loading; ``kept_sum``: Σ_v of the share of ``e_v - p`` that the components keep (about ``dim``
    tokens' worth); ``kept_top``: the mean share kept for the ``dim`` most frequent tokens; ``kept_rest``: the
    largest share kept for a token ranked below ``2 dim``; ``kept`` and ``rank`` (V,): each token's share and
    frequency rank (1 = the most frequent; ties broken by token id).
    """
    import numpy as np

    codes, components, eigval = onehot_pca(tokens, vocab, dim)
    flat = tokens.reshape(-1)
    onehot = F.one_hot(flat, vocab).double().numpy()  # (n, V)
    p = onehot.mean(0)  # (V,)
    cov_diff = float(np.abs(np.cov(onehot, rowvar=False, bias=True) - (np.diag(p) - np.outer(p, p))).max())
    p_sorted = torch.from_numpy(np.sort(p)[::-1].copy())  # (V,) descending
    lam = eigval[:dim]
    interlace = float(torch.maximum(p_sorted[1:dim + 1] - lam, lam - p_sorted[:dim]).clamp_min(0).max())
    order = torch.from_numpy(p).argsort(descending=True, stable=True)  # (V,) token ids, most frequent first
    loadings = components.pow(2)  # (V, d): each column sums to 1
    centred = torch.eye(vocab, dtype=torch.float64) - torch.from_numpy(p).view(1, -1)  # (V, V): rows e_v - p
    kept = codes.pow(2).sum(1) / centred.pow(2).sum(1)  # (V,)
    return {
        "cov_diff": cov_diff,
        "interlace": interlace,
        "mass_top": float(loadings[order[:dim]].sum() / dim),
        "mass_top2": float(loadings[order[:2 * dim]].sum() / dim),
        "peak_loading": float(loadings.max(0).values.mean()),
        "kept_sum": float(kept.sum()),
        "kept_top": float(kept[order[:dim]].mean()),
        "kept_rest": float(kept[order[2 * dim:]].max()),
        "kept": kept,
        "rank": order.argsort() + 1,
    }


_DIM = 8  # the token vectors' dimension d in every setting
_TASK = dict(vocab=300, groups=6, bag=5, majority=3, val=1000, test=1000, corpus=4000, length=10, purity=0.8)
_LRS = (3e-3, 1e-2, 3e-2)  # each setting gets the learning rate that ends best on validation
SCRATCH, FROZEN, TUNED, PCA = ("learned from scratch", "pre-trained (PPMI-SVD), frozen", "pre-trained, fine-tuned",
                               "PCA of one-hot, frozen")


@dataclass(frozen=True)
class Regime:
    """How much labelled data the settings get, and how they train on it."""

    name: str
    train: int
    batch: int
    epochs: int
    settings: tuple[str, ...]


# few labels: many tokens are rare or unseen in the labelled bags; 10× the labels: the scratch embedding sees
# nearly every token, so any remaining gap is speed, not coverage (two settings only, to stay in the time budget)
_REGIMES = (Regime("few labels", 300, 32, 20, (SCRATCH, FROZEN, TUNED, PCA)),
            Regime("10× the labels", 3000, 64, 10, (SCRATCH, TUNED)))


def _tables(task: TokenTask, dim: int) -> dict[str, tuple[torch.Tensor | None, bool]]:
    """Each setting's initial token table (None: nn.Embedding's own N(0, 1)) and whether it stays frozen."""
    train_tokens = task.data.train_x
    pre = standardise(ppmi_svd_embedding(task.corpus, task.vocab, dim), train_tokens)
    pca = standardise(onehot_pca(train_tokens, task.vocab, dim)[0], train_tokens)
    return {SCRATCH: (None, False), FROZEN: (pre, True), TUNED: (pre, False), PCA: (pca, True)}


def _combine(a: str, b: str) -> str:
    """The verdict of a claim made of two parts: the same verdict when they agree, 'with caveats' when one part
    holds and the other does not, else the weaker of the two."""
    if a == b:
        return a
    if FAILS in (a, b) and ({a, b} & {HOLDS, CAVEATS}):
        return CAVEATS
    order = (HOLDS, CAVEATS, UNDECIDED, FAILS)
    return max(a, b, key=order.index)


def _all_some(tests: list[stats.Welch], sign: int) -> str:
    """HOLDS when every test is separable in the direction ``sign`` (-1: the first setting lower), FAILS when every
    one is separable the other way, CAVEATS when only some go the claimed way, else UNDECIDED."""
    good = [w.separable and w.t * sign > 0 for w in tests]
    bad = [w.separable and w.t * sign < 0 for w in tests]
    if all(good):
        return HOLDS
    if all(bad):
        return FAILS
    return CAVEATS if any(good) else UNDECIDED


@dataclass
class _Result:
    """One regime's runs at each setting's chosen learning rate."""

    regime: Regime
    lr: dict  # setting -> the learning rate chosen on validation
    hist: dict  # setting -> [History over seeds]
    level: float  # 95% of the scratch setting's mean final validation accuracy
    tables: dict  # setting -> the first seed's token table after training
    task: TokenTask  # the first seed's task
    unseen: list  # tokens absent from each seed's training bags
    rare: list  # tokens seen fewer than 3 times

    def final(self, name: str) -> list[float]:
        return [h.val_acc[-1] for h in self.hist[name]]

    def epochs(self, name: str) -> list[int]:
        return [epochs_to(h.val_acc, self.level) for h in self.hist[name]]

    def own_epochs(self, name: str) -> list[int]:
        return [epochs_to(h.val_acc, 0.95 * h.val_acc[-1]) for h in self.hist[name]]


def _run_regime(regime: Regime, seeds: list[int]) -> _Result:
    runs: dict[tuple[str, float], list] = {}
    tables: dict[tuple[str, float], torch.Tensor] = {}
    unseen, rare = [], []
    for seed in seeds:
        task = token_task(seed, train=regime.train, **_TASK)
        counts = torch.bincount(task.data.train_x.reshape(-1), minlength=task.vocab)
        unseen.append(int((counts == 0).sum()))
        rare.append(int((counts < 3).sum()))
        if seed == seeds[0]:
            task0 = task
        initial = _tables(task, _DIM)
        for name in regime.settings:
            table, freeze = initial[name]
            for lr in _LRS:
                torch.manual_seed(seed)
                model = BagClassifier(vocab=task.vocab, dim=_DIM, classes=task.groups, table=table, freeze=freeze)
                hist = train_classifier(model, task.data, epochs=regime.epochs, batch_size=regime.batch, lr=lr,
                                        seed=seed)
                runs.setdefault((name, lr), []).append(hist)
                if seed == seeds[0]:
                    tables[(name, lr)] = model.embed.weight.detach().clone()
    mean_final = lambda name, lr: statistics.fmean(h.val_acc[-1] for h in runs[(name, lr)])  # noqa: E731
    lr = {name: max(_LRS, key=lambda r: mean_final(name, r)) for name in regime.settings}
    return _Result(regime, lr, {n: runs[(n, lr[n])] for n in regime.settings},
                   0.95 * mean_final(SCRATCH, lr[SCRATCH]), {n: tables[(n, lr[n])] for n in regime.settings},
                   task0, unseen, rare)


def claim13(lab: Lab) -> Finding:
    """Learned-with-the-network vs pre-trained vs PCA token vectors on a categorical task with hidden groups."""
    with one_thread():  # models of ~1k weights: a second thread only adds synchronisation
        return _claim13(lab)


def _claim13(lab: Lab) -> Finding:
    seeds = lab.seed_list(5)
    few, many = (_run_regime(regime, seeds) for regime in _REGIMES)

    # part 1: pre-trained vectors reach the level the scratch embedding ends at (95% of it) in fewer epochs
    conv_tests = [stats.welch(r.epochs(name), r.epochs(SCRATCH))
                  for r in (few, many) for name in r.regime.settings if name in (FROZEN, TUNED)]
    v_conv = _all_some(conv_tests, -1)
    # part 2: the learned and the pre-trained embedding end above PCA of the one-hot inputs
    pca_tests = [stats.welch(few.final(name), few.final(PCA)) for name in (SCRATCH, FROZEN)]
    expl = pca_explanation(few.task.data.train_x, few.task.vocab, _DIM)
    degenerate = expl["cov_diff"] < 1e-9 and expl["interlace"] < 1e-9 and expl["mass_top2"] >= 0.5
    v_pca = _all_some(pca_tests, +1)
    if v_pca == HOLDS and not degenerate:
        v_pca = CAVEATS  # PCA loses, but not for the reason the explanation gives
    verdict = _combine(v_conv, v_pca)

    mean = lambda values: statistics.fmean(values)  # noqa: E731
    why = (f"Part 1 (pre-training speeds convergence) {v_conv}: pre-trained vectors reach 95% of the scratch "
           f"embedding's final validation accuracy in {mean(few.epochs(FROZEN)):.1f} (frozen) and "
           f"{mean(few.epochs(TUNED)):.1f} (fine-tuned) epochs against {mean(few.epochs(SCRATCH)):.1f} from "
           f"scratch with {few.regime.train} labelled bags, where scratch also ends lower "
           f"({mean(few.final(SCRATCH)):.0%} vs {mean(few.final(TUNED)):.0%}), and in "
           f"{mean(many.epochs(TUNED)):.1f} against {mean(many.epochs(SCRATCH)):.1f} with {many.regime.train}; "
           f"part 2 (embedding beats PCA) {v_pca}: PCA of the one-hot inputs ends at {mean(few.final(PCA)):.0%}, "
           f"its {_DIM} components putting {expl['mass_top2']:.0%} of their weight on the {2 * _DIM} most "
           f"frequent tokens; the verdict combines the two parts")

    evidence = _setup_lines(few, many, seeds)
    for r in (few, many):
        evidence += _regime_table(r)
    evidence += [
        f"- Part 1, convergence ({v_conv}): epochs to 95% of scratch's final val acc, with "
        f"{few.regime.train} labels: "
        + stats.compare("frozen", few.epochs(FROZEN), "scratch", few.epochs(SCRATCH), scale=1, unit="", digits=1)
        + "; " + stats.compare("fine-tuned", few.epochs(TUNED), "scratch", few.epochs(SCRATCH), scale=1, unit="",
                               digits=1)
        + f"; with {many.regime.train} labels: "
        + stats.compare("fine-tuned", many.epochs(TUNED), "scratch", many.epochs(SCRATCH), scale=1, unit="",
                        digits=1) + ".",
        "- Final val acc, fine-tuned vs scratch: "
        + stats.compare(f"{few.regime.train} labels", few.final(TUNED), "scratch", few.final(SCRATCH)) + "; "
        + stats.compare(f"{many.regime.train} labels", many.final(TUNED), "scratch", many.final(SCRATCH)) + ".",
        f"- Part 2, embedding vs PCA ({v_pca}): final val acc "
        + stats.compare("learned from scratch", few.final(SCRATCH), "PCA", few.final(PCA)) + "; "
        + stats.compare("pre-trained frozen", few.final(FROZEN), "PCA", few.final(PCA)) + ".",
        "",
    ]
    evidence += _pca_lines(few, expl, seeds[0])
    plots = [_plot_curves(lab, (few, many)), _plot_kept(lab, expl)]
    return Finding(verdict, why, evidence, plots)


def _setup_lines(few: _Result, many: _Result, seeds: list[int]) -> list[str]:
    t = few.task
    return [
        f"Task: V = {t.vocab} tokens in {t.groups} hidden groups (token v in group v mod {t.groups}), Zipf "
        f"frequencies over a random ranking; a labelled input is a bag of {_TASK['bag']} tokens, "
        f"{_TASK['majority']} from the label's group and the others from other groups (the label is the majority "
        f"group; {_TASK['val']} validation and {_TASK['test']} test bags); {_TASK['corpus']:,} unlabelled "
        f"sequences of {_TASK['length']} tokens, each token on the sequence's group with probability "
        f"{_TASK['purity']}. With {few.regime.train} labelled bags, {statistics.fmean(few.unseen):.0f} of the "
        f"{t.vocab} tokens never occur in training and {statistics.fmean(few.rare):.0f} fewer than 3 times; with "
        f"{many.regime.train}, {statistics.fmean(many.unseen):.0f} and {statistics.fmean(many.rare):.0f} (means "
        "over the seeds).",
        f"Model: the d = {_DIM} token vectors, averaged over the bag, into a 2-layer MLP (32 hidden); AdamW, cosine "
        f"schedule; each setting at the learning rate of {_LRS} that ends best on validation; {len(seeds)} seeds "
        "(each its own data draw and initialisation). Frozen tables are standardised so the training tokens' codes "
        "have mean 0 and variance 1 in each dimension, as nn.Embedding's N(0, 1) start has. A run that never "
        "reaches a level counts as one epoch more than it trained; 1 epoch means the level was reached by the "
        "first evaluation, the finest this measures, so a gap of an epoch or less is a lower bound.",
        "",
    ]


def _spread(values, scale: float = 100.0, digits: int = 2) -> str:
    return stats.Spread(tuple(float(v) for v in values)).fmt(scale, digits)


def _regime_table(r: _Result) -> list[str]:
    spread = _spread
    lines = [f"{r.regime.name}: {r.regime.train} labelled bags, {r.regime.epochs} epochs of batches of "
             f"{r.regime.batch}; level = 95% of scratch's final = {r.level:.1%}.", "",
             "| setting | lr | final val acc % | test acc % | epochs to the level | epochs to 95% of own final |",
             "|---|---|---|---|---|---|"]
    for name in r.regime.settings:
        lines.append(f"| {name} | {r.lr[name]:g} | {spread(r.final(name))} | "
                     f"{spread([h.test_acc for h in r.hist[name]])} | {spread(r.epochs(name), 1, 1)} | "
                     f"{spread(r.own_epochs(name), 1, 1)} |")
    return lines + [""]


def _pca_lines(few: _Result, expl: dict, seed: int) -> list[str]:
    t = few.task
    lines = [
        f"Why PCA of one-hot data is degenerate (seed {seed}'s {t.data.train_x.numel():,} training tokens): a "
        "one-hot x = e_t has x xᵀ = diag(x), so its covariance is diag(p) − p pᵀ, with p the token frequencies; "
        "a diagonal minus a rank-one term has eigenvalues interlacing the sorted frequencies, "
        "p₍ᵢ₊₁₎ ≤ λᵢ ≤ p₍ᵢ₎, and eigenvectors close to single tokens. Co-occurrence never enters it.",
        "",
        "| check | value |",
        "|---|---|",
        f"| max abs (numpy covariance of the one-hot matrix − (diag(p) − p pᵀ)) | "
        f"{expl['cov_diff']:.1e} |",
        f"| largest violation of p₍ᵢ₊₁₎ ≤ λᵢ ≤ p₍ᵢ₎ over the top {_DIM} | {expl['interlace']:.1e} |",
        f"| share of the components' squared loadings on the {_DIM} / {2 * _DIM} most frequent tokens "
        f"(≈ {_DIM / t.vocab:.2f} / {2 * _DIM / t.vocab:.2f} for directions blind to frequency) | "
        f"{expl['mass_top']:.2f} / {expl['mass_top2']:.2f} |",
        f"| mean largest squared loading of a component (1 = a single token) | {expl['peak_loading']:.2f} |",
        f"| Σ over tokens of the share of e_v − p kept by the {_DIM} components | {expl['kept_sum']:.1f} tokens' "
        "worth |",
        f"| mean share kept for the {_DIM} most frequent tokens | {expl['kept_top']:.2f} |",
        f"| largest share kept for a token ranked below {2 * _DIM} | {expl['kept_rest']:.2f} |",
        "",
        f"Do tokens of a group get similar vectors? Share of each token's 5 nearest tokens (cosine) in its own "
        f"group, seed {seed}, {few.regime.train} labels (chance ≈ {(t.vocab / t.groups - 1) / (t.vocab - 1):.2f}):",
        "",
        "| token vectors | all tokens | tokens seen ≥ 5 times in training |",
        "|---|---|---|",
    ]
    return lines + [f"| {name} | {a:.2f} | {b:.2f} |" for name, (a, b) in _agreements(few).items()]


def _agreements(r: _Result) -> dict[str, tuple[float, float]]:
    """Group agreement of each setting's token vectors after training, and of two untrained PCA variants."""
    t = r.task
    seen = torch.bincount(t.data.train_x.reshape(-1), minlength=t.vocab) >= 5
    both = lambda table: (group_agreement(table, t.group), group_agreement(table[seen], t.group[seen]))  # noqa: E731
    out = {f"{name}, after training": both(r.tables[name]) for name in r.regime.settings}
    bags = F.one_hot(t.data.train_x, t.vocab).sum(1).double()  # (N, V): the bags' count vectors
    _, _, vh = torch.linalg.svd(bags - bags.mean(0), full_matrices=False)  # PCA of multi-hot bags = LSA on them
    more = t.corpus.numel() / t.data.train_x.numel()
    out[f"PCA of the corpus's one-hot tokens ({more:.0f}× the data)"] = both(onehot_pca(t.corpus, t.vocab, _DIM)[0])
    out["PCA of the training bags' count vectors (not one-hot)"] = both(vh[:_DIM].T)
    return out


def _plot_curves(lab: Lab, results) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(10, 3.8))
    for ax, r in zip(axes, results):
        for name in r.regime.settings:
            acc = torch.tensor([h.val_acc for h in r.hist[name]])  # (seeds, epochs)
            mean, std = acc.mean(0), acc.std(0)
            x = range(1, acc.shape[1] + 1)
            ax.plot(x, mean, label=f"{name} (lr {r.lr[name]:g})")
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        ax.axhline(r.level, color="grey", ls=":", lw=1, label=f"{r.level:.1%}: 95% of scratch's final")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"{r.regime.name} ({r.regime.train} bags), mean ± std over seeds", fontsize=9)
        ax.legend(fontsize=7)
    return savefig(fig, lab, "claim13_curves.png")


def _plot_kept(lab: Lab, expl: dict) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.scatter(expl["rank"], expl["kept"], s=8)
    ax.axvline(_DIM + 0.5, color="grey", ls=":", lw=1, label=f"the {_DIM} most frequent tokens")
    ax.set_xscale("log")
    ax.set_xlabel("token frequency rank in the training bags")
    ax.set_ylabel(f"share of e_v − p kept by {_DIM} PCs")
    ax.set_title("PCA of one-hot tokens keeps only the most frequent ones", fontsize=9)
    ax.legend(fontsize=7)
    return savefig(fig, lab, "claim13_pca.png")
