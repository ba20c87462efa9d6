"""Checks that need a CUDA GPU; skipped on machines without one (CI has none)."""
import numpy as np
import pytest
import torch

from napari_microfingerprint import characterize, make_grain_structure, make_two_phase, reconstruct
from napari_microfingerprint.core.descriptors import available_descriptors

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_descriptors_agree_between_cpu_and_gpu():
    x = torch.rand(4, 1, 32, 32, dtype=torch.float64)
    for name, spec in available_descriptors().items():
        cpu = spec.func(x, limit_to=4)
        gpu = spec.func(x.cuda(), limit_to=4).cpu()
        torch.testing.assert_close(gpu, cpu, rtol=1e-6, atol=1e-8, msg=name)


def test_reconstruction_on_gpu_matches_its_target():
    target = characterize(make_two_phase((64, 64), 0.4, 3.0, seed=1), limit_to=6)
    res = reconstruct(target, (32, 32, 32), device="auto", max_iter=400)
    assert res.settings["device_used"] == "cuda"
    assert all(e["s2"] < 0.135 for e in res.errors.values())  # the CPU test's noise floor
    assert res.undecided < 0.01


def test_grain_growth_runs_on_gpu():
    a = make_grain_structure((64, 64), stage="late", seed=0, device="cuda")
    b = make_grain_structure((64, 64), stage="early", seed=0, device="cuda")
    assert a.max() < b.max()
    assert np.unique(a).size == a.max()
