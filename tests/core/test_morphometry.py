import math

import numpy as np
import pytest

from napari_microfingerprint import InputError, cluster_labels, make_two_phase, structure_report
from napari_microfingerprint.core.connectivity import (
    bridge_mask,
    despeckle,
    dissolve_fragments,
    mean_chord,
    periodic_clusters,
)
from napari_microfingerprint.core.morphometry import chord_lengths, local_thickness, triple_phase_boundary_density


def _ball(shape, centre, radius):
    grid = np.indices(shape).astype(float)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def test_sphere_euler_surface_and_size():
    r = 10.0
    vol = _ball((32, 32, 32), (16, 16, 16), r).astype(np.uint8)
    rep = structure_report(vol, transport=False)
    m = rep.phases[1].values
    assert m["euler_density"] * vol.size == pytest.approx(1.0)  # a solid ball: chi = 1
    assert m["clusters"] == 1 and m["largest_cluster_share"] == 1.0
    # marching cubes on a digitised sphere (smoothed indicator): within 3 % of 4 pi r^2, per the volume between
    # the voxel centres
    assert m["specific_surface"] * 31**3 == pytest.approx(4 * math.pi * r**2, rel=0.03)
    img = _ball((60, 60), (30, 30), 12.0).astype(np.uint8)  # and a disk's perimeter in 2D
    assert structure_report(img, transport=False).phases[1].values["specific_surface"] * 59**2 == pytest.approx(
        2 * math.pi * 12.0, rel=0.03)
    # the largest inscribed ball covers the centre: local thickness there is the diameter (to one voxel)
    lt = local_thickness(vol.astype(bool), np.ones(3))
    assert lt[16, 16, 16] == pytest.approx(2 * r, abs=1.0)
    # the matrix around it is one cluster with a cavity: chi = 1 - 0 + 1 = 2 with 26-connectivity of the matrix
    assert rep.phases[0].values["euler_density"] * vol.size == pytest.approx(2.0)


def test_torus_has_euler_zero():
    shape = (20, 48, 48)
    z, y, x = np.indices(shape).astype(float)
    ring = (np.sqrt((y - 24) ** 2 + (x - 24) ** 2) - 14) ** 2 + (z - 10) ** 2 <= 5**2
    rep = structure_report(ring.astype(np.uint8), transport=False)
    assert rep.phases[1].values["euler_density"] * ring.size == pytest.approx(0.0)


def test_stripes_chords_and_spacing():
    img = np.zeros((40, 60), dtype=np.uint8)
    for start in range(5, 55, 10):  # stripes of width 4 along y, gaps of 6
        img[:, start:start + 4] = 1
    chords = chord_lengths(img == 1, axis=1)
    assert set(chords.tolist()) == {4}  # every interior run across the stripes is 4 long
    assert chord_lengths(img == 1, axis=0).size == 0  # runs along the stripes touch the box: left out
    rep = structure_report(img, spacing=(0.5, 0.5), unit="um")
    # ten straight walls across 39 px between the pixel centres: 10 * 39 * 0.5 um per (39 * 59 * 0.25 um^2)
    assert rep.phases[1].values["specific_surface"] == pytest.approx(10 * 19.5 / (19.5 * 29.5), rel=1e-3)
    assert rep.phases[1].values["chord_mean_x"] == pytest.approx(2.0)  # 4 px * 0.5 um
    assert rep.phases[0].values["chord_mean_x"] == pytest.approx(3.0)  # the gaps: 6 px * 0.5 um
    assert rep.phases[1].values["percolating_axes"] == 1
    assert rep.phases[1].values["tortuosity_y"] == pytest.approx(1.0)
    assert math.isinf(rep.phases[1].values["tortuosity_x"])
    assert rep.phases[1].values["pore_size_mean"] == pytest.approx(2.0, abs=0.5)
    table = rep.table()
    assert table.loc[(table.phase == 1) & (table.metric == "chord_mean_x"), "unit"].item() == "um"


def test_triple_phase_boundary_of_three_blocks():
    vol = np.zeros((10, 12, 14), dtype=np.uint8)
    vol[:, 6:, :7] = 1
    vol[:, 6:, 7:] = 2  # three blocks meet along one line parallel to z, 10 voxels long
    assert triple_phase_boundary_density(vol, np.ones(3)) * vol.size == pytest.approx(10.0)
    assert triple_phase_boundary_density(vol, np.array([2.0, 1.0, 1.0])) * vol.size * 2 == pytest.approx(20.0)
    rep = structure_report(vol, transport=False)
    assert rep.tpb_density == pytest.approx(10.0 / vol.size)
    img = vol[0]
    assert triple_phase_boundary_density(img, np.ones(2)) * img.size == pytest.approx(1.0)  # one junction point


def test_comparison_with_a_reference():
    ref = make_two_phase((96, 96), 0.35, 3.0, seed=1)
    same = make_two_phase((48, 48), 0.35, 3.0, seed=7)
    other = make_two_phase((48, 48), 0.6, 8.0, seed=7)
    ok = structure_report(same, ref, n_windows=8)
    bad = structure_report(other, ref, n_windows=8)
    vf = ("volume_fraction", 1)
    rows = {(r.metric, r.phase): r for r in ok.comparison.itertuples()}
    assert rows[vf].inside and rows[vf].n_ref == 8
    bad_rows = {(r.metric, r.phase): r for r in bad.comparison.itertuples()}
    assert not bad_rows[vf].inside
    assert len(bad.outside) > len(ok.outside)
    assert set(ok.distributions[1]) == {"chord_length", "pore_size"}
    assert ok.distributions[1]["chord_length"]["reference"].sum() == pytest.approx(1.0)


def test_a_volume_against_one_slice_uses_2d_sections():
    vol = make_two_phase((32, 32, 32), 0.3, 2.5, seed=2)
    slice_ = make_two_phase((80, 80), 0.3, 2.5, seed=3)
    rep = structure_report(vol, slice_, n_windows=6)
    assert "2D sections" in rep.mode
    assert {"tortuosity_y (2D sections)", "chord_mean_x (2D sections)"} <= set(rep.comparison.metric)
    assert not any(m.startswith("tortuosity_z") for m in rep.comparison.metric)  # 2D metrics only
    table = rep.table()  # the 3D metrics of the volume keep rows of their own, without a reference
    assert table.loc[table.metric == "tortuosity_z", "ref_mean"].isna().all()
    assert "phase 1" in rep.summary()


def test_bad_references_are_refused():
    vol = make_two_phase((16, 16, 16), 0.3, 2.0, seed=2)
    with pytest.raises(InputError, match="2D"):
        structure_report(vol[0], vol)
    with pytest.raises(InputError, match="n_windows"):
        structure_report(vol, vol, n_windows=1)
    with pytest.raises(InputError, match="window"):
        structure_report(vol, vol, window=(16, 16, 16))
    with pytest.raises(InputError, match="3 sides"):
        structure_report(vol, vol, window=(12, 12))
    with pytest.raises(InputError, match="phase 4 does not occur"):
        cluster_labels(vol, 4)


def test_cluster_labels_bridges_and_specks():
    vol = np.zeros((30, 30, 30), dtype=np.uint8)
    vol[2:14, 2:14, 2:14] = 1  # 1728 voxels
    vol[17:23, 17:23, 17:23] = 1  # 216 voxels, three voxels from the big cube along each axis
    vol[27, 3, 3] = 1  # a speck
    lab = cluster_labels(vol, 1)
    assert (lab == 1).sum() == 1728 and (lab == 2).sum() == 217 and (lab[vol == 0] == 0).all()
    clean = despeckle(vol)
    assert clean[27, 3, 3] == 0 and clean.sum() == 1944
    bridge = bridge_mask(clean, 1)
    assert 0 < bridge.sum() <= 0.05 * 1944  # a short path, within the bridging budget
    bridged = clean.copy()
    bridged[bridge] = 1
    assert cluster_labels(bridged, 1).max() == 1  # one cluster now


def test_dissolve_fragments_keeps_the_matrix_whole():
    vol = np.zeros((32, 32, 32), dtype=np.uint8)  # matrix 0
    vol[4:28, 4:28, 4:28] = 1  # a pore block
    vol[10:13, 10:13, 10:13] = 0  # a 27-voxel fragment of the matrix floating in the pore
    vol[14:27, 14:27, 14:27] = 0  # a 2197-voxel piece, larger than a ball of half the matrix's mean chord
    vol[1, 1, 1] = 1  # a one-voxel pore in the matrix: the pore is not a matrix, so it stays
    radius = mean_chord(vol == 0) / 4
    assert 27 < 4 / 3 * np.pi * radius**3 < 2197
    out = dissolve_fragments(vol, [0])
    assert (out[10:13, 10:13, 10:13] == 1).all()  # dissolved into the surrounding pore
    assert (out[14:27, 14:27, 14:27] == 0).all() and out[1, 1, 1] == 1
    assert ((out != vol).sum()) == 27
    assert (dissolve_fragments(vol, []) == vol).all()


def _ring_components(mask: np.ndarray) -> set[frozenset]:
    """Brute force: face-connected components of ``mask`` on the periodic grid, by breadth-first search."""
    seen, parts = set(), set()
    for start in map(tuple, np.argwhere(mask)):
        if start in seen:
            continue
        part, todo = {start}, [start]
        while todo:
            here = todo.pop()
            for ax in range(mask.ndim):
                for step in (1, -1):
                    nb = list(here)
                    nb[ax] = (nb[ax] + step) % mask.shape[ax]
                    nb = tuple(nb)
                    if mask[nb] and nb not in part:
                        part.add(nb)
                        todo.append(nb)
        seen |= part
        parts.add(frozenset(part))
    return parts


@pytest.mark.parametrize("shape", [(13, 11), (6, 7, 5)])
def test_periodic_clusters_against_a_search_on_the_ring(shape):
    rng = np.random.default_rng(4)
    for _ in range(5):
        mask = rng.random(shape) < 0.45
        labels, n = periodic_clusters(mask)
        got = {frozenset(map(tuple, np.argwhere(labels == k))) for k in range(1, n + 1)}
        assert got == _ring_components(mask) and (labels[~mask] == 0).all()


def test_dissolve_fragments_wraps_and_gives_whole_fragments_to_their_neighbours():
    vol = np.full((24, 24, 24), 2, dtype=np.uint8)  # phase 2 is the pore here
    vol[:, :, 0:12] = 0  # the matrix: a slab on the x = 0 face ...
    vol[10:14, 10:14, 20:24] = 0  # ... and a 64-voxel piece on the other x face, joined to it through the wrap
    vol[2:5, 2:5, 20] = 1  # phase 1 in the pore, not a matrix
    vol[3:6, 3:6, 14:17] = 0  # a 3x3x3 matrix fragment inside the pore
    assert 4 / 3 * np.pi * (mean_chord(vol == 0) / 4) ** 3 > 64  # the piece is small: only the wrap keeps it
    out = dissolve_fragments(vol, [0])
    assert (out[3:6, 3:6, 14:17] == 2).all()  # the whole fragment, centre included, goes to its neighbours' phase
    assert (out[10:14, 10:14, 20:24] == 0).all()  # joined through the wrap: not a fragment
    assert ((out != vol).sum()) == 27


def test_structure_report_refuses_missing_phases():
    vol = make_two_phase((16, 16), 0.3, 2.0, seed=2)
    with pytest.raises(InputError, match="phase"):
        structure_report(vol, phases=[3])
