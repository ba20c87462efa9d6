import pytest
import torch

from napari_microfingerprint import InputError
from napari_microfingerprint.core.vae.models import MODELS, build_model


@pytest.mark.parametrize("architecture, patch, latent", [
    ("conv", 64, 8), ("conv", 128, 32),
    ("resnet18", 32, 8), ("resnet18", 64, 16),
    ("texture", 32, 8), ("texture", 64, 64),
])
def test_shapes_and_gradients(architecture, patch, latent):
    torch.manual_seed(0)
    model = build_model(architecture, patch_size=patch, latent_dim=latent)
    x = torch.rand(2, 1, patch, patch)
    x_hat, mu, logvar = model(x)
    assert x_hat.shape == x.shape and mu.shape == (2, latent) and logvar.shape == (2, latent)
    (x_hat.mean() + mu.pow(2).mean()).backward()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and all(p.grad is not None for p in trained)
    model.eval()
    with torch.no_grad():
        z, _ = model.encode(x)
        torch.testing.assert_close(model(x)[0], model.decode(z))  # eval mode decodes the posterior mean


def test_texture_encoder_is_frozen_and_registry_is_complete():
    assert {"conv", "resnet18", "texture"} <= set(MODELS)
    model = build_model("texture", patch_size=32, latent_dim=8)
    assert not any(p.requires_grad for p in model.features.parameters())
    with pytest.raises(InputError, match="unknown architecture"):
        build_model("unet")
    with pytest.raises(InputError, match="multiple of 64"):
        build_model("conv", patch_size=100)
