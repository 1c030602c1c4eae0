"""vitlab/data/segmentation.py: digit canvases with per-pixel labels."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from vitlab.config import SegmentConfig
from vitlab.data.segmentation import NUM_CLASSES, compose, enlarge, load_segmentation

SMALL = SegmentConfig(canvas=24, max_digits=3, scale=1, train_images=40, test_images=20, data_seed=3)


@pytest.fixture(scope="module")
def bunch():
    return load_digits()


@pytest.fixture(scope="module")
def sets():
    return load_segmentation(SMALL)


def test_shapes_and_dtypes(sets):
    train, test = sets
    assert train.images.shape == (40, 1, 24, 24) and train.images.dtype == torch.uint8
    assert test.masks.shape == (20, 24, 24) and test.masks.dtype == torch.int64
    assert int(train.masks.min()) >= 0 and int(train.masks.max()) < NUM_CLASSES
    assert train.classes[0] == "background" and len(train.classes) == NUM_CLASSES


def test_deterministic_from_the_seed(sets):
    again = load_segmentation(SMALL)
    for a, b in zip(sets, again):
        assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
        assert torch.equal(a.placements, b.placements)
    other, _ = load_segmentation(SegmentConfig(**{**SMALL.__dict__, "data_seed": 4}))
    assert not torch.equal(other.images, sets[0].images)


def test_labels_only_on_strokes_and_classes_match_sklearn(sets, bunch):
    """Disjoint placement: each digit's box carries class + 1 exactly where its value > threshold."""
    for split in sets:
        covered = torch.zeros_like(split.masks, dtype=torch.bool)
        for i in range(len(split)):
            for index, cls, top, left in split.placements[i].tolist():
                if index < 0:
                    continue
                assert cls == bunch.target[index]  # the class placed is sklearn's label
                digit = torch.from_numpy(bunch.images[index])  # (8, 8), 0..16
                box = split.masks[i, top:top + 8, left:left + 8]
                stroke = digit > SMALL.threshold
                assert torch.all(box[stroke] == cls + 1)
                assert torch.all(box[~stroke] == 0)
                pixels = split.images[i, 0, top:top + 8, left:left + 8]
                assert torch.equal(pixels, torch.round(digit * 255 / 16).to(torch.uint8))
                covered[i, top:top + 8, left:left + 8] = True
        # outside every digit's box: background, black
        assert torch.all(split.masks[~covered] == 0)
        assert torch.all(split.images[:, 0][~covered] == 0)


def test_test_canvases_use_only_held_out_digits(sets):
    train, test = sets
    used_train = {i for i in train.placements[..., 0].flatten().tolist() if i >= 0}
    used_test = {i for i in test.placements[..., 0].flatten().tolist() if i >= 0}
    assert used_train and used_test and not used_train & used_test


def test_max_combine_and_enlarge(bunch):
    digits, labels = bunch.images[:50], bunch.target[:50]
    s = compose(digits, labels, n_images=10, canvas=16, max_digits=3, scale=2, combine="max", seed=1)
    assert s.images.shape == (10, 1, 16, 16)
    values = s.images[:, 0].float() * 16 / 255
    assert torch.all(s.masks[values <= 4.0 - 0.1] == 0)  # background wherever the maximum is not stroke
    assert torch.all(s.masks[values > 4.0 + 0.1] > 0)
    big = enlarge(digits[:2], 2, "nearest")
    assert big.shape == (2, 16, 16) and np.array_equal(big[:, ::2, ::2], digits[:2].astype(np.float32))
    assert enlarge(digits[:2], 2, "bilinear").shape == (2, 16, 16)
    with pytest.raises(ValueError, match="larger than the canvas"):
        compose(digits, labels, n_images=1, canvas=12, scale=2)
