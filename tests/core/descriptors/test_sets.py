import numpy as np
import pytest
import torch

from napari_microfingerprint import (
    DescriptorSet,
    InputError,
    characterize,
    descriptor_error,
    interpolate,
    make_lamellae,
    make_two_phase,
    merge,
)
from napari_microfingerprint.core.descriptors import get_descriptor


def test_characterize_2d_and_3d():
    img = make_two_phase((48, 48), 0.3, 3, seed=0)
    ds = characterize(img, descriptors=("volume_fractions", "s2", "variation"), limit_to=4)
    assert ds.axes == ["2d"] and ds.n_phases == 2
    assert ds.values["2d"]["volume_fractions"][0] == pytest.approx(img.mean())
    assert ds.values["2d"]["s2"][0] == pytest.approx(img.mean())  # S2 at offset 0 is the volume fraction
    assert sorted(ds.coarse) == [1, 2] and ds.coarse[1].limit_to == 2
    vol = make_two_phase((16, 20, 24), 0.3, 2, seed=0)
    dv = characterize(vol, limit_to=3)
    assert dv.axes == ["z", "y", "x"]
    assert descriptor_error(img, ds)["2d"] == {"volume_fractions": 0.0, "s2": 0.0, "variation": 0.0}
    # Eq. 10 of paper 003 by hand: mean over the ZX slices of ||D_s - D_des|| / ||D_des||
    s2 = get_descriptor("s2").func
    per = [s2(torch.from_numpy(vol[:, j, :].astype(float))[None, None], limit_to=3)[0].numpy() for j in range(20)]
    want = dv.values["y"]["s2"]
    expected = np.mean([np.linalg.norm(p - want) / np.linalg.norm(want) for p in per])
    np.testing.assert_allclose(np.mean(per, axis=0), want)
    assert descriptor_error(vol, dv)["y"]["s2"] == pytest.approx(expected)


def test_save_load_roundtrip(tmp_path):
    ds = characterize(make_two_phase((32, 32), 0.4, 2, seed=1), limit_to=4)
    npz, js = ds.save(tmp_path / "target")
    back = DescriptorSet.load(tmp_path / "target")
    assert back.names == ds.names and back.limit_to == 4 and sorted(back.coarse) == sorted(ds.coarse)
    np.testing.assert_array_equal(back.values["2d"]["s2"], ds.values["2d"]["s2"])
    np.testing.assert_array_equal(back.coarse[1].values["2d"]["s2"], ds.coarse[1].values["2d"]["s2"])
    (tmp_path / "target.json").write_text("{broken")
    with pytest.raises(InputError, match="could not be read"):
        DescriptorSet.load(tmp_path / "target")


def test_interpolate_endpoints_and_midpoint():
    a = characterize(make_two_phase((32, 32), 0.3, 2, seed=1), limit_to=4)
    b = characterize(make_two_phase((32, 32), 0.6, 4, seed=2), limit_to=4)
    steps = interpolate(a, b, 3)
    np.testing.assert_allclose(steps[0].values["2d"]["s2"], a.values["2d"]["s2"])
    np.testing.assert_allclose(steps[-1].values["2d"]["s2"], b.values["2d"]["s2"])
    np.testing.assert_allclose(steps[1].values["2d"]["s2"], 0.5 * (a.values["2d"]["s2"] + b.values["2d"]["s2"]))
    with pytest.raises(InputError):
        interpolate(a, characterize(make_two_phase((32, 32), 0.3, 2), limit_to=5), 3)


def test_merge_accepts_realisable_and_refuses_impossible_sections():
    along_x = make_lamellae((64, 64), spacing=8, angle=90.0)  # stripes of constant x: short range along x...
    long_x = along_x.T.copy()  # ...and this one is elongated along x (rows vary, columns constant)
    iso = make_two_phase((64, 64), 0.5, 3, seed=0)
    d_long = characterize(long_x, limit_to=4)
    d_iso = characterize(iso, limit_to=4)
    # elongated along x in the yx and zx planes, isotropic in zy: realisable (fibres along x)
    merged = merge(yx=d_long, zx=d_long)
    assert merged.axes == ["z", "y"]
    # yx elongated along x, but zy claims the y direction is elongated (columns) while yx says y is short
    with pytest.raises(InputError, match="cannot be realised"):
        merge(yx=d_long, zy=d_long, zx=d_iso)
    with pytest.raises(InputError, match="two or three"):
        merge(yx=d_long)


def test_bad_structures_are_refused():
    with pytest.raises(InputError, match="single phase"):
        characterize(np.zeros((32, 32), dtype=int))
    with pytest.raises(InputError, match="at most"):
        characterize(np.arange(32 * 32).reshape(32, 32) % 40)
    with pytest.raises(InputError, match="limit_to"):
        characterize(make_two_phase((16, 16), 0.5, 2), limit_to=8)
    with pytest.raises(InputError, match="fractional"):
        characterize(np.random.default_rng(0).random((16, 16)))
    with pytest.raises(InputError, match="unknown descriptor"):
        characterize(make_two_phase((16, 16), 0.5, 2), descriptors=("nope",), limit_to=2)
