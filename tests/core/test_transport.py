import math

import numpy as np
import pytest
import torch

from napari_microfingerprint import InputError, effective_diffusivity, make_two_phase, tortuosity
from napari_microfingerprint.core.transport import SoftDiffusivity, TransportTerm


def test_straight_channels_have_tortuosity_one():
    vol = np.zeros((12, 10, 10), dtype=np.uint8)
    vol[:, 2:5, 3:6] = 1  # a straight square channel along z
    res = effective_diffusivity(vol, phase=1, axis="z")
    assert res.percolating and res.tortuosity == pytest.approx(1.0, abs=1e-9)
    assert res.diffusivity == pytest.approx(vol.mean(), abs=1e-9)  # D_eff / D_0 = eps for straight channels
    # across the channel nothing connects the faces
    across = tortuosity(vol, phase=1, axes=["y", "x"])
    assert all(not r.percolating and math.isinf(r.tortuosity) and r.diffusivity == 0 for r in across.values())


def test_series_layers_follow_the_harmonic_mean():
    # a 1D chain of conducting voxels with a bottleneck is a straight path: D = eps exactly; a zig-zag
    # staircase of one-voxel steps has the analytic length ratio of its path
    img = np.zeros((6, 7), dtype=np.uint8)
    img[:, 3] = 1
    assert effective_diffusivity(img, 1, "y").tortuosity == pytest.approx(1.0)
    stairs = np.zeros((4, 4), dtype=np.uint8)
    stairs[0, 0] = stairs[1, 0] = stairs[1, 1] = stairs[2, 1] = stairs[2, 2] = stairs[3, 2] = 1
    # flow along y through 6 voxels in series with 5 unit links and two half-voxel ends: R = 5 + 2 * 0.5 = 6
    # (lattice units), so D = L / (R * A) = 4 / (6 * 4) and tau = eps / D = (6 / 16) / (1 / 6) = 2.25
    assert effective_diffusivity(stairs, 1, "y").tortuosity == pytest.approx(2.25)


def test_agrees_with_taufactor_within_one_percent():
    taufactor = pytest.importorskip("taufactor", reason="scripts/setup.sh installs TauFactor, the reference")
    vol = make_two_phase((40, 40, 40), 0.35, 2.5, seed=3)
    for axis in range(3):
        ours = effective_diffusivity(vol, 1, axis).tortuosity
        ref = taufactor.Solver(np.ascontiguousarray(np.moveaxis(vol, axis, 0)), device="cpu")
        ref.solve(verbose=False, conv_crit=1e-4)
        assert math.isfinite(ours)
        assert ours == pytest.approx(float(ref.tau[0]), rel=0.01), axis


def test_soft_solver_matches_the_exact_one_on_binary_fields():
    vol = make_two_phase((24, 24, 24), 0.4, 2.0, seed=5)
    soft = SoftDiffusivity(c_min=1e-6, tol=1e-10, max_iter=5000)
    d = soft(torch.as_tensor(vol == 1, dtype=torch.float64), [0, 1, 2])
    for axis in range(3):
        exact = effective_diffusivity(vol, 1, axis).diffusivity
        assert float(d[axis]) == pytest.approx(exact, rel=2e-3)


def test_soft_gradient_matches_finite_differences():
    # the energy at the detached potential gives the true gradient (envelope theorem), no adjoint needed
    gen = torch.Generator().manual_seed(0)
    p = torch.rand((6, 6, 6), generator=gen, dtype=torch.float64) * 0.8 + 0.1
    p.requires_grad_(True)
    soft = SoftDiffusivity(gamma=1.0, c_min=1e-3, tol=1e-13, max_iter=5000)
    (d,) = soft(p, [1])
    d.backward()
    for index in [(0, 0, 0), (2, 3, 4), (5, 1, 2)]:
        step = torch.zeros_like(p)
        step[index] = 1e-5
        with torch.no_grad():
            up = SoftDiffusivity(gamma=1.0, c_min=1e-3, tol=1e-13, max_iter=5000)(p + step, [1])[0]
            down = SoftDiffusivity(gamma=1.0, c_min=1e-3, tol=1e-13, max_iter=5000)(p - step, [1])[0]
        assert float(p.grad[index]) == pytest.approx(float((up - down) / 2e-5), rel=1e-4)


def test_term_pulls_towards_its_target():
    gen = torch.Generator().manual_seed(1)
    theta = torch.randn((2, 12, 12, 12), generator=gen, dtype=torch.float64, requires_grad=True)
    term = TransportTerm({(1, 0): 3.0}, {})
    ind = torch.softmax(theta, dim=0)
    loss = term.loss(ind)
    loss.backward()
    # descending the gradient moves the tortuosity towards the target
    with torch.no_grad():
        before = float(ind[1].mean() / term.soft(ind[1], [0], "check")[0])
        ind2 = torch.softmax(theta - 0.5 * theta.grad / theta.grad.abs().max(), dim=0)
        after = float(ind2[1].mean() / term.soft(ind2[1], [0], "check")[0])
    assert abs(math.log(after / 3.0)) < abs(math.log(before / 3.0))


def test_bad_axes_are_refused():
    vol = make_two_phase((16, 16), 0.5, 2.0, seed=0)
    with pytest.raises(InputError, match="axis"):
        effective_diffusivity(vol, 1, "z")
    with pytest.raises(InputError, match="axis"):
        effective_diffusivity(vol, 1, 5)
    with pytest.raises(InputError, match="phase 3 does not occur"):
        tortuosity(vol, phase=3)
