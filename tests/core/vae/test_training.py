import numpy as np
import pytest

from napari_microfingerprint import InputError, make_grain_structure, make_two_phase
from napari_microfingerprint.core.vae.model_io import decode, decode_labels, encode, load_model, save_model
from napari_microfingerprint.core.vae.training import train_vae


@pytest.fixture(scope="module")
def grain_model():
    images = [make_grain_structure((96, 96), stage="late", seed=s, device="cpu") for s in range(2)]
    return train_vae(images, architecture="conv", patch_size=64, latent_dim=16, epochs=6, batch_size=8,
                     patches_per_image=40, learning_rate=2e-3, device="cpu")


def test_tiny_model_lowers_its_validation_loss(grain_model):
    val = grain_model.history["val_loss"]
    assert len(val) >= 3 and min(val[1:]) < 0.7 * val[0]
    assert grain_model.config["transform"] == "distance"
    assert len(grain_model.history["train_loss"]) == len(val)


def test_save_load_gives_identical_outputs(grain_model, tmp_path):
    save_model(grain_model, tmp_path / "m")
    back = load_model(tmp_path / "m")
    image = make_grain_structure((64, 64), stage="late", seed=9, device="cpu")
    np.testing.assert_array_equal(encode(back, image), encode(grain_model, image))
    z = encode(grain_model, image)
    np.testing.assert_array_equal(decode(back, z), decode(grain_model, z))
    assert back.history == grain_model.history


def test_corrupt_and_mismatched_files_are_refused(grain_model, tmp_path):
    save_model(grain_model, tmp_path / "m")
    weights = tmp_path / "m.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_model(tmp_path / "m")
    save_model(grain_model, tmp_path / "n")
    cfg = (tmp_path / "n.json").read_text().replace('"latent_dim": 16', '"latent_dim": 32')
    (tmp_path / "n.json").write_text(cfg)
    with pytest.raises(InputError, match="do not fit"):
        load_model(tmp_path / "n")
    (tmp_path / "o.json").write_text("{}")
    with pytest.raises(InputError, match="not a napari-microfingerprint VAE"):
        load_model(tmp_path / "o")


def test_encode_map_and_decode_labels(grain_model):
    big = make_grain_structure((128, 96), stage="late", seed=5, device="cpu")
    fmap = encode(grain_model, big, stride=32)
    assert fmap.shape == (3, 2, 16)
    images = decode(grain_model, fmap.reshape(-1, 16))
    assert images.shape == (6, 64, 64)
    labels = decode_labels(grain_model, fmap[0, 0], h=0.2)  # a 6-epoch model decodes soft, shallow peaks
    assert labels.shape == (64, 64) and labels.max() >= 1
    with pytest.raises(InputError, match="smaller than the model's patch size"):
        encode(grain_model, big[:32, :32])


def test_bad_training_input():
    with pytest.raises(InputError, match="smaller than the patch size"):
        train_vae([make_two_phase((32, 32), 0.5, 2.0).astype(float)], patch_size=64, device="cpu")
    with pytest.raises(InputError, match="single grain"):
        train_vae([np.ones((64, 64), dtype=np.int32)], transform="distance", patch_size=64, device="cpu")
    with pytest.raises(InputError, match="2D"):
        train_vae([np.zeros((4, 64, 64))], device="cpu")
