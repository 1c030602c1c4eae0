"""InfoNCE / NT-Xent (vitlab/losses.py) against a looped reference, hand-worked values and its gradient."""
from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from vitlab.losses import InfoNCE, info_nce, info_nce_from_similarities, negative_weights, similarities


def _unit(v: torch.Tensor) -> list[float]:
    norm = math.sqrt(sum(float(x) ** 2 for x in v))
    return [float(x) / norm for x in v]


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def _reference_logit_rows(z1, z2, tau, queue=None):
    """For each anchor i: (positive logit, [negative logits]), written from SimCLR eq. 1 with loops."""
    n = len(z1)
    views = [_unit(v) for v in z1] + [_unit(v) for v in z2]  # anchors 0..N-1 view 1, N..2N-1 view 2
    extra = [] if queue is None else [_unit(q) for q in queue]
    rows = []
    for i in range(2 * n):
        pos = (i + n) % (2 * n)  # the other view of the same sample
        negatives = [_dot(views[i], views[j]) / tau for j in range(2 * n) if j not in (i, pos)]
        negatives += [_dot(views[i], q) / tau for q in extra]
        rows.append((_dot(views[i], views[pos]) / tau, negatives))
    return rows


def reference_info_nce(z1, z2, tau, queue=None) -> float:
    total = 0.0
    rows = _reference_logit_rows(z1, z2, tau, queue)
    for pos, negatives in rows:
        shift = max([pos] + negatives)  # log-sum-exp without overflow at small tau
        denominator = math.exp(pos - shift) + sum(math.exp(s - shift) for s in negatives)
        total += -(pos - shift - math.log(denominator))
    return total / len(rows)


def reference_negative_weights(z1, z2, tau, queue=None) -> list[list[float]]:
    """Per anchor, softmax over its negatives only, in the order the reference lists them."""
    out = []
    for _, negatives in _reference_logit_rows(z1, z2, tau, queue):
        shift = max(negatives)
        e = [math.exp(s - shift) for s in negatives]
        out.append([x / sum(e) for x in e])
    return out


def _views(n, d, k=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64)
    z2 = z1 + 0.7 * torch.randn(n, d, generator=g, dtype=torch.float64)  # correlated, like two views
    queue = torch.randn(k, d, generator=g, dtype=torch.float64) * 3 if k else None
    return z1, z2, queue


@pytest.mark.parametrize("n,d,k", [(1, 3, 0), (2, 2, 0), (3, 5, 0), (8, 16, 0), (4, 8, 6), (1, 4, 3), (5, 3, 17)])
@pytest.mark.parametrize("tau", [0.05, 0.2, 1.0, 3.0])
def test_equals_looped_reference(n, d, k, tau):
    z1, z2, queue = _views(n, d, k, seed=n * 100 + d + k)
    expected = reference_info_nce(z1, z2, tau, queue)
    torch.testing.assert_close(info_nce(z1, z2, tau, queue=queue).item(), expected, rtol=1e-12, atol=1e-12)
    # float32 input: same value to float32 precision
    got32 = info_nce(z1.float(), z2.float(), tau, queue=None if queue is None else queue.float())
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.item(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_hand_worked_values(tau):
    """N = 2, D = 2, cosine similarities all in {0, ±1}; the rows are scaled to test normalisation.

    z1 = (e1, e2), z2 = (e2, −e1), so each positive pair is orthogonal (s = 0).
      anchor z1[0] = e1:  negatives z1[1] = e2 (0), z2[1] = −e1 (−1)  -> log(2 + e^(−1/τ))
      anchor z1[1] = e2:  negatives z1[0] = e1 (0), z2[0] = e2 (+1)   -> log(2 + e^(1/τ))
      anchor z2[0] = e2:  negatives z1[1] = e2 (+1), z2[1] = −e1 (0)  -> log(2 + e^(1/τ))
      anchor z2[1] = −e1: negatives z1[0] = e1 (−1), z2[0] = e2 (0)   -> log(2 + e^(−1/τ))
    (−log(e^0 / (e^0 + e^a + e^b)) = log(1 + e^a + e^b).)
    """
    f64 = dict(dtype=torch.float64)  # at τ = 0.1 the loss is ~1e-4, below float32's resolution of log(1 + x)
    z1 = torch.tensor([[3.0, 0.0], [0.0, 0.5]], **f64)
    z2 = torch.tensor([[0.0, 2.0], [-7.0, 0.0]], **f64)
    expected = (math.log(2 + math.exp(-1 / tau)) + math.log(2 + math.exp(1 / tau))) / 2
    assert info_nce(z1, z2, tau).item() == pytest.approx(expected, rel=1e-12)

    # Aligned views z1 = z2 = (e1, e2) and a queue holding −e1:
    #   anchors e1 (x2): positive +1, negatives e2 (0), e2 (0), −e1 (−1)
    #       -> log(1 + 2e^(−1/τ) + e^(−2/τ)) = 2 log(1 + e^(−1/τ))
    #   anchors e2 (x2): positive +1, negatives e1 (0), e1 (0), −e1 (0) -> log(1 + 3e^(−1/τ))
    aligned = torch.tensor([[1.0, 0.0], [0.0, 4.0]], **f64)
    queue = torch.tensor([[-2.0, 0.0]], **f64)
    expected = math.log(1 + math.exp(-1 / tau)) + math.log(1 + 3 * math.exp(-1 / tau)) / 2
    assert info_nce(aligned, 2 * aligned, tau, queue=queue).item() == pytest.approx(expected, rel=1e-12)
    expected = math.log(1 + 2 * math.exp(-1 / tau))  # same, no queue: every anchor has two 0-negatives
    assert info_nce(aligned, aligned, tau).item() == pytest.approx(expected, rel=1e-12)


def test_one_pair_without_queue_has_no_negatives_and_zero_loss():
    z1, z2, _ = _views(1, 4)
    assert info_nce(z1, z2, 0.1).item() == 0.0


@pytest.mark.parametrize("n,d,k", [(2, 3, 0), (6, 8, 0), (4, 5, 9)])
def test_symmetric_in_the_two_views(n, d, k):
    z1, z2, queue = _views(n, d, k)
    torch.testing.assert_close(info_nce(z1, z2, 0.3, queue), info_nce(z2, z1, 0.3, queue), rtol=1e-12, atol=0)


def test_invariant_to_scaling_embeddings():
    z1, z2, queue = _views(6, 8, 5)
    g = torch.Generator().manual_seed(1)
    scale = lambda z: z * torch.rand(z.shape[0], 1, generator=g, dtype=z.dtype).mul(10).add(0.01)  # noqa: E731
    expected = info_nce(z1, z2, 0.2, queue)
    torch.testing.assert_close(info_nce(scale(z1), scale(z2), 0.2, scale(queue)), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("n,k", [(3, 0), (4, 5)])
@pytest.mark.parametrize("tau", [0.1, 0.7])
def test_gradient_with_respect_to_similarities(n, k, tau):
    """d loss / d s_ij, worked out by hand, with the similarity matrix as a leaf tensor.

    loss = (1/2N) Σ_i [ −s_i,p(i)/τ + log Σ_{j≠i} exp(s_ij/τ) ], so with
    P_ij = exp(s_ij/τ) / Σ_{j'≠i} exp(s_ij'/τ) (softmax over positive and negatives):
      d loss / d s_ij    = P_ij / (2Nτ)              for a negative j,
      d loss / d s_i,p(i) = (P_i,p(i) − 1) / (2Nτ)   for the positive,
      d loss / d s_ii    = 0                         (masked out).
    A negative's P_ij is (1 − P_i,p(i)) · w_ij, w_ij = exp(s_ij/τ) / Σ_negatives (the hardness
    weight of negative_weights), so the push on negative j is (1 − P_i,p(i)) · w_ij / (2Nτ).
    (Per logit l = s/τ the constants lose the 1/τ: P_ij / (2N) and (P_i,p(i) − 1) / (2N).)
    """
    z1, z2, queue = _views(n, 6, k, seed=7)
    sim = similarities(z1, z2, queue).detach().requires_grad_(True)  # (2N, 2N + K), a leaf
    info_nce_from_similarities(sim, tau).backward()
    weights = negative_weights(z1, z2, tau, queue)
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        exps = {j: math.exp(sim[i, j].item() / tau) for j in range(sim.shape[1]) if j != i}
        total = sum(exps.values())
        p_pos = exps[pos] / total
        assert sim.grad[i, i].item() == 0.0
        assert sim.grad[i, pos].item() == pytest.approx((p_pos - 1) / (2 * n * tau), rel=1e-9)
        negative_total = total - exps[pos]
        for j in exps:
            if j == pos:
                continue
            assert sim.grad[i, j].item() == pytest.approx(exps[j] / total / (2 * n * tau), rel=1e-9)
            w = exps[j] / negative_total
            assert weights[i, j].item() == pytest.approx(w, rel=1e-9)
            assert sim.grad[i, j].item() == pytest.approx((1 - p_pos) * w / (2 * n * tau), rel=1e-9)
        assert sum(sim.grad[i].tolist()) == pytest.approx(0.0, abs=1e-12)  # softmax minus one-hot


def test_gradient_with_respect_to_embeddings_matches_finite_differences():
    z1, z2, queue = _views(3, 4, 2, seed=3)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, 0.3, queue), (z1, z2))


@pytest.mark.parametrize("n,d,k", [(2, 3, 0), (5, 4, 0), (3, 6, 4)])
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_negative_weights_equal_reference(n, d, k, tau):
    z1, z2, queue = _views(n, d, k, seed=11)
    weights = negative_weights(z1, z2, tau, queue)
    assert weights.shape == (2 * n, 2 * n + k)
    expected = reference_negative_weights(z1, z2, tau, queue)
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        assert weights[i, i].item() == 0.0 and weights[i, pos].item() == 0.0
        negatives = [weights[i, j].item() for j in range(2 * n + k) if j not in (i, pos)]  # reference order
        assert negatives == pytest.approx(expected[i], rel=1e-10)
        assert sum(negatives) == pytest.approx(1.0, rel=1e-12)


def test_negative_weights_need_a_negative():
    z1, z2, _ = _views(1, 3)
    with pytest.raises(ValueError, match="no negatives"):
        negative_weights(z1, z2, 0.1)


BAD_TEMPERATURES = [0.0, -0.5, float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("tau", BAD_TEMPERATURES)
def test_bad_temperature_raises_naming_it(tau):
    z1, z2, _ = _views(2, 3)
    message = re.escape(f"got {tau!r}")
    with pytest.raises(ValueError, match=message):
        InfoNCE(temperature=tau)
    with pytest.raises(ValueError, match=message):
        info_nce(z1, z2, tau)
    with pytest.raises(ValueError, match=message):
        negative_weights(z1, z2, tau)
    with pytest.raises(ValueError, match=message):
        info_nce_from_similarities(similarities(z1, z2), tau)


def test_mismatched_shapes_raise_naming_both():
    with pytest.raises(ValueError, match=re.escape("z1 (4, 8) and z2 (4, 7)")):
        info_nce(torch.randn(4, 8), torch.randn(4, 7), 0.1)
    with pytest.raises(ValueError, match=re.escape("z1 (4, 8) and z2 (3, 8)")):
        info_nce(torch.randn(4, 8), torch.randn(3, 8), 0.1)
    with pytest.raises(ValueError, match=re.escape("z1 (8,) and z2 (8,)")):
        info_nce(torch.randn(8), torch.randn(8), 0.1)
    with pytest.raises(ValueError, match=re.escape("queue (5, 7) for z1 (4, 8)")):
        info_nce(torch.randn(4, 8), torch.randn(4, 8), 0.1, queue=torch.randn(5, 7))


@pytest.mark.parametrize("queue_size", [-1, 2.5, True, "8"])
def test_bad_queue_size_raises(queue_size):
    with pytest.raises(ValueError, match=re.escape(f"got {queue_size!r}")):
        InfoNCE(temperature=0.1, queue_size=queue_size)


def test_queue_is_fifo_of_the_last_k_second_views():
    k, m, d, tau = 5, 3, 4, 0.2
    loss_fn = InfoNCE(temperature=tau, queue_size=k).train()
    assert loss_fn.queue is None
    batches = [_views(m, d, seed=s)[:2] for s in range(3)]
    for z1, z2 in batches:
        z2.requires_grad_(True)
    seen = []  # every second view pushed so far, oldest first, as unit rows
    for step, (z1, z2) in enumerate(batches):
        loss = loss_fn(z1, z2)
        # the loss used the queue as it was *before* this batch: the last K of what came earlier
        expected_queue = torch.stack(seen[-k:]) if seen else None
        assert loss.item() == pytest.approx(reference_info_nce(z1, z2.detach(), tau, expected_queue), rel=1e-12)
        seen += list(F.normalize(z2.detach(), dim=1))
        assert loss_fn.queue.shape == (min(k, (step + 1) * m), d)
        torch.testing.assert_close(loss_fn.queue, torch.stack(seen[-k:]), rtol=0, atol=0)
        assert not loss_fn.queue.requires_grad
    # 3 batches of 3 = 9 samples, K = 5: the queue holds batch 1's last two rows and all of batch 2,
    # in order (written out independently of `seen`)
    expected = F.normalize(torch.cat([batches[1][1][1:], batches[2][1]]).detach(), dim=1)
    torch.testing.assert_close(loss_fn.queue, expected, rtol=0, atol=0)

    before = loss_fn.queue.clone()  # eval mode: uses the queue, does not push
    z1, z2, _ = _views(m, d, seed=42)
    loss = loss_fn.eval()(z1, z2)
    torch.testing.assert_close(loss_fn.queue, before, rtol=0, atol=0)
    assert loss.item() == pytest.approx(reference_info_nce(z1, z2, tau, before), rel=1e-12)


def test_queue_keeps_last_k_of_a_batch_larger_than_k():
    loss_fn = InfoNCE(temperature=0.5, queue_size=4)
    z1, z2, _ = _views(7, 3)
    loss_fn(z1, z2)
    torch.testing.assert_close(loss_fn.queue, F.normalize(z2[3:], dim=1), rtol=0, atol=0)


def test_without_queue_module_equals_reference_and_stores_nothing():
    loss_fn = InfoNCE(temperature=0.3)
    for seed in range(2):
        z1, z2, _ = _views(4, 6, seed=seed)
        assert loss_fn(z1, z2).item() == pytest.approx(reference_info_nce(z1, z2, 0.3), rel=1e-12)
    assert loss_fn.queue is None
    assert "queue" not in loss_fn.state_dict()
