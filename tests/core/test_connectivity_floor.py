"""The connectivity floor's exponents: Archie's law measured on a volume, and the ``archie_exponent`` setting."""
import math

import numpy as np
import pytest
import torch

from napari_microfingerprint import (
    InputError,
    archie_exponent,
    characterize,
    make_two_phase,
    match,
    reference_exponents,
    tortuosity,
)
from napari_microfingerprint.core.connectivity import ARCHIE_EXPONENT, MAJORITY_EXPONENT, floor_exponents
from napari_microfingerprint.core.reconstruction import (
    ReconstructionSettings,
    _transport_term,
    own_exponents,
    target_chords,
)
from napari_microfingerprint.core.transport import SoftDiffusivity, TransportTerm


def test_straight_channels_have_exponent_one():
    vol = np.zeros((12, 10, 10), dtype=np.uint8)
    vol[:, 2:5, 3:6] = 1  # tau = 1 along z, no path across: D_eff / D_0 = eps^1
    assert archie_exponent(vol, 1) == pytest.approx(1.0, abs=1e-9)


def test_exponent_follows_archies_law_from_the_tortuosity():
    vol = make_two_phase((32, 32, 32), 0.3, 2.5, seed=1)
    taus = [r.tortuosity for r in tortuosity(vol, 1).values() if r.percolating]
    eps = float(vol.mean())
    m = archie_exponent(vol, 1)
    # D_eff / D_0 = eps / tau = eps^m for the geometric mean of the axes' tortuosities
    assert eps ** m == pytest.approx(eps / math.exp(np.mean(np.log(taus))), rel=1e-9)
    assert m > 1.0
    assert reference_exponents(vol) == {1: pytest.approx(m)}
    assert reference_exponents(vol, skip=[1]) == {}


def test_a_structure_gives_its_own_exponent_only_where_a_floor_acts():
    """``match`` of a 3D structure floors a 3D output at the structure's own exponent; not a 2D output (which has
    no floor), not with the floor off or an exponent given, and not a phase whose tortuosity is prescribed on
    every axis (no floor acts on it, so it is not solved for)."""
    vol = make_two_phase((24, 24, 24), 0.3, 2.5, seed=1)
    m = archie_exponent(vol, 1)
    assert own_exponents(vol, (16, 16, 16), {}) == {1: pytest.approx(m)}
    assert own_exponents(vol, (16, 16), {}) is None
    assert own_exponents(vol[0], (16, 16, 16), {}) is None
    assert own_exponents(vol, (16, 16, 16), {"connectivity": "off"}) is None
    assert own_exponents(vol, (16, 16, 16), {"archie_exponent": 2.2}) == 2.2
    assert own_exponents(vol, (16, 16, 16), {"tortuosity": {1: 3.0}}) is None


def test_a_volume_matched_into_a_2d_structure_is_not_given_a_floor():
    vol = make_two_phase((24, 24, 24), 0.3, 2.5, seed=1)
    assert reference_exponents(vol)  # a 3D output would get a floor at the volume's own exponent
    res = match(vol, (24, 24), limit_to=4, max_iter=20)  # raised "archie_exponent sets the connectivity floor ..."
    assert res.labels.shape == (24, 24) and res.settings["archie_exponent"] is None


def test_exponent_needs_a_connected_3d_phase():
    with pytest.raises(InputError, match="3D"):
        archie_exponent(make_two_phase((32, 32), 0.3, 2.0, seed=0), 1)
    vol = np.zeros((8, 8, 8), dtype=np.uint8)
    vol[2:4, 2:4, 2:4] = 1  # one closed pore
    with pytest.raises(InputError, match="connects no two opposite faces"):
        archie_exponent(vol, 1)
    assert reference_exponents(vol) == {}  # no network phase: the defaults stay


def test_the_setting_sets_the_floors():
    fractions = [0.7, 0.3]
    assert floor_exponents(fractions, 3) == {1: ARCHIE_EXPONENT}
    assert floor_exponents(fractions, 3, 2.4) == {1: 2.4}
    assert floor_exponents(fractions, 3, {0: 1.5}) == {0: 1.5, 1: ARCHIE_EXPONENT}  # a phase named gets one
    assert floor_exponents([0.45, 0.55], 3, 2.2) == {0: 2.2, 1: MAJORITY_EXPONENT}  # a number: phases below half
    assert floor_exponents(fractions, 2) == {}
    with pytest.raises(InputError, match="3D reconstructions"):
        floor_exponents(fractions, 2, 2.0)
    with pytest.raises(InputError, match="cementation exponent"):
        floor_exponents(fractions, 3, 0.5)
    with pytest.raises(InputError, match="phase numbers"):
        floor_exponents(fractions, 3, {2: 2.0})
    with pytest.raises(InputError, match="name the phase"):
        floor_exponents([0.95, 0.05], 3, 2.0)  # no network phase below half of the volume


def _mean_run_length(mask: np.ndarray) -> float:
    """Brute force: the phase's pixels over its runs (chords), counted row by row along both axes, periodic."""
    runs = 0
    for line in list(mask) + list(mask.T):
        runs += sum(1 for i in range(len(line)) if line[i] and not line[(i + 1) % len(line)])
    return 2.0 * float(mask.sum()) / runs


def test_target_chords_are_the_mean_run_lengths():
    two = make_two_phase((48, 48), 0.3, 2.0, seed=3)
    field = make_two_phase((48, 48), 0.5, 3.0, seed=4).astype(np.uint8)
    three = (two + 2 * (field & (two == 0))).astype(np.uint8)  # phases 0, 1 and 2
    for image in (two, three):
        want = {p: _mean_run_length(image == p) for p in range(int(image.max()) + 1)}
        for descriptors in (("volume_fractions", "s2", "variation"), ("volume_fractions", "variation")):
            got = target_chords(characterize(image, descriptors=descriptors))
            assert got.keys() == want.keys()
            for p in want:
                assert got[p] == pytest.approx(want[p], rel=1e-9)
    assert target_chords(characterize(two, descriptors=("volume_fractions",))) == {}


def test_target_chords_of_a_volume_average_the_chord_ends_of_its_three_axes():
    vol = make_two_phase((20, 20, 20), 0.3, 2.0, seed=5)
    for p in (0, 1):
        mask = vol == p
        # brute force: the phase's voxels over its runs along z, y and x (periodic), each voxel counted per axis
        runs = sum(int((mask & ~np.roll(mask, -1, axis=a)).sum()) for a in range(3))
        got = target_chords(characterize(vol, descriptors=("s2",)))[p]  # phi from S2(0), no volume fractions
        assert got == pytest.approx(3.0 * float(mask.sum()) / runs, rel=1e-9)


def test_floors_of_fine_phases_are_judged_at_full_resolution():
    gen = torch.Generator().manual_seed(2)
    ind = torch.softmax(torch.randn((2, 40, 40, 40), generator=gen, dtype=torch.float64), dim=0)
    fine = TransportTerm({}, {(1, 0): 2.0}, chords={0: 9.0, 1: 2.4})
    coarse = TransportTerm({}, {(1, 0): 2.0}, chords={0: 9.0, 1: 6.0})
    assert not fine.pool_floors and coarse.pool_floors and TransportTerm({}, {(1, 0): 2.0}).pool_floors
    assert TransportTerm({}, {(1, 0): 2.0}, chords={0: 2.0, 1: 6.0}).pool_floors  # phase 0 has no floor
    # the fine phase's floor is the Huber gap of its full-resolution diffusivity
    (d,) = SoftDiffusivity()(ind[1], [0])
    gap = abs(min(0.0, math.log(float(d)) - 2.0 * math.log(float(ind[1].mean()))))
    assert float(fine.loss(ind)) == pytest.approx(gap * gap if gap <= 1 else 2 * gap - 1, rel=1e-6)
    assert float(coarse.loss(ind)) != pytest.approx(float(fine.loss(ind)), rel=1e-3)


def test_a_reconstruction_judges_the_floor_of_fine_pores_at_full_resolution():
    settings = ReconstructionSettings()
    fine = characterize(make_two_phase((96, 96), 0.2, 1.0, seed=0))  # pore chord about 2.7 voxels
    coarse = characterize(make_two_phase((96, 96), 0.2, 3.0, seed=0))  # about 7.4
    assert target_chords(fine)[1] < TransportTerm.POOL_MIN_CHORD < target_chords(coarse)[1]
    assert not _transport_term(fine, 3, settings).pool_floors
    assert _transport_term(coarse, 3, settings).pool_floors
