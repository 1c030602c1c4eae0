"""vitlab/data/segmentation.py: digit canvases with per-pixel labels."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from vitlab.config import DataConfig, SegmentConfig
from vitlab.data import load_data
from vitlab.data.segmentation import NUM_CLASSES, compose, enlarge, load_segmentation

SMALL = SegmentConfig(canvas=24, max_digits=3, scale=1, train_images=40, val_images=10, test_images=20, data_seed=3)
DATA = DataConfig()


@pytest.fixture(scope="module")
def bunch():
    return load_digits()


@pytest.fixture(scope="module")
def sets():
    return load_segmentation(SMALL, DATA, placements=True)


def test_shapes_and_dtypes(sets):
    (train, val, test), _ = sets
    assert train.images.shape == (40, 1, 24, 24) and train.images.dtype == torch.uint8
    assert val.labels.shape == (10, 24, 24) and test.labels.shape == (20, 24, 24) and test.labels.dtype == torch.int64
    assert int(train.labels.min()) >= 0 and int(train.labels.max()) < NUM_CLASSES
    assert train.classes[0] == "background" and len(train.classes) == NUM_CLASSES


def test_deterministic_from_the_seed(sets):
    again = load_segmentation(SMALL, DATA, placements=True)
    for a, b in zip(sets[0], again[0]):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    for a, b in zip(sets[1], again[1]):
        assert torch.equal(a, b)
    other = load_segmentation(SegmentConfig(**{**SMALL.__dict__, "data_seed": 4}), DATA).train
    assert not torch.equal(other.images, sets[0].train.images)


def test_labels_only_on_strokes_and_classes_match_sklearn(sets, bunch):
    """Disjoint placement: each digit's box carries class + 1 exactly where its value > threshold."""
    for split, placements in zip(*sets):
        covered = torch.zeros_like(split.labels, dtype=torch.bool)
        for i in range(len(split)):
            for index, cls, top, left in placements[i].tolist():
                if index < 0:
                    continue
                assert cls == bunch.target[index]  # the class placed is sklearn's label
                digit = torch.from_numpy(bunch.images[index])  # (8, 8), 0..16
                box = split.labels[i, top:top + 8, left:left + 8]
                stroke = digit > SMALL.threshold
                assert torch.all(box[stroke] == cls + 1)
                assert torch.all(box[~stroke] == 0)
                pixels = split.images[i, 0, top:top + 8, left:left + 8]
                assert torch.equal(pixels, torch.round(digit * 255 / 16).to(torch.uint8))
                covered[i, top:top + 8, left:left + 8] = True
        # outside every digit's box: background, black
        assert torch.all(split.labels[~covered] == 0)
        assert torch.all(split.images[:, 0][~covered] == 0)


def test_each_split_uses_only_its_own_digits(sets, bunch):
    """Validation and test canvases show only digits the model never trained on: exactly the digits of the
    digits source's own validation and test splits (the same split every digits task uses)."""
    used = [{i for i in p[..., 0].flatten().tolist() if i >= 0} for p in sets[1]]
    assert all(used) and not used[0] & used[1] and not used[0] & used[2] and not used[1] & used[2]
    splits = load_data(DATA)  # the classification splits, as images: find each digit's index in sklearn's set
    index = {bunch.images[i].tobytes(): i for i in range(len(bunch.images)) if not (bunch.images[i] == 0).all()}
    for u, split in zip(used, splits):
        ids = {index.get((split.images[j, 0].numpy().astype(float) * 16 / 255).round().tobytes()) for j in
               range(len(split))}
        assert u <= ids


def test_max_combine_and_enlarge(bunch):
    digits, labels = bunch.images[:50], bunch.target[:50]
    s, _ = compose(digits, labels, n_images=10, canvas=16, max_digits=3, scale=2, combine="max", seed=1)
    assert s.images.shape == (10, 1, 16, 16)
    values = s.images[:, 0].float() * 16 / 255
    assert torch.all(s.labels[values <= 4.0 - 0.1] == 0)  # background wherever the maximum is not stroke
    assert torch.all(s.labels[values > 4.0 + 0.1] > 0)
    big = enlarge(digits[:2], 2, "nearest")
    assert big.shape == (2, 16, 16) and np.array_equal(big[:, ::2, ::2], digits[:2].astype(np.float32))
    assert enlarge(digits[:2], 2, "bilinear").shape == (2, 16, 16)
    with pytest.raises(ValueError, match="larger than the canvas"):
        compose(digits, labels, n_images=1, canvas=12, scale=2)
