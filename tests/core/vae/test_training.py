import numpy as np
import pytest
import torch

from napari_microfingerprint import InputError, make_grain_structure, make_two_phase
from napari_microfingerprint.core.vae import training
from napari_microfingerprint.core.vae.model_io import decode, decode_labels, encode, load_model, save_model
from napari_microfingerprint.core.vae.training import N_EXAMPLES, train_vae, train_vae_iter


@pytest.fixture(scope="module")
def grain_model():
    images = [make_grain_structure((96, 96), stage="late", seed=s, device="cpu") for s in range(2)]
    return train_vae(images, architecture="conv", patch_size=64, latent_dim=16, epochs=6, batch_size=8,
                     patches_per_image=40, learning_rate=2e-3, device="cpu")


def test_tiny_model_lowers_its_validation_loss(grain_model):
    val = grain_model.history["val_loss"]
    assert len(val) >= 3 and min(val[1:]) < 0.8 * val[0]
    assert grain_model.config["transform"] == "distance"
    assert grain_model.config["beta"] == training.DEFAULT_BETA["distance"] == 1e-3  # beta 1 gives a mean decoder
    assert len(grain_model.history["train_loss"]) == len(val)


def test_an_explicit_kl_weight_is_kept():
    maps = [make_grain_structure((64, 64), stage="late", seed=s, device="cpu") for s in range(2)]
    model = train_vae(maps, patch_size=32, latent_dim=4, channels=(8,), epochs=1, batch_size=4, patches_per_image=8,
                      beta=0.0, device="cpu")
    assert model.config["transform"] == "distance" and model.config["beta"] == 0.0


def test_save_load_gives_identical_outputs(grain_model, tmp_path):
    save_model(grain_model, tmp_path / "m")
    back = load_model(tmp_path / "m")
    image = make_grain_structure((64, 64), stage="late", seed=9, device="cpu")
    np.testing.assert_array_equal(encode(back, image), encode(grain_model, image))
    z = encode(grain_model, image)
    np.testing.assert_array_equal(decode(back, z), decode(grain_model, z))
    assert back.history == grain_model.history
    with pytest.raises(InputError, match="does not exist"):  # a missing folder is named, not a Rust I/O error
        save_model(grain_model, tmp_path / "no_such_folder" / "m")


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
    save_model(grain_model, tmp_path / "r")  # weights of a conv model under a resnet18 config
    cfg = (tmp_path / "r.json").read_text().replace('"architecture": "conv"', '"architecture": "resnet18"')
    (tmp_path / "r.json").write_text(cfg)
    with pytest.raises(InputError, match="do not fit a resnet18 model"):
        load_model(tmp_path / "r")
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


def test_history_reports_each_loss_and_the_held_out_test_loss(grain_model):
    h, beta = grain_model.history, grain_model.config["beta"] / 64**2  # the KL weight is beta per pixel
    for split in ("train", "val"):
        total = np.array(h[f"{split}_reconstruction"]) + beta * np.array(h[f"{split}_kl"])
        np.testing.assert_allclose(h[f"{split}_loss"], total, rtol=1e-6)
        assert all(k > 0 for k in h[f"{split}_kl"])
    assert 0 < h["test_reconstruction"] <= h["test_loss"]
    # the test patches are unseen, so their loss is of the order of the best validation loss, not zero
    assert 0.3 * min(h["val_loss"]) < h["test_loss"] < 3 * min(h["val_loss"])


def test_epoch_progress_carries_example_reconstructions():
    images = [make_two_phase((96, 96), 0.4, 3.0, seed=s).astype(float) for s in range(2)]
    steps = list(_drain(train_vae_iter(images, patch_size=64, latent_dim=4, epochs=2, batch_size=8,
                                       patches_per_image=24, device="cpu")))
    epochs = [p for p in steps if p.val_loss is not None]
    assert len(epochs) == 2 and all(p.examples is None for p in steps if p.val_loss is None)
    assert epochs[0].examples.shape == (N_EXAMPLES, 64, 128)
    # the left half is the input patch of a 40 % two-phase structure (interpolated where rotated), the right
    # half the decoder's output; both in [0, 1]
    left, right = epochs[-1].examples[..., :64], epochs[-1].examples[..., 64:]
    assert abs(left.mean() - 0.4) < 0.15 and np.mean((left == 0) | (left == 1)) > 0.7
    assert 0 <= left.min() and left.max() <= 1 and 0 <= right.min() and right.max() <= 1


def _drain(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration:
            return


def test_white_balanced_models_ignore_lighting():
    """With the per-image white balance (paper 001 2.2), a change of brightness and contrast leaves the
    fingerprint unchanged."""
    rng = np.random.default_rng(1)
    images = [make_micrograph_like(rng) for _ in range(2)]
    model = train_vae(images, patch_size=64, latent_dim=4, epochs=1, batch_size=8, patches_per_image=24,
                      device="cpu")
    assert model.config["transform"] == "percentile" and model.config["beta"] == 1.0
    np.testing.assert_allclose(encode(model, images[0] * 0.5 + 60), encode(model, images[0]), atol=1e-5)


def make_micrograph_like(rng):
    return make_two_phase((96, 96), 0.5, 3.0, seed=int(rng.integers(100))) * 120.0 + rng.normal(50, 5, (96, 96))


def test_mixed_sizes_train_and_a_small_image_is_named():
    images = [make_two_phase((72, 136), 0.5, 2.0, seed=1).astype(float),
              make_two_phase((160, 80), 0.5, 2.0, seed=2).astype(float)]
    model = train_vae(images, patch_size=64, latent_dim=4, epochs=1, batch_size=8, patches_per_image=16,
                      device="cpu")
    assert model.config["data"]["shapes"] == [[72, 136], [160, 80]]
    with pytest.raises(InputError, match="training image 2 of 3 .* smaller than the patch size 64"):
        train_vae([images[0], images[0][:40], images[1]], patch_size=64, device="cpu")


def test_non_finite_loss_stops_and_keeps_the_last_good_weights(monkeypatch):
    images = [make_two_phase((96, 96), 0.5, 2.0, seed=s).astype(float) for s in range(2)]
    kwargs = dict(patch_size=64, latent_dim=4, batch_size=8, patches_per_image=24, device="cpu", seed=3)
    good = train_vae(images, epochs=1, **kwargs)
    calls = {"n": 0}
    original = training.reconstruction_loss

    def failing(*args):
        calls["n"] += 1
        value = original(*args)
        return value * float("nan") if calls["n"] > 7 else value  # NaN in the second epoch (6 steps each)

    monkeypatch.setattr(training, "reconstruction_loss", failing)
    with pytest.warns(RuntimeWarning, match="training stopped"):
        model = train_vae(images, epochs=3, **kwargs)
    assert "epoch 2" in model.history["stopped"] and len(model.history["val_loss"]) == 1
    z = encode(model, images[0][:64, :64])
    assert np.isfinite(z).all()
    np.testing.assert_allclose(z, encode(good, images[0][:64, :64]), atol=1e-6)  # the epoch-1 weights


def test_auto_transform_tells_label_maps_from_8_bit_micrographs():
    grains = make_grain_structure((64, 64), stage="late", seed=0, device="cpu")
    micrograph = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    assert training._as_inputs([grains], "auto", 64)[1] == "distance"
    assert training._as_inputs([micrograph], "auto", 64)[1] == "percentile"
    assert training._as_inputs([grains, micrograph], "auto", 64)[1] == "percentile"


def test_custom_channels_are_trained_saved_and_loaded(tmp_path):
    images = [make_two_phase((96, 96), 0.5, 3.0, seed=s).astype(float) for s in range(2)]
    model = train_vae(images, patch_size=64, latent_dim=4, epochs=1, batch_size=8, patches_per_image=16,
                      channels=(8, 16, 24), device="cpu")
    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs[:6]] == [8, 8, 16, 16, 24, 24]  # two 3x3 convolutions per block
    save_model(model, tmp_path / "small")
    back = load_model(tmp_path / "small")
    np.testing.assert_array_equal(encode(back, images[0][:64, :64]), encode(model, images[0][:64, :64]))


def test_pool_two_keeps_a_spatial_map_and_survives_saving(tmp_path):
    """Paper 000's pooling by 4 leaves 64-px patches a 1 x 1 map; ``pool=2`` keeps 8 x 8 (64 / 2^3), counted on
    the encoder's output, and the setting is saved with the model."""
    images = [make_two_phase((96, 96), 0.5, 3.0, seed=s).astype(float) for s in range(2)]
    model = train_vae(images, patch_size=64, latent_dim=4, epochs=1, batch_size=8, patches_per_image=16, pool=2,
                      device="cpu")
    with torch.no_grad():
        features = model.net.encoder[:-1](torch.zeros(1, 1, 64, 64))  # before the flattening
    assert features.shape[-2:] == (8, 8)
    save_model(model, tmp_path / "pool2")
    back = load_model(tmp_path / "pool2")
    np.testing.assert_array_equal(encode(back, images[0][:64, :64]), encode(model, images[0][:64, :64]))
    with pytest.raises(InputError, match="pool"):
        train_vae(images, architecture="texture", patch_size=64, pool=2, epochs=1, device="cpu")
