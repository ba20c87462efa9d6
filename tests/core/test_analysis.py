import numpy as np
import pytest
from sklearn.decomposition import PCA

from napari_microfingerprint import InputError
from napari_microfingerprint.core.analysis import classify, embed, fit_property


def _linear_data(n=200, dim=16, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, dim))
    w = rng.normal(size=dim)
    return z, 5.0 + z @ w + noise * rng.normal(size=n)


@pytest.mark.parametrize("model", ["linear", "svr"])
def test_regression_recovers_a_linear_relation(model):
    z, y = _linear_data()
    rep = fit_property(z, y, model=model, folds=10)
    assert rep.r2 > 0.95
    assert sorted(np.unique(rep.fold)) == list(range(10)) and len(rep.fold_mape) == 10
    # the error summaries agree with their definitions on the out-of-fold predictions
    np.testing.assert_allclose(rep.mape, 100 * np.mean(np.abs(rep.predictions - y) / np.abs(y)))
    np.testing.assert_allclose(rep.mae, np.mean(np.abs(rep.predictions - y)))


def test_regression_on_noise_is_at_chance_level():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(150, 16)), rng.normal(10.0, 1.0, size=150)
    for model in ("linear", "svr"):
        assert fit_property(z, y, model=model).r2 < 0.05


def test_leave_one_group_out_predicts_every_group_from_the_others():
    z, y = _linear_data(n=60)
    groups = np.repeat(np.arange(6), 10)
    rep = fit_property(z, y, model="linear", groups=groups)
    np.testing.assert_array_equal(rep.fold, groups)  # fold k holds exactly group k
    assert rep.r2 > 0.9


def test_classification_and_chance():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], 30)
    z = rng.normal(size=(90, 8)) + 5.0 * np.eye(8)[labels]
    rep = classify(z, labels)
    assert rep.accuracy > 0.9 and rep.chance == pytest.approx(1 / 3)
    noise = classify(rng.normal(size=(90, 8)), labels)
    assert noise.accuracy < 0.6


def test_embeddings():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(60, 10)) * np.linspace(5, 0.1, 10)
    pca = embed(z, "pca")
    np.testing.assert_allclose(np.abs(pca), np.abs(PCA(2).fit_transform(z)), atol=1e-8)
    # t-SNE keeps two well separated clusters apart
    two = np.concatenate([rng.normal(size=(30, 10)), rng.normal(size=(30, 10)) + 20])
    xy = embed(two, "tsne")
    gap = np.linalg.norm(xy[:30].mean(0) - xy[30:].mean(0))
    assert gap > 3 * max(xy[:30].std(0).max(), xy[30:].std(0).max())


def test_bad_input():
    z, y = _linear_data(n=8)
    with pytest.raises(InputError, match="too few for 10-fold"):
        fit_property(z, y, folds=10)
    with pytest.raises(InputError, match="one value each"):
        fit_property(z, y[:5], folds=2)
    with pytest.raises(InputError, match="NaN"):
        fit_property(np.full((8, 3), np.nan), y, folds=2)
    with pytest.raises(InputError, match="method=.umap. is unknown"):
        embed(z, "umap")
    with pytest.raises(InputError, match="too few for 10 folds"):
        classify(z, np.arange(8) % 2)


def test_zero_values_are_left_out_of_the_percentage_error():
    z, y = _linear_data(n=100)
    y = np.abs(y)
    y[:7] = 0.0
    rep = fit_property(z, y, model="linear", folds=5)
    keep = y > 0
    np.testing.assert_allclose(rep.mape, 100 * np.mean(np.abs(rep.predictions - y)[keep] / y[keep]))
    assert rep.zero_values == 7 and np.isfinite(rep.mape) and "7 zero values" in rep.summary()


def test_window_properties_follow_the_encoder_windows():
    from napari_microfingerprint import grain_statistics, make_grain_structure
    from napari_microfingerprint.core.analysis import patch_property, window_properties

    grains = make_grain_structure((96, 128), stage="late", seed=1, device="cpu")
    areas = window_properties(grains, 64, 32, "mean grain area", is_labels=True)
    assert areas.shape == (2 * 3,)  # rows 0, 32; columns 0, 32, 64, row by row as encode flattens its map
    assert areas[4] == pytest.approx(grain_statistics(grains[32:96, 32:96])[1]["mean_area"])
    two_phase = np.zeros((64, 64))
    two_phase[:, :16] = 5.0
    assert patch_property(two_phase, "phase fraction", is_labels=False) == pytest.approx(0.25)
    with pytest.raises(InputError, match="needs a grain label map"):
        patch_property(two_phase, "mean grain area", is_labels=False)
    with pytest.raises(InputError, match="unknown property"):
        patch_property(two_phase, "porosity", is_labels=False)


def test_identical_fingerprints_are_refused_instead_of_crashing():
    """t-SNE of identical fingerprints used to kill the process (a segmentation fault); it must be an InputError."""
    import subprocess
    import sys

    code = ("import numpy as np\nfrom napari_microfingerprint import embed, InputError\n"
            "for method in ('tsne', 'pca'):\n"
            "    try:\n        embed(np.ones((20, 8)), method)\n    except InputError as err:\n"
            "        print('refused', method, 'different value' in str(err))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-500:]
    assert run.stdout.split("\n")[:2] == ["refused tsne True", "refused pca True"]
    two = np.ones((20, 8))
    two[:10] += 1.0
    with pytest.raises(InputError, match="2 different"):
        embed(two, "tsne")
    assert embed(two, "pca").shape == (20, 2)  # two groups are a fine PCA
