"""The generation-quality measure (issue 13, item 1) against cases whose answer is known."""
import numpy as np
import pytest

from napari_microfingerprint import InputError, make_grain_structure, make_two_phase
from napari_microfingerprint.core.generation_quality import generation_quality, normalised_autocorrelation


def _tiles(image: np.ndarray, side: int) -> list[np.ndarray]:
    return [image[y:y + side, x:x + side] for y in range(0, image.shape[0] - side + 1, side)
            for x in range(0, image.shape[1] - side + 1, side)]


@pytest.fixture(scope="module")
def real():
    return _tiles(make_two_phase((384, 384), 0.35, 4.0, seed=0), 48)


def test_normalised_autocorrelation_of_hand_computed_cases():
    """Stripes of period 4 (two rows of 1, two of 0): phi = 1/2; one row down S2 = 1/4, so f = 0; two rows
    down the stripes are swapped, S2 = 0 and f = -1; along the stripes f = 1. A full patch is undefined."""
    stripes = np.repeat(np.array([1, 1, 0, 0] * 4)[:, None], 16, axis=1)
    f = normalised_autocorrelation(stripes, 2, 2)
    from napari_microfingerprint.core.descriptors.correlations import half_plane_offsets

    offsets = half_plane_offsets(2)
    assert f[offsets.index((0, 0))] == pytest.approx(1.0)
    assert f[offsets.index((0, 2))] == pytest.approx(1.0)
    assert f[offsets.index((1, 0))] == pytest.approx(0.0)
    assert f[offsets.index((2, 0))] == pytest.approx(-1.0)
    assert np.isnan(normalised_autocorrelation(np.ones((8, 8), int), 2, 2)).all()


def test_real_patches_are_inside_and_noise_is_outside(real):
    """The real patches against themselves pass; white noise with the right volume fraction passes on the volume
    fraction and fails on the S2 shape; a coarser medium of the same fraction fails on the S2 shape."""
    itself = generation_quality(real, real)
    assert itself.passed
    rng = np.random.default_rng(0)
    noise = generation_quality([(rng.random((48, 48)) < 0.35).astype(np.uint8) for _ in range(16)], real)
    table = noise.table.set_index("statistic")
    assert table.loc["volume fraction of phase 1", "inside_share"] >= 0.9
    assert table.loc["S2 shape distance to the real mean", "inside_share"] == 0.0 and not noise.passed
    coarse = generation_quality(_tiles(make_two_phase((384, 384), 0.35, 10.0, seed=5), 48), real)
    assert coarse.table.set_index("statistic").loc["S2 shape distance to the real mean", "inside_share"] < 0.5
    assert len(coarse.samples) == 64 and "S2 shape distance to the real mean inside" in coarse.samples


def test_summary_names_the_size_of_the_real_set(real):
    """The verdict says how many real patches the spread comes from, and warns below FEW_REAL_PATCHES."""
    from napari_microfingerprint.core.generation_quality import FEW_REAL_PATCHES

    few = generation_quality(real[:8], real)
    assert few.n_real == len(real) == 64 < FEW_REAL_PATCHES
    assert "against 64 real patches" in few.summary() and "only 64 real patches" in few.summary()
    many = generation_quality(real[:8], _tiles(make_two_phase((768, 768), 0.35, 4.0, seed=1), 48))
    assert many.n_real == 256 and "against 256 real patches" in many.summary() and "only" not in many.summary()


def test_grain_statistics_separate_growth_stages():
    """Late-stage Potts patches are inside the spread of other late-stage patches and outside that of early
    ones (many more, smaller grains), on grain count and mean area."""
    late = _tiles(make_grain_structure((192, 192), stage="late", seed=0, device="cpu"), 64)
    late2 = _tiles(make_grain_structure((192, 192), stage="late", seed=1, device="cpu"), 64)
    early = _tiles(make_grain_structure((192, 192), stage="early", seed=1, device="cpu"), 64)
    same = generation_quality(late2, late, kind="grains").table.set_index("statistic")
    assert same.loc["grain count", "inside_share"] >= 0.75 and same.loc["mean grain area", "inside_share"] >= 0.75
    other = generation_quality(early, late, kind="grains").table.set_index("statistic")
    assert other.loc["grain count", "inside_share"] == 0.0 and other.loc["mean grain area", "inside_share"] == 0.0


def test_bad_input_is_refused(real):
    with pytest.raises(InputError, match="at least 3"):
        generation_quality(real[:2], real[:2])
    with pytest.raises(InputError, match="kind"):
        generation_quality(real, real, kind="texture")
    with pytest.raises(InputError, match="phases the real patches do not"):
        generation_quality([real[0] * 2], real)
    with pytest.raises(InputError, match="generated"):
        generation_quality([], real)


def _intensity_model():
    """An untrained conv VAE whose input units are the image's own values (the checks and the thresholds do not
    depend on its weights)."""
    from napari_microfingerprint.core.vae.models import build_model
    from napari_microfingerprint.core.vae.training import VAEModel

    config = {"architecture": "conv", "patch_size": 64, "latent_dim": 4, "in_channels": 1, "transform": "intensity",
              "offset": 0.0, "scale": 1.0}
    return VAEModel(build_model("conv", patch_size=64, latent_dim=4).eval(), config)


def test_walk_quality_judges_decoded_images_at_the_real_threshold():
    """A walk whose 'decoded' images are soft versions of structures like the real one passes; one that decodes
    the mean image (the blurry VAE of issue 13) fails: split midway between the binary real image's two values,
    it is all one phase."""
    from napari_microfingerprint.core.generation_quality import real_patches, walk_quality
    from napari_microfingerprint.core.latent import LatentWalk

    model = _intensity_model()
    real = make_two_phase((256, 256), 0.4, 4.0, seed=0).astype(float)
    patches, threshold = real_patches(model, real, "phases")
    assert threshold == pytest.approx(0.5) and len(patches) == 16
    other = make_two_phase((256, 256), 0.4, 4.0, seed=9).astype(float)
    soft = np.stack(_tiles(0.2 + 0.6 * other, 64))  # soft grey levels on either side of 0.5
    good = walk_quality(model, LatentWalk("sample", np.zeros((16, 4)), soft), real)
    assert good.passed
    blurry = walk_quality(model, LatentWalk("sample", np.zeros((16, 4)), np.full((16, 64, 64), 0.4)), real)
    assert not blurry.passed and blurry.table.set_index("statistic").loc["volume fraction of phase 1",
                                                                          "inside_share"] == 0.0
    with pytest.raises(InputError, match="at least 64 x 64"):
        walk_quality(model, LatentWalk("sample", np.zeros((1, 4)), soft[:1]), real[:32, :32])


def test_structure_quality_cuts_structures_and_volumes_into_windows_like_the_real_ones():
    """A 2D structure larger than the patch is judged on its patch-sized windows against the real image's; a
    volume thinner than the patch on the windows its sections hold (here every 5th section along the first axis,
    40 px), against real windows of the same 40 px: the tables equal generation_quality of windows cut by hand.
    The real image judged as a structure passes; white noise of its volume fraction fails on the S2 shape."""
    from napari_microfingerprint import structure_quality

    model = _intensity_model()
    real = make_two_phase((256, 256), 0.4, 4.0, seed=0)
    other = make_two_phase((256, 256), 0.4, 4.0, seed=9)
    flat = structure_quality(model, [other[:128, :128], other[128:, 128:]], real.astype(float))
    by_hand = generation_quality(_tiles(other[:128, :128], 64) + _tiles(other[128:, 128:], 64), _tiles(real, 64))
    assert len(flat.samples) == 8 and flat.n_real == 16
    assert flat.table.equals(by_hand.table) and "windows of 64 px (from 2 structures)" in flat.summary()
    assert structure_quality(model, real, real.astype(float)).passed
    volume = np.stack([make_two_phase((40, 40), 0.4, 4.0, seed=s) for s in range(24)])  # (24, 40, 40)
    solid = structure_quality(model, volume, real.astype(float))
    by_hand = generation_quality([volume[k] for k in range(0, 24, 5)], _tiles(real, 40))
    assert len(solid.samples) == 5 and solid.n_real == 36 and solid.table.equals(by_hand.table)
    noise = (np.random.default_rng(0).random((48, 48, 48)) < 0.4).astype(np.uint8)
    judged = structure_quality(model, noise, real.astype(float)).table.set_index("statistic")
    assert judged.loc["S2 shape distance to the real mean", "inside_share"] == 0.0
    with pytest.raises(InputError, match="4 dimensions"):
        structure_quality(model, [np.zeros((4, 64, 64, 2), np.uint8)], real)
