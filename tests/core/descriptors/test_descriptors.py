"""Each descriptor against a brute-force numpy loop, known analytic cases, and autograd's gradcheck."""
import numpy as np
import pytest
import torch

from napari_microfingerprint.core.descriptors import available_descriptors, get_descriptor, register_descriptor
from napari_microfingerprint.core.descriptors import registry as registry_module
from napari_microfingerprint.core.descriptors.correlations import half_plane_offsets, line_offsets
from napari_microfingerprint.core.descriptors.gram import feature_extractor
from napari_microfingerprint.core.descriptors.morphology import chord_lengths_for
from napari_microfingerprint.core.descriptors.sets import evaluate, slices

RNG = np.random.default_rng(0)
L = 3


def _field(shape=(2, 1, 9, 11)):
    return RNG.random(shape)


def _at(a: np.ndarray, y: int, x: int) -> float:
    return a[y % a.shape[0], x % a.shape[1]]


def brute_s2(img: np.ndarray, limit_to: int) -> np.ndarray:
    h, w = img.shape
    return np.array([sum(img[y, x] * _at(img, y + dy, x + dx) for y in range(h) for x in range(w)) / (h * w)
                     for dy, dx in half_plane_offsets(limit_to)])


def brute_s3(img: np.ndarray, limit_to: int) -> np.ndarray:
    h, w = img.shape
    offs = line_offsets(limit_to)
    out = []
    for i in range(len(offs)):
        for j in range(i, len(offs)):
            (a, b), (c, d) = offs[i], offs[j]
            out.append(sum(img[y, x] * _at(img, y + a, x + b) * _at(img, y + c, x + d)
                           for y in range(h) for x in range(w)) / (h * w))
    return np.array(out)


def brute_variation(img: np.ndarray) -> float:
    h, w = img.shape
    return sum(abs(img[y, x] - _at(img, y - 1, x)) + abs(img[y, x] - _at(img, y, x - 1))
               for y in range(h) for x in range(w)) / (h * w)


def brute_lineal(img: np.ndarray, limit_to: int, sharpness: float) -> np.ndarray:
    h, w = img.shape
    out = []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        for a in range(1, limit_to + 1):
            n = a + 1
            total = 0.0
            for y in range(h):
                for x in range(w):
                    s = sum(_at(img, y + k * dy, x + k * dx) for k in range(n))
                    total += 1.0 / (1.0 + np.exp(-sharpness * (2 * s - 2 * n + 1)))
            out.append(total / (h * w))
    return np.array(out)


def _rel(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b)


def test_registry_lists_the_builtins():
    assert {"volume_fractions", "s2", "s3", "gram", "variation", "lineal_path", "chord_lengths"} <= set(
        available_descriptors())


def test_volume_fractions_and_s2_against_brute_force():
    f = _field()
    t = torch.from_numpy(f)
    vf = get_descriptor("volume_fractions").func(t)
    np.testing.assert_allclose(vf.numpy(), f.mean(axis=(-2, -1)), rtol=1e-12)
    s2 = get_descriptor("s2").func(t, limit_to=L).numpy()
    for b in range(f.shape[0]):
        assert _rel(s2[b], brute_s2(f[b, 0], L)) < 1e-6


def test_s3_against_brute_force():
    f = _field((1, 1, 8, 9))
    s3 = get_descriptor("s3").func(torch.from_numpy(f), limit_to=2).numpy()
    assert _rel(s3[0], brute_s3(f[0, 0], 2)) < 1e-6


def test_variation_and_lineal_path_against_brute_force():
    f = _field((2, 1, 7, 8))
    t = torch.from_numpy(f)
    tv = get_descriptor("variation").func(t).numpy()
    lp = get_descriptor("lineal_path").func(t, limit_to=L).numpy()
    for b in range(2):
        assert abs(tv[b, 0] - brute_variation(f[b, 0])) / brute_variation(f[b, 0]) < 1e-6
        assert _rel(lp[b], brute_lineal(f[b, 0], L, 10.0)) < 1e-6


def test_gram_against_brute_force_sums():
    f = _field((1, 1, 8, 8))
    t = torch.from_numpy(f)
    got = get_descriptor("gram").func(t).numpy()[0]
    feats = feature_extractor(1, None, "cpu", torch.float64)(t)
    expected = []
    for fm in feats:
        fm = fm[0].numpy()
        c = fm.shape[0]
        n = fm.shape[1] * fm.shape[2]
        expected += [sum((fm[i] * fm[j]).ravel()) / n for i in range(c) for j in range(i, c)]
    assert _rel(got, np.array(expected)) < 1e-6


def test_checkerboard_s2():
    board = (np.indices((8, 8)).sum(0) % 2).astype(float)[None, None]
    s2 = get_descriptor("s2").func(torch.from_numpy(board), limit_to=3).numpy()[0]
    expected = [0.5 if (dy + dx) % 2 == 0 else 0.0 for dy, dx in half_plane_offsets(3)]
    np.testing.assert_allclose(s2, expected, atol=1e-12)


def test_stripes_total_variation():
    w = 4
    stripes = ((np.arange(32) // w) % 2).astype(float)[None, :].repeat(16, 0)[None, None]
    tv = get_descriptor("variation").func(torch.from_numpy(stripes)).item()
    assert tv == pytest.approx(1.0 / w)  # one boundary every w pixels along x, none along y


def test_single_disk_lineal_path():
    yy, xx = np.indices((40, 40))
    disk = (((yy - 20) ** 2 + (xx - 20) ** 2) <= 8**2).astype(float)
    lp = get_descriptor("lineal_path").func(torch.from_numpy(disk[None, None]), limit_to=6).numpy()[0]
    # hard lineal path along x (first direction): start points whose segment of a+1 pixels lies in the disk
    for a in range(1, 7):
        inside = np.ones_like(disk, dtype=bool)
        for k in range(a + 1):
            inside &= np.roll(disk, -k, axis=1) > 0
        assert lp[a - 1] == pytest.approx(inside.mean(), abs=1e-3)
    # a segment inside the disk gets rarer with length
    assert np.all(np.diff(lp[:6]) < 0)


def ring_runs(line: np.ndarray) -> list[int]:
    """Lengths of the runs of 1 on a periodic line, by walking it from a 0 (none for an all-1 line)."""
    if line.all():
        return []
    start = int(np.argmin(line))
    runs, n = [], 0
    for v in np.roll(line, -start):
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs + ([n] if n else [])


@pytest.mark.parametrize("phases", [2, 3])
def test_chord_lengths_against_counted_runs(phases):
    """On a phase map, S_p(r) is the share of the periodic runs of phase p (rows, then columns) of length >= r."""
    lab = RNG.integers(0, phases, (3, 17, 40))
    lab[0, :, :12] = 0  # long runs of phase 0 in the first slice
    onehot = np.stack([lab == p for p in range(phases)], 1).astype(float)
    seen = onehot[:, 1:2] if phases == 2 else onehot  # what channels() hands a descriptor
    got = get_descriptor("chord_lengths").func(torch.from_numpy(seen), limit_to=4).numpy()
    lengths = chord_lengths_for(4)
    assert lengths == [2, 3, 4, 6, 8, 12, 16]
    order = [1, 0] if phases == 2 else list(range(phases))  # two phases: the channel, then its complement
    for b in range(3):
        expected = []
        for lines in (lab[b], lab[b].T):  # rows (along x), then columns (along y)
            for p in order:
                runs = np.array(sum((ring_runs(line == p) for line in lines), []))
                count = len(runs) / lab[b].size + 1e-4
                expected += [[(runs >= r).sum() / lab[b].size / count for r in lengths]]
        want = np.array(expected).reshape(2, len(order), -1).transpose(1, 0, 2).reshape(-1)  # channel, axis, r
        np.testing.assert_allclose(got[b], want, rtol=1e-9, atol=1e-12)


def test_chord_lengths_of_stripes():
    """Stripes of width 5 along x: every chord is 5 long along x; along y every column is one phase (no chords)."""
    stripes = ((np.arange(40) // 5) % 2).astype(float)[None, :].repeat(16, 0)[None, None]
    got = get_descriptor("chord_lengths").func(torch.from_numpy(stripes), limit_to=2).numpy()[0]
    lengths = np.array(chord_lengths_for(2))
    per_phase = got.reshape(2, 2, len(lengths))  # (channel and its complement, along x / along y, length)
    along_x, along_y = per_phase[:, 0], per_phase[:, 1]
    for phase_share in along_x:  # each phase: one chord per 10 px, all of them 5 long
        np.testing.assert_allclose(phase_share, np.where(lengths <= 5, 0.1 / (0.1 + 1e-4), 0.0), rtol=1e-9)
    assert np.all(along_y == 0)


@pytest.mark.parametrize("name", ["volume_fractions", "s2", "s3", "variation", "lineal_path", "chord_lengths",
                                  "gram"])
def test_gradcheck(name):
    torch.manual_seed(0)
    x = (torch.rand(1, 1, 6, 6, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    spec = get_descriptor(name)
    assert spec.differentiable
    assert torch.autograd.gradcheck(lambda t: spec.func(t, limit_to=2), (x,), eps=1e-6, atol=1e-5)


def test_batched_axes_equal_a_loop_over_slices():
    vol = torch.from_numpy(RNG.random((1, 6, 7, 8)))
    out = evaluate(vol, ["s2", "variation", "lineal_path"], 2)
    for axis in ("z", "y", "x"):
        batch = slices(vol, axis)
        for k in range(batch.shape[0]):
            one = batch[k:k + 1]
            for name in ("s2", "variation", "lineal_path"):
                ref = get_descriptor(name).func(one, limit_to=2)
                torch.testing.assert_close(out[axis][name][k:k + 1], ref)
    # the y-axis slices are the ZX planes of the volume
    torch.testing.assert_close(slices(vol, "y")[3, 0], vol[0, :, 3, :])
    torch.testing.assert_close(slices(vol, "x")[5, 0], vol[0, :, :, 5])


def test_third_party_descriptor_registration(monkeypatch):
    @register_descriptor("test_mean_square")
    def mean_square(indicator, limit_to=8):
        """Mean of the squared indicator."""
        return (indicator**2).mean(dim=(-2, -1))

    assert available_descriptors()["test_mean_square"].summary == "Mean of the squared indicator."

    loaded = []

    class FakeEntryPoint:
        def load(self):
            loaded.append(True)

    monkeypatch.setattr(registry_module, "_PLUGINS_LOADED", False)
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [FakeEntryPoint()] if
                        group == registry_module.ENTRY_POINT_GROUP else [])
    available_descriptors()
    assert loaded == [True]
    registry_module._REGISTRY.pop("test_mean_square")


def _vgg19_state_dict() -> dict:
    """A torchvision-shaped vgg19 ``features`` state dict (random weights) up to relu4_1."""
    gen = torch.Generator().manual_seed(0)
    widths = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 256), (256, 512)]
    indices = [0, 2, 5, 7, 10, 12, 14, 16, 19]
    sd = {}
    for i, (cin, cout) in zip(indices, widths):
        sd[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * 0.05
        sd[f"features.{i}.bias"] = torch.zeros(cout)
    return sd


def test_gram_with_user_vgg19_weights(tmp_path):
    from safetensors.torch import save_file

    from napari_microfingerprint import InputError

    sd = _vgg19_state_dict()
    pt, st = tmp_path / "vgg19.pth", tmp_path / "vgg19.safetensors"
    torch.save(sd, pt)
    save_file(sd, str(st))
    x = torch.rand(2, 1, 16, 16)
    a = get_descriptor("gram").func(x, weights=str(pt))
    b = get_descriptor("gram").func(x, weights=str(st))
    channels = (64, 128, 256, 512)
    assert a.shape == (2, sum(c * (c + 1) // 2 for c in channels))
    torch.testing.assert_close(a, b)
    truncated = tmp_path / "broken.pth"
    truncated.write_bytes(pt.read_bytes()[:1000])
    with pytest.raises(InputError, match="could not be read"):
        get_descriptor("gram").func(x, weights=str(truncated))
    wrong = {k: v for k, v in sd.items() if "19" not in k}
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(InputError, match="lacks"):
        get_descriptor("gram").func(x, weights=str(tmp_path / "wrong.pth"))
