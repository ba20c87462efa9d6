"""Fingerprint -> descriptors -> structure (issue 13's bridge) on small cases."""
import numpy as np
import pytest

from napari_microfingerprint import InputError, descriptor_error, make_grain_structure, make_two_phase
from napari_microfingerprint.core.fingerprint_structures import (
    fit_descriptor_head,
    structure_from_fingerprint,
    window_descriptors,
)
from napari_microfingerprint.core.generation_quality import generation_quality
from napari_microfingerprint.core.vae.model_io import encode
from napari_microfingerprint.core.vae.models import build_model
from napari_microfingerprint.core.vae.training import VAEModel


def _model(transform: str = "intensity") -> VAEModel:
    config = {"architecture": "conv", "patch_size": 64, "latent_dim": 4, "in_channels": 1, "transform": transform,
              "offset": 0.0, "scale": 1.0}
    return VAEModel(build_model("conv", patch_size=64, latent_dim=4).eval(), config)


@pytest.fixture(scope="module")
def material():
    return make_two_phase((192, 192), 0.35, 3.0, seed=0).astype(float)


def test_a_windows_own_fingerprint_predicts_its_own_descriptors(material):
    """The regression is distance-weighted: at a training window's fingerprint it returns that window's
    descriptors (computed here independently, from the window cut out by hand)."""
    model = _model()
    head = fit_descriptor_head(model, [material], stride=32, limit_to=6)
    assert head.n_windows == 25 and head.threshold == pytest.approx(0.5)
    window = material[32:96, 64:128]
    target = head.predict(encode(model, window))[0]
    own = window_descriptors((window > 0.5)[None].astype(np.int64), 6)[0]
    sets = {0: target, **target.coarse}  # the multigrid levels are predicted too
    predicted = np.concatenate([sets[level].values["2d"][name] for level, name in head.sizes])
    np.testing.assert_allclose(predicted, own, atol=1e-4)  # float32 encodings of the same window differ slightly
    assert target.values["2d"]["volume_fractions"][0] == pytest.approx((window > 0.5).mean(), abs=1e-4)


def test_structures_from_fingerprints_match_their_predicted_descriptors_in_2d_and_3d(material):
    """A fingerprint becomes a sharp two-phase image and volume whose descriptors are the predicted ones (within
    the reconstruction's usual error), and whose statistics lie inside the material's real spread."""
    model = _model()
    head = fit_descriptor_head(model, [material], stride=32, limit_to=6)
    z = encode(model, material[:64, :64])
    target = head.predict(z)[0]
    image = structure_from_fingerprint(head, z, (64, 64), device="cpu", seed=0)
    assert set(np.unique(image.labels)) == {0, 1}
    # closer to the predicted S2 than any other window of the material is (those differ by 0.3-0.9)
    others = [descriptor_error((material[y:y + 64, x:x + 64] > 0.5).astype(int), target)["2d"]["s2"]
              for y in (0, 64, 128) for x in (0, 64, 128) if (y, x) != (0, 0)]
    assert descriptor_error(image.labels, target)["2d"]["s2"] < 0.5 * min(others)
    volume = structure_from_fingerprint(head, z, (32, 32, 32), device="cpu", max_iter=300)
    assert volume.labels.shape == (32, 32, 32)
    assert abs(volume.labels.mean() - target.values["2d"]["volume_fractions"][0]) < 0.03
    real = [(material[y:y + 64, x:x + 64] > 0.5).astype(np.uint8) for y in (0, 64, 128) for x in (0, 64, 128)]
    assert generation_quality([image.labels], real).passed


def test_bad_input_is_refused(material):
    with pytest.raises(InputError, match="grain distance maps"):
        fit_descriptor_head(_model("distance"), [make_grain_structure((96, 96), device="cpu")])
    with pytest.raises(InputError, match="at least 64 x 64"):
        fit_descriptor_head(_model(), [material[:32, :32]])
    head = fit_descriptor_head(_model(), [material], stride=64, limit_to=6)
    with pytest.raises(InputError, match="latent dimension"):
        structure_from_fingerprint(head, np.zeros(7), (32, 32))
    with pytest.raises(InputError, match="give one"):
        structure_from_fingerprint(head, np.zeros((2, 4)), (32, 32))
