import numpy as np
import pytest

from napari_microfingerprint import InputError, labels_to_distance, make_grain_structure
from napari_microfingerprint.core.segmentation import distance_to_labels
from napari_microfingerprint.core.vae.data import sample_patches, split_indices


def test_rotated_patches_contain_no_padding():
    rng = np.random.default_rng(0)
    image = np.random.default_rng(1).random((80, 90))
    patches = sample_patches(image, 50, 32, rng)
    assert patches.shape == (50, 32, 32)
    assert np.isfinite(patches).all()  # padding would show up as the NaN used for cval
    assert patches.min() >= image.min() - 1e-6 and patches.max() <= image.max() + 1e-6


def test_patches_without_rotation_are_crops():
    rng = np.random.default_rng(0)
    image = np.arange(40 * 40, dtype=float).reshape(40, 40)
    p = sample_patches(image, 5, 8, rng, rotate=False, reflect=False)[0]
    y, x = divmod(int(p[0, 0]), 40)
    np.testing.assert_array_equal(p, image[y:y + 8, x:x + 8])
    with pytest.raises(InputError, match="smaller than the patch size"):
        sample_patches(image, 1, 64, rng)


def test_split_is_a_partition():
    train, val, test = split_indices(100, np.random.default_rng(0))
    assert (len(train), len(val), len(test)) == (70, 15, 15)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100))


def test_distance_patches_invert_back_to_grains():
    labels = make_grain_structure((128, 128), stage="late", seed=3, device="cpu")
    distance = labels_to_distance(labels)
    patch = sample_patches(distance, 1, 64, np.random.default_rng(2), rotate=False, reflect=False)[0]
    grains = distance_to_labels(patch)
    rng = np.random.default_rng(2)
    y, x = rng.integers(0, 128 - 64 + 1), rng.integers(0, 128 - 64 + 1)
    truth = labels[y:y + 64, x:x + 64]
    sizes = np.unique(truth, return_counts=True)[1]
    n_true = int((sizes >= 10).sum())  # slivers cut by the patch edge below the watershed's min_size do not count
    assert abs(grains.max() - n_true) <= 0.15 * n_true
