"""Claims 6 and 13's checks and helpers against hand-worked numbers and independent references (not the
experiment itself, which is slow)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitlab.analysis.claims import CAVEATS, FAILS, HOLDS, UNDECIDED, Lab, stats
from vitlab.analysis.claims import embedding as E


# -- claim 6 ----------------------------------------------------------------------------------------------------

def test_onehot_diff_is_zero_for_nn_embedding():
    torch.manual_seed(0)
    emb = nn.Embedding(20, 4)
    idx = torch.tensor([[0, 3, 3, 7], [7, 7, 1, 0]])
    diff = E.onehot_diff(emb, idx, torch.randn(2, 4, 4))
    assert diff.forward == 0.0
    assert max(diff.grad, diff.grad_unseen, diff.grad_repeat) < 1e-6


def test_embedding_gradient_is_a_scatter_add_by_hand():
    emb = nn.Embedding(3, 1)
    emb(torch.tensor([0, 0, 2])).mul(torch.tensor([[1.0], [2.0], [5.0]])).sum().backward()
    assert emb.weight.grad.view(-1).tolist() == [3.0, 0.0, 5.0]  # token 0 twice: 1 + 2; token 1 unseen: 0


class _Shifted(nn.Embedding):
    """A wrong embedding: looks up the next token's row."""

    def forward(self, idx):
        return super().forward((idx + 1) % self.num_embeddings)


def test_onehot_diff_catches_a_wrong_lookup_and_padding_idx():
    torch.manual_seed(0)
    idx = torch.tensor([1, 2, 2, 5])
    grad = torch.randn(4, 3)
    assert E.onehot_diff(_Shifted(8, 3), idx, grad).forward > 0.1
    padded = E.onehot_diff(nn.Embedding(8, 3, padding_idx=2), idx, grad)
    assert padded.forward == 0.0 and padded.grad > 0.1  # the padding row's gradient is dropped


def test_claim6_holds_and_fails_for_a_wrong_embedding(tmp_path, monkeypatch):
    lab = Lab(out=tmp_path, runs=tmp_path / "runs")
    monkeypatch.setattr(E, "lookup_cost", lambda **kw: {"lookup_macs": 0.0, "onehot_macs": 1.0, "lookup_s": 1.0,
                                                        "onehot_s": 2.0})
    assert E.claim6(lab).verdict == HOLDS
    monkeypatch.setattr(E.nn, "Embedding", _Shifted)
    assert E.claim6(lab).verdict == FAILS


def test_lookup_cost_counts_multiply_adds():
    cost = E.lookup_cost(vocab=10, dim=3, tokens=4)
    assert cost["lookup_macs"] == 0 and cost["onehot_macs"] == 4 * 10 * 3


# -- claim 13: the task ----------------------------------------------------------------------------------------

def _small(seed=0, **kw):
    args = dict(vocab=30, groups=3, bag=5, majority=3, train=40, val=20, test=10, corpus=50, length=6)
    return E.token_task(seed, **{**args, **kw})


def test_token_task_shapes_groups_and_frequencies():
    t = _small()
    assert t.data.train_x.shape == (40, 5) and t.data.val_x.shape == (20, 5) and t.data.test_x.shape == (10, 5)
    assert t.data.train_y.shape == (40,) and t.corpus.shape == (50, 6)
    assert t.vocab == 30 and t.groups == 3
    assert t.group.tolist() == [v % 3 for v in range(30)]
    assert torch.bincount(t.group).tolist() == [10, 10, 10]
    assert float(t.freq.sum()) == pytest.approx(1.0)
    ranked = t.freq.sort(descending=True).values
    assert float(ranked[0] / ranked[9]) == pytest.approx(10.0)  # Zipf, exponent 1: rank 1 vs rank 10


def test_token_task_label_is_the_strict_majority_group():
    t = _small()
    for x, y in [(t.data.train_x, t.data.train_y), (t.data.val_x, t.data.val_y), (t.data.test_x, t.data.test_y)]:
        counts = F.one_hot(t.group[x], 3).sum(1)  # (N, G): tokens of each group in each bag
        assert (counts.gather(1, y.view(-1, 1)).view(-1) == 3).all()  # exactly `majority` from the label's group
        others = counts.scatter(1, y.view(-1, 1), 0)
        assert (others.max(1).values < 3).all()


def test_token_task_corpus_groups_co_occur():
    pure = _small(purity=1.0)
    assert all(len(set(pure.group[s].tolist())) == 1 for s in pure.corpus)  # each sequence on one group
    mixed = _small(purity=0.0, corpus=400)
    same = (mixed.group[mixed.corpus][:, :1] == mixed.group[mixed.corpus][:, 1:]).double().mean()
    assert 0.2 < float(same) < 0.5  # about 1/3 for three groups when nothing ties tokens to a topic


def test_token_task_is_deterministic_for_a_seed():
    a, b, c = _small(3), _small(3), _small(4)
    assert torch.equal(a.data.train_x, b.data.train_x) and torch.equal(a.corpus, b.corpus)
    assert torch.equal(a.freq, b.freq)
    assert not torch.equal(a.data.train_x, c.data.train_x)


def test_token_task_rejects_a_bag_without_a_majority():
    with pytest.raises(ValueError, match="majority"):
        E.token_task(0, bag=4, majority=2)
    with pytest.raises(ValueError, match="divisible"):
        E.token_task(0, vocab=10, groups=3)


# -- claim 13: the token vectors ---------------------------------------------------------------------------------

def test_onehot_pca_by_hand_two_tokens():
    # p = (3/4, 1/4): covariance diag(p) - p pᵀ = 3/16 [[1, -1], [-1, 1]], eigenvalues 3/8 and 0
    codes, comps, eigval = E.onehot_pca(torch.tensor([0, 0, 0, 1]), vocab=2, dim=1)
    assert eigval.tolist() == pytest.approx([0.375, 0.0], abs=1e-12)
    assert comps.abs().view(-1).tolist() == pytest.approx([2 ** -0.5] * 2)
    # code of e_0: (e_0 - p) · w = ±(1/4 + 1/4)/√2; of e_1: ∓(3/4 + 3/4)/√2
    assert codes.abs().view(-1).tolist() == pytest.approx([0.5 / 2 ** 0.5, 1.5 / 2 ** 0.5])


def test_onehot_pca_matches_sklearn():
    from sklearn.decomposition import PCA

    tokens = torch.cat([torch.full((v + 1,), v) for v in range(12)])  # distinct counts: distinct eigenvalues
    codes, _, eigval = E.onehot_pca(tokens, vocab=12, dim=4)
    onehot = F.one_hot(tokens, 12).double().numpy()
    pca = PCA(n_components=4).fit(onehot)
    ref = torch.from_numpy(pca.transform(torch.eye(12, dtype=torch.float64).numpy()))
    signs = torch.sign((codes * ref).sum(0))
    assert (codes * signs - ref).abs().max() < 1e-9
    n = len(tokens)
    assert eigval[:4].tolist() == pytest.approx((pca.explained_variance_ * (n - 1) / n).tolist())


def test_pca_explanation_on_zipf_tokens():
    t = E.token_task(0, train=300)
    expl = E.pca_explanation(t.data.train_x, t.vocab, 8)
    assert expl["cov_diff"] < 1e-12 and expl["interlace"] < 1e-12
    assert expl["mass_top2"] > 0.9 and expl["kept_rest"] < 0.1  # the components are frequent tokens


def test_ppmi_svd_groups_co_occurring_tokens():
    g = torch.Generator().manual_seed(0)
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    topic = torch.randint(2, (200,), generator=g)
    corpus = 3 * topic.view(-1, 1) + torch.randint(3, (200, 4), generator=g)  # tokens 0-2 or 3-5 together
    table = E.ppmi_svd_embedding(corpus, vocab=6, dim=2)
    assert table.shape == (6, 2)
    assert E.group_agreement(table, groups, k=2) == 1.0
    assert E.group_agreement(E.onehot_pca(corpus, 6, 2)[0], groups, k=2) < 1.0


def test_group_agreement_by_hand():
    groups = torch.tensor([0, 0, 1, 1])
    together = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    apart = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])  # each token's nearest: other group
    assert E.group_agreement(together, groups, k=1) == 1.0
    assert E.group_agreement(apart, groups, k=1) == 0.0


def test_standardise_gives_unit_codes():
    torch.manual_seed(0)
    table = torch.randn(10, 3) * 5 + 2
    tokens = torch.tensor([0, 1, 1, 4, 7, 9, 9, 9])
    codes = E.standardise(table, tokens)[tokens]
    assert codes.mean(0).abs().max() < 1e-6 and (codes.std(0) - 1).abs().max() < 1e-5


def test_bag_classifier_shape_and_frozen_table():
    table = torch.randn(10, 4)
    model = E.BagClassifier(vocab=10, dim=4, classes=3, table=table, freeze=True)
    out = model(torch.tensor([[1, 2, 3], [4, 4, 4]]))
    assert out.shape == (2, 3)
    out.sum().backward()
    assert model.embed.weight.grad is None and torch.equal(model.embed.weight, table)
    with pytest.raises(ValueError, match="shape"):
        E.BagClassifier(vocab=10, dim=4, classes=3, table=torch.zeros(10, 5))


def test_epochs_to():
    assert E.epochs_to([0.1, 0.5, 0.9], 0.5) == 2
    assert E.epochs_to([0.1, 0.5, 0.9], 0.95) == 4  # never reached: one more than trained


# -- claim 13: the verdict logic ---------------------------------------------------------------------------------

def test_all_some_and_combine():
    lower, higher, same = stats.welch([1, 1.1, 0.9], [5, 5.2, 4.8]), stats.welch([5, 5.1, 4.9], [1, 1.2, 0.8]), \
        stats.welch([1, 2, 3], [1.5, 2.5, 2])
    assert E._all_some([lower, lower], -1) == HOLDS
    assert E._all_some([lower, same], -1) == CAVEATS
    assert E._all_some([same, same], -1) == UNDECIDED
    assert E._all_some([higher, higher], -1) == FAILS
    assert E._all_some([higher, higher], +1) == HOLDS
    assert E._combine(HOLDS, HOLDS) == HOLDS
    assert E._combine(HOLDS, FAILS) == CAVEATS
    assert E._combine(FAILS, FAILS) == FAILS
    assert E._combine(HOLDS, UNDECIDED) == UNDECIDED
    assert E._combine(CAVEATS, HOLDS) == CAVEATS
