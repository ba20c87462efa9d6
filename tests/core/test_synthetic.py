import numpy as np
import pytest
from scipy import ndimage

from napari_microfingerprint import (
    InputError,
    grain_statistics,
    line_intercept_length,
    make_grain_structure,
    make_lamellae,
    make_micrograph,
    make_particles,
    make_two_phase,
)
from napari_microfingerprint.core.synthetic import potts_grain_growth, voronoi_labels


def test_grain_growth_coarsens_2d():
    start = voronoi_labels((96, 96), 300, seed=3)
    early, mid, late = potts_grain_growth(start, [4, 24, 96], seed=3, device="cpu")
    counts = [len(np.unique(s)) for s in (early, mid, late)]
    assert counts[0] > counts[1] > counts[2]
    areas = [np.bincount(s.ravel())[1:].mean() for s in (early, mid, late)]
    assert areas[0] < areas[1] < areas[2]


def test_grain_growth_stages_and_3d():
    a = make_grain_structure((64, 64), stage="early", seed=0, device="cpu")
    b = make_grain_structure((64, 64), stage="late", seed=0, device="cpu")
    assert a.max() > b.max()
    vol = make_grain_structure((16, 16, 16), n_grains=20, stage=2, seed=0, device="cpu")
    assert vol.shape == (16, 16, 16) and vol.min() == 1
    # seeded: the same call gives the same structure
    np.testing.assert_array_equal(a, make_grain_structure((64, 64), stage="early", seed=0, device="cpu"))


def test_voronoi_is_periodic_nearest_seed():
    lab = voronoi_labels((32, 40), 12, seed=1)
    rng = np.random.default_rng(1)
    seeds = rng.random((12, 2)) * np.array([32, 40])
    # brute force: periodic nearest seed of a few pixels
    for y, x in [(0, 0), (31, 39), (15, 7), (3, 38)]:
        d = np.abs(seeds - [y + 0.5, x + 0.5])
        d = np.minimum(d, np.array([32, 40]) - d)
        assert lab[y, x] == np.argmin((d**2).sum(1)) + 1


def test_two_phase_volume_fraction_and_correlation():
    a = make_two_phase((128, 128), volume_fraction=0.3, correlation_length=2, seed=0)
    assert set(np.unique(a)) == {0, 1}
    assert abs(a.mean() - 0.3) < 1.0 / a.size + 1e-12
    b = make_two_phase((128, 128), volume_fraction=0.3, correlation_length=8, seed=0)
    # a longer correlation length gives larger domains: fewer boundaries per unit length
    la = line_intercept_length(a + 1, n_lines=300)
    lb = line_intercept_length(b + 1, n_lines=300)
    assert lb > 2 * la
    with pytest.raises(InputError):
        make_two_phase((32, 32), volume_fraction=1.5)


def test_particles_do_not_overlap_and_reach_fraction():
    p = make_particles((128, 128), volume_fraction=0.2, mean_radius=6, seed=2)
    assert (p > 0).mean() >= 0.18
    # no two particles touch, even across the periodic edges (min_gap 1 px)
    grown = ndimage.grey_dilation(p, size=(3, 3), mode="wrap")
    assert not ((grown != p) & (p > 0)).any()
    vol = make_particles((32, 32, 32), volume_fraction=0.1, mean_radius=4, seed=0)
    assert 0.09 <= (vol > 0).mean() <= 0.16


def test_lamellae_spacing_and_angle():
    lam = make_lamellae((200, 200), spacing=20, angle=0.0)
    # lamellae parallel to x: every column is the same, period 20 along y
    assert (lam == lam[:, :1]).all()
    assert abs(lam.mean() - 0.5) < 0.02
    grains = ndimage.label(lam)[0] + 1000 * ndimage.label(1 - lam)[0]
    assert line_intercept_length(grains, directions=np.array([[1.0, 0.0]]), n_lines=50) == pytest.approx(10, rel=0.05)
    tilted = make_lamellae((256, 256), spacing=24, angle=30.0)
    labels = ndimage.label(tilted)[0]
    _, summary = grain_statistics(labels)
    assert summary["lamellae_direction_deg"] == pytest.approx(30.0, abs=2.0)


def test_micrograph_is_normalised_image():
    lab = make_grain_structure((64, 64), stage="early", seed=0, device="cpu")
    img = make_micrograph(lab, seed=0)
    assert img.shape == lab.shape and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
