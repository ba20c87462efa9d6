import numpy as np
import pytest
import tifffile
from skimage.io import imsave

from napari_microfingerprint import InputError, labels_to_distance, make_grain_structure
from napari_microfingerprint.core.segmentation import distance_to_labels
from napari_microfingerprint.core.vae.data import load_image_folder, sample_patches, split_indices, white_balance


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


def test_white_balance_matches_percentile_clipping():
    rng = np.random.default_rng(3)
    image = rng.gamma(2.0, 10.0, size=(50, 60)) + 7.0
    lo, hi = np.percentile(image, [5, 95])
    expected = np.clip((image - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(white_balance(image), expected, rtol=1e-5, atol=1e-6)
    # affine changes of brightness and contrast (lighting) disappear
    np.testing.assert_allclose(white_balance(3.0 * image + 40.0), white_balance(image), atol=1e-5)
    # a binary image with a rare phase keeps both phases; a constant image becomes zeros
    rare = np.zeros((20, 20))
    rare[:2, :2] = 1
    np.testing.assert_array_equal(white_balance(rare), rare)
    assert not white_balance(np.full((8, 8), 5.0)).any()


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    grey = (rng.random((40, 50)) * 255).astype(np.uint8)
    rgb = np.stack([grey] * 3, axis=-1)
    imsave(tmp_path / "b.png", rgb, check_contrast=False)
    tifffile.imwrite(tmp_path / "a.tif", grey)
    np.save(tmp_path / "c.npy", grey.astype(np.float32))
    (tmp_path / "notes.txt").write_text("not an image")
    images, names = load_image_folder(tmp_path)
    assert names == ["a.tif", "b.png", "c.npy"]
    np.testing.assert_array_equal(images[0], grey)
    np.testing.assert_allclose(images[1], grey / 255.0, atol=1e-6)  # RGB with equal channels → the same grey
    assert all(im.ndim == 2 for im in images)
    (tmp_path / "d.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match="d.png could not be read"):
        load_image_folder(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no image files"):
        load_image_folder(empty)
    with pytest.raises(InputError, match="not a folder"):
        load_image_folder(tmp_path / "a.tif")

