import numpy as np
import pytest
import tifffile
from distributed import Client, LocalCluster

from napari_microfingerprint import InputError, make_two_phase
from napari_microfingerprint.core.folders import encode_folder, segment_folder
from napari_microfingerprint.core.segmentation import segment_grains, segment_phases
from napari_microfingerprint.core.synthetic import make_micrograph
from napari_microfingerprint.core.vae.model_io import encode
from napari_microfingerprint.core.vae.training import train_vae

PATCH = 32


@pytest.fixture(scope="module")
def images():
    """Six small two-phase micrographs: five of 48 x 48 and one of a single patch."""
    shapes = [(48, 48)] * 5 + [(PATCH, PATCH)]
    return [make_micrograph(make_two_phase(s, 0.4, 3.0, seed=k), seed=k) for k, s in enumerate(shapes)]


@pytest.fixture(scope="module")
def folder(images, tmp_path_factory):
    root = tmp_path_factory.mktemp("micrographs")
    for k, image in enumerate(images[:4]):
        tifffile.imwrite(root / f"im{k}.tif", image)
    np.save(root / "im4.npy", images[4])
    rgb = np.repeat((images[5] * 255).astype(np.uint8)[..., None], 3, axis=-1)
    tifffile.imwrite(root / "im5.tif", rgb)  # an RGB file: read as greyscale
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def greys(folder):
    """The images as the folder functions see them (the RGB one converted to grey)."""
    from napari_microfingerprint.core.folders import read_image

    return {p.name: read_image(p) for p in sorted(folder.iterdir()) if p.suffix != ".txt"}


@pytest.fixture(scope="module")
def model(images):
    return train_vae(images, architecture="conv", patch_size=PATCH, latent_dim=4, epochs=1, batch_size=4,
                     patches_per_image=4, channels=(4, 8), device="cpu")


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": ":0"}) as cluster, Client(cluster) as c:
        yield c


def _expected_rows(model, greys, stride):
    rows = []
    for name, image in greys.items():
        fp = encode(model, image, stride)
        if stride is None:
            rows.append((name, -1, -1, fp if fp.ndim == 1 else fp.reshape(-1, fp.shape[-1]).mean(axis=0)))
        elif fp.ndim == 1:
            rows.append((name, 0, 0, fp))
        else:
            rows += [(name, i * stride, j * stride, fp[i, j]) for i in range(fp.shape[0]) for j in range(fp.shape[1])]
    return rows


def _check_fingerprints(table, model, greys, stride):
    expected = _expected_rows(model, greys, stride)
    zs = [f"z{k}" for k in range(model.config["latent_dim"])]
    assert list(table.columns) == ["file", *([] if stride is None else ["y", "x"]), *zs]
    assert list(table["file"]) == [r[0] for r in expected]
    if stride is not None:
        assert list(table["y"]) == [r[1] for r in expected] and list(table["x"]) == [r[2] for r in expected]
    np.testing.assert_array_equal(table[zs].to_numpy(), np.array([r[3] for r in expected]))


@pytest.mark.parametrize("stride", [None, 16])
def test_encode_folder_equals_encode_serial_and_distributed(model, folder, greys, client, stride):
    serial = encode_folder(model, folder, stride=stride)
    if stride is None:
        assert len(serial) == 6  # one row per image
    else:
        assert len(serial) == 5 * 4 + 1  # 2 x 2 windows of each 48 x 48 image, one of the patch-sized one
    _check_fingerprints(serial, model, greys, stride)
    # the workers rebuild the model from its weights: measured bit-identical to encoding here
    _check_fingerprints(encode_folder(model, folder, stride=stride, client=client), model, greys, stride)


def test_segment_folder_writes_labels_serial_and_distributed(folder, greys, client, tmp_path):
    serial = segment_folder(folder, tmp_path / "serial")
    assert list(serial["file"]) == list(greys) and list(serial.columns) == ["file", "output", "fraction_0",
                                                                             "fraction_1"]
    for row in serial.itertuples():
        direct = segment_phases(greys[row.file])
        written = tifffile.imread(row.output)
        np.testing.assert_array_equal(written, direct)
        assert row.output.endswith(f"{row.file.rsplit('.', 1)[0]}_labels.tif")
        assert row.fraction_1 == pytest.approx(direct.mean()) and row.fraction_0 + row.fraction_1 == pytest.approx(1)
    spread = segment_folder(folder, tmp_path / "dask", client=client)
    np.testing.assert_array_equal(spread[["fraction_0", "fraction_1"]], serial[["fraction_0", "fraction_1"]])
    for a, b in zip(spread["output"], serial["output"]):
        np.testing.assert_array_equal(tifffile.imread(a), tifffile.imread(b))


def test_segment_folder_grains_and_settings(folder, greys, tmp_path):
    table = segment_folder(folder, tmp_path / "g", kind="grains", source="boundaries", min_size=8)
    first = next(iter(greys))
    direct = segment_grains(greys[first], source="boundaries", min_size=8)
    assert table.loc[0, "grains"] == len(np.unique(direct[direct > 0]))
    np.testing.assert_array_equal(tifffile.imread(table.loc[0, "output"]), direct)
    three = segment_folder(folder, tmp_path / "p", n_phases=3, method="multiotsu")
    assert {"fraction_0", "fraction_1", "fraction_2"} <= set(three.columns)


@pytest.mark.filterwarnings("ignore:The legacy `DICOM` plugin:DeprecationWarning")  # imageio trying plugins
def test_bad_folders_and_settings_are_refused(folder, model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no image files"):
        segment_folder(empty, tmp_path / "out")
    with pytest.raises(InputError, match="is not a folder"):
        encode_folder(model, tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="bad.png could not be read"):
        segment_folder(broken, tmp_path / "out")
    with pytest.raises(InputError, match="kind 'edges' is unknown"):
        segment_folder(folder, tmp_path / "out", kind="edges")
    with pytest.raises(InputError, match="takes no thresholds_list"):
        segment_folder(folder, tmp_path / "out", thresholds_list=[0.5])
    with pytest.raises(InputError, match="stride=0 is out of range"):
        encode_folder(model, folder, stride=0)
    small = tmp_path / "small"
    small.mkdir()
    np.save(small / "tiny.npy", np.random.default_rng(0).random((16, 16)))
    with pytest.raises(InputError, match="tiny.npy is smaller than the model's patch size"):
        encode_folder(model, small)
    np.save(small / "flat.npy", np.ones((40, 40)))
    with pytest.raises(InputError, match="flat.npy: The image is constant"):
        segment_folder(small, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
