import numpy as np
import pytest
from scipy.spatial import cKDTree
from skimage.measure import regionprops

from napari_microfingerprint import InputError, grain_statistics, line_intercept_length, phase_fractions
from napari_microfingerprint.core.characterization import neighbour_pairs


def _disk(shape, centre, radius):
    yy, xx = np.indices(shape)
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2).astype(np.int32)


def test_disk_area_and_equivalent_radius():
    lab = _disk((101, 101), (50, 50), 30)
    df, summary = grain_statistics(lab)
    assert df["area"].iloc[0] == lab.sum()
    assert df["equivalent_radius"].iloc[0] == pytest.approx(30, rel=0.01)
    assert df["aspect_ratio"].iloc[0] == pytest.approx(1.0, abs=0.01)
    df2, _ = grain_statistics(lab, spacing=(0.5, 0.5))
    assert df2["area"].iloc[0] == pytest.approx(0.25 * lab.sum())
    assert df2["equivalent_radius"].iloc[0] == pytest.approx(15, rel=0.01)
    assert summary["n_grains"] == 1


def test_cube_volume_3d_with_spacing():
    vol = np.zeros((20, 32, 32), dtype=np.int32)
    vol[5:15, 10:20, 10:20] = 1
    df, summary = grain_statistics(vol, spacing=(2.0, 1.0, 1.0))
    assert df["volume"].iloc[0] == pytest.approx(2000.0)
    assert df["equivalent_radius"].iloc[0] == pytest.approx((3 * 2000 / (4 * np.pi)) ** (1 / 3))
    assert df[["centroid_z", "centroid_y", "centroid_x"]].iloc[0].tolist() == pytest.approx([19.0, 14.5, 14.5])
    # the cube is twice as long along z as along y and x in physical units
    assert df["aspect_ratio"].iloc[0] == pytest.approx(2.0, rel=0.01)
    assert abs(df["axis_z"].iloc[0]) == pytest.approx(1.0, abs=1e-6)
    assert summary["mean_volume"] == pytest.approx(2000.0)


@pytest.mark.parametrize("angle", [0.0, 30.0, 75.0, 120.0])
def test_ellipse_orientation(angle):
    yy, xx = np.indices((201, 201)).astype(float)
    x, y_up = xx - 100, -(yy - 100)
    t = np.deg2rad(angle)
    u = x * np.cos(t) + y_up * np.sin(t)
    v = -x * np.sin(t) + y_up * np.cos(t)
    lab = ((u / 60) ** 2 + (v / 20) ** 2 <= 1).astype(np.int32)
    df, _ = grain_statistics(lab)
    got = df["orientation_deg"].iloc[0]
    assert min(abs(got - angle), 180 - abs(got - angle)) < 0.5
    assert df["aspect_ratio"].iloc[0] == pytest.approx(3.0, rel=0.02)


def test_moments_match_scikit_image_regionprops():
    rng = np.random.default_rng(0)
    lab = np.zeros((80, 80), dtype=np.int32)
    for k in range(1, 6):
        y, x = rng.integers(10, 70, size=2)
        lab[y - 5:y + rng.integers(3, 9), x - 6:x + rng.integers(2, 7)] = k
    df, _ = grain_statistics(lab)
    for rp in regionprops(lab):
        row = df[df["label"] == rp.label].iloc[0]
        assert row["area"] == rp.area
        assert [row["centroid_y"], row["centroid_x"]] == pytest.approx(list(rp.centroid))
        ev = rp.inertia_tensor_eigvals
        assert row["aspect_ratio"] == pytest.approx(np.sqrt(ev[0] / ev[1]), rel=1e-6)


def test_periodic_grain_across_the_edge_is_measured_whole():
    lab = np.zeros((64, 64), dtype=np.int32)
    yy, xx = np.indices(lab.shape)
    lab[((yy - 32) ** 2 / 15**2 + (xx - 32) ** 2 / 6**2) <= 1] = 1
    shifted = np.roll(lab, (30, 30), axis=(0, 1))
    ref, _ = grain_statistics(lab, periodic=True)
    got, _ = grain_statistics(shifted, periodic=True)
    assert got["area"].iloc[0] == ref["area"].iloc[0]
    assert got["aspect_ratio"].iloc[0] == pytest.approx(ref["aspect_ratio"].iloc[0])
    assert [got["centroid_y"].iloc[0], got["centroid_x"].iloc[0]] == pytest.approx([(32 + 30) % 64, (32 + 30) % 64])


def test_hexagonal_tiling_has_six_neighbours():
    a = 16.0
    ny, nx = 8, 8  # rows of a triangular lattice; the box is periodic for an even row count
    h = a * np.sqrt(3) / 2
    box = np.array([ny * h, nx * a])
    seeds = np.array([(r * h, (c + 0.5 * (r % 2)) * a) for r in range(ny) for c in range(nx)])
    shape = tuple(int(round(b)) for b in box)
    grid = np.stack(np.indices(shape), -1).reshape(-1, 2) + 0.5
    _, idx = cKDTree(seeds, boxsize=box).query(np.mod(grid * box / shape, box))
    lab = (idx.reshape(shape) + 1).astype(np.int32)
    df, summary = grain_statistics(lab, periodic=True)
    assert (df["n_neighbours"] == 6).all()
    assert summary["n_grains"] == ny * nx


def test_neighbour_pairs_across_boundary_lines():
    lab = np.array([[1, 1, 0, 2, 2], [1, 1, 0, 2, 2], [0, 0, 0, 0, 0], [3, 3, 0, 4, 4]])
    pairs = {tuple(p) for p in neighbour_pairs(lab, max_gap=1)}
    assert {(1, 2), (1, 3), (2, 4), (3, 4)} <= pairs
    assert neighbour_pairs(lab, max_gap=0).size == 0


def test_line_intercept_on_stripes():
    w = 8
    stripes = np.repeat(np.arange(1, 257), w)[None, :].repeat(256, axis=0)
    across = line_intercept_length(stripes, directions=np.array([[0.0, 1.0]]), n_lines=100)
    # a 2048 px line crosses 255 boundaries: total length / crossings = w up to the end effect (0.4 %)
    assert across == pytest.approx(w, rel=0.01)
    # isotropic random lines: mean |cos| = 2/pi in 2D, so the intercept is (pi / 2) / (boundary length per
    # area); the domain holds 255 boundaries over 2048 px
    iso = line_intercept_length(stripes, n_lines=3000, seed=1)
    assert iso == pytest.approx(np.pi / 2 * 2048 / 255, rel=0.04)
    # 3D plates: mean |cos| over the sphere is 1/2; 7 internal boundaries over 64 voxels
    plates = np.repeat(np.arange(1, 9), w)[:, None, None].repeat(64, 1).repeat(64, 2)
    assert line_intercept_length(plates, n_lines=3000, seed=2) == pytest.approx(2 * 64 / 7, rel=0.04)


def test_rn_fit_matches_numpy_polyfit():
    from napari_microfingerprint import make_grain_structure

    lab = make_grain_structure((96, 96), stage="intermediate", seed=4, device="cpu")
    df, summary = grain_statistics(lab, periodic=True)
    slope, intercept = np.polyfit(df["n_neighbours"], df["equivalent_radius"], 1)
    assert summary["rn_slope"] == pytest.approx(slope)
    assert summary["rn_intercept"] == pytest.approx(intercept)
    assert summary["rn_slope"] > 0  # larger grains have more neighbours (paper 000 Fig. 4)


def test_phase_fractions_and_errors():
    ph = np.array([[0, 0, 1, 2]])
    assert phase_fractions(ph) == {0: 0.5, 1: 0.25, 2: 0.25}
    with pytest.raises(InputError, match="fractional"):
        grain_statistics(np.array([[0.5, 1.0]]))
    with pytest.raises(InputError, match="no grains"):
        grain_statistics(np.zeros((4, 4), dtype=int))
    with pytest.raises(InputError, match="dimensions"):
        grain_statistics(np.ones((2, 2, 2, 2), dtype=int))
    with pytest.raises(InputError, match="spacing"):
        grain_statistics(np.ones((4, 4), dtype=int), spacing=(1.0, -1.0))
