"""Volume-fraction-preserving smoothing (core.smoothing.smooth)."""
import numpy as np
import pytest
from scipy import ndimage

from napari_microfingerprint.core.smoothing import smooth
from napari_microfingerprint.core.validation import InputError


def _noisy_phases(shape, n_phases, seed=0, salt=0.03):
    """Thresholded Gaussian random field with ``n_phases`` phases plus salt noise (random single voxels)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0, mode="wrap")
    cuts = np.quantile(field, np.linspace(0, 1, n_phases + 1)[1:-1] + 0.07)
    phases = np.digitize(field, cuts).astype(np.uint8)
    flip = rng.random(shape) < salt
    phases[flip] = rng.integers(0, n_phases, size=int(flip.sum()))
    return phases


def _single_voxel_clusters(phases):
    """Number of connected clusters (faces only) that are one voxel large, over all phases."""
    total = 0
    for value in np.unique(phases):
        clusters, _ = ndimage.label(phases == value)
        total += int((np.bincount(clusters.ravel())[1:] == 1).sum())
    return total


def _unlike_pairs(phases):
    """Interface area: number of face-neighbour voxel pairs with different phases."""
    return sum(int((np.diff(phases, axis=a) != 0).sum()) for a in range(phases.ndim))


@pytest.mark.parametrize("shape", [(96, 96), (32, 32, 32)])
@pytest.mark.parametrize("n_phases", [2, 3])
def test_counts_kept_noise_and_interfaces_reduced(shape, n_phases):
    phases = _noisy_phases(shape, n_phases, seed=n_phases)
    out = smooth(phases, sigma=1.0)
    assert out.shape == phases.shape and out.dtype == phases.dtype
    np.testing.assert_array_equal(np.bincount(out.ravel(), minlength=n_phases),
                                  np.bincount(phases.ravel(), minlength=n_phases))
    before, after = _single_voxel_clusters(phases), _single_voxel_clusters(out)
    assert before > 20 and after < 0.2 * before
    assert _unlike_pairs(out) < 0.9 * _unlike_pairs(phases)


def test_four_phases_periodic_and_spacing():
    phases = _noisy_phases((24, 40, 40), 4, seed=5)
    out = smooth(phases, sigma=2.0, spacing=(2.0, 1.0, 1.0), periodic=True)
    np.testing.assert_array_equal(np.bincount(out.ravel(), minlength=4), np.bincount(phases.ravel(), minlength=4))
    assert _unlike_pairs(out) < _unlike_pairs(phases)


def test_physical_sigma_equals_voxel_sigma():
    phases = _noisy_phases((48, 48), 2, seed=1)
    np.testing.assert_array_equal(smooth(phases, sigma=0.5, spacing=(0.5, 0.5)), smooth(phases, sigma=1.0))


def test_non_contiguous_labels_and_dtype_kept():
    base = _noisy_phases((64, 64), 2, seed=3)
    phases = np.where(base == 1, 7, 3).astype(np.int16)
    out = smooth(phases, sigma=1.5)
    assert out.dtype == np.int16 and set(np.unique(out)) == {3, 7}
    assert (out == 7).sum() == (phases == 7).sum()
    three = np.choose(_noisy_phases((40, 40), 3, seed=4), [2, 9, 40]).astype(np.int32)
    out3 = smooth(three)
    for value in (2, 9, 40):
        assert (out3 == value).sum() == (three == value).sum()


def test_bool_and_clean_structures():
    mask = np.zeros((30, 30), dtype=bool)
    mask[5:20, 8:25] = True
    out = smooth(mask)
    assert out.dtype == bool and out.sum() == mask.sum()
    assert abs(_unlike_pairs(out) - _unlike_pairs(mask)) <= 8  # a clean rectangle barely changes


def test_tiny_phase_kept():
    phases = np.zeros((20, 20), dtype=np.uint8)
    phases[3, 4] = 1
    phases[10:14, 10:14] = 2
    out = smooth(phases, sigma=2.0)
    assert [(out == v).sum() for v in range(3)] == [(phases == v).sum() for v in range(3)]


@pytest.mark.parametrize("bad, kwargs, match", [
    (np.zeros((8, 8), np.uint8), {}, "single phase"),
    (np.array([[0.0, 1.0], [np.nan, 1.0]]), {}, "NaN"),
    (np.array([[0.0, 1.5], [1.0, 0.0]]), {}, "fractional"),
    (np.array([[0, 1], [1, 0]]), {"sigma": 0}, "sigma"),
    (np.array([[0, 1], [1, 0]]), {"sigma": -1.0}, "sigma"),
    (np.array([[0, 1], [1, 0]]), {"sigma": float("inf")}, "sigma"),
    (np.array([[0, 1], [1, 0]]), {"sigma": float("nan")}, "sigma"),
    (np.array([[0, 1], [1, 0]]), {"spacing": (1.0,)}, "spacing"),
    (np.array([[0, 1], [1, 0]]), {"spacing": (1.0, 0.0)}, "spacing"),
    (np.array([0, 1, 1, 0]), {}, "dimension"),
    (np.array([[0, -1], [1, 0]]), {}, "negative"),
])
def test_bad_inputs(bad, kwargs, match):
    with pytest.raises(InputError, match=match):
        smooth(bad, **kwargs)


def test_repair_alone_reaches_exact_counts(monkeypatch):
    """With no offset sweeps the repair step must still give every phase its count (ties included)."""
    from napari_microfingerprint.core import smoothing

    monkeypatch.setattr(smoothing, "MAX_SWEEPS", 0)
    checker = (np.indices((12, 12, 12)).sum(axis=0) % 3).astype(np.uint8)  # many exactly tied scores
    phases = _noisy_phases((40, 40), 4, seed=9)
    for structure in (checker, phases):
        out = smooth(structure, sigma=1.0)
        np.testing.assert_array_equal(np.bincount(out.ravel(), minlength=4),
                                      np.bincount(structure.ravel(), minlength=4))
