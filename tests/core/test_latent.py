import numpy as np
import pytest

from napari_microfingerprint import InputError, decode, encode, make_grain_structure, train_vae
from napari_microfingerprint.core.latent import (
    decoder_probes,
    gaussian_cloud,
    interpolate_latent,
    ood_score,
    sample_latent,
    traverse,
)


@pytest.fixture(scope="module")
def model():
    images = [make_grain_structure((96, 96), stage="late", seed=s, device="cpu") for s in range(2)]
    return train_vae(images, architecture="conv", patch_size=64, latent_dim=8, epochs=2, batch_size=8,
                     patches_per_image=24, device="cpu")


@pytest.fixture(scope="module")
def reference(model):
    images = [make_grain_structure((128, 128), stage="late", seed=10 + s, device="cpu") for s in range(3)]
    return np.concatenate([encode(model, im, stride=8).reshape(-1, 8) for im in images])


def test_path_endpoints_decode_to_the_endpoints(model, reference):
    z1, z2 = reference[0], reference[-1]
    walk = interpolate_latent(model, z1, z2, steps=5)
    assert walk.z.shape == (5, 8) and walk.images.shape == (5, 64, 64)
    np.testing.assert_allclose(walk.images[0], decode(model, z1), atol=1e-5)
    np.testing.assert_allclose(walk.images[-1], decode(model, z2), atol=1e-5)
    np.testing.assert_allclose(walk.z[2], (z1 + z2) / 2, atol=1e-6)  # t = 0.5 is the midpoint


def test_sweep_changes_only_the_chosen_dimension(model, reference):
    walk = traverse(model, reference[3], dim=5)
    np.testing.assert_allclose(walk.z[:, 5], np.linspace(-4, 4, 10), atol=1e-6)
    others = np.delete(walk.z, 5, axis=1)
    np.testing.assert_array_equal(others, np.repeat(np.delete(reference[3], 5)[None], 10, axis=0))
    with pytest.raises(InputError, match="out of range"):
        traverse(model, reference[3], dim=8)


def test_samples_reproduce_the_fitted_normals(model):
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=8), rng.uniform(0.2, 2.0, size=8)
    fitted_on = rng.normal(mean, std, size=(400, 8))
    walk = sample_latent(model, fitted_on, n=4000, seed=1)
    # against the fitted set's own statistics: standard errors of 4000 draws are std/63 and std/89
    assert np.all(np.abs(walk.z.mean(0) - fitted_on.mean(0)) < 5 * fitted_on.std(0) / np.sqrt(4000))
    np.testing.assert_allclose(walk.z.std(0), fitted_on.std(0, ddof=1), rtol=0.06)


def test_ood_score_grows_with_gamma(model, reference):
    spread = np.sqrt(reference.var(axis=0).sum())  # the reference cloud's RMS radius
    scores = [gaussian_cloud(model, reference[0], gamma=g * spread, n=40, seed=2, reference=reference).ood.mean()
              for g in (0.01, 0.1, 0.5, 2.0)]
    assert all(a < b for a, b in zip(scores, scores[1:]))
    assert scores[0] < 0.1  # a tiny cloud around a reference fingerprint is inside the cloud
    assert scores[-1] > 1  # a cloud twice the reference's radius leaves it
    inside = ood_score(reference[:5], reference)
    np.testing.assert_allclose(inside, 0.0, atol=1e-6)  # the reference's own points are at distance zero
    with pytest.raises(InputError, match="gamma=0 is out of range"):
        gaussian_cloud(model, reference[0], gamma=0)


def test_decoder_probes_and_grain_labels(model):
    walk = decoder_probes(model, dims=(0, 7), k_values=(2, 8), amplitudes=(2.0,), labels=True)
    # a briefly trained decoder gives flat maps for some probes: those steps hold no grains, and say so
    empty = walk.parameters.get("no_grains", [])
    assert all(not walk.labels[i].any() for i in empty)
    assert all(walk.labels[i].max() >= 1 for i in range(6) if i not in empty)
    assert walk.parameters["steps"][0] == "baseline (all zero)" and len(walk.parameters["steps"]) == 6
    assert not walk.z[0].any() and walk.z[2, 7] == 1 and walk.z[4].sum() == 8 and walk.z[5, 0] == 2
    assert walk.labels.shape == walk.images.shape == (6, 64, 64)
    with pytest.raises(InputError, match="dims entry"):
        decoder_probes(model, dims=(9,))
