import json

import numpy as np
import pytest
import tifffile

from napari_microfingerprint import InputError, read_microstructure, write_microstructure
from napari_microfingerprint.core.io import guess_layer_type


def test_guess_layer_type():
    assert guess_layer_type(np.zeros((4, 4), dtype=bool)) == "labels"
    assert guess_layer_type(np.array([[0, 1], [2, 1]], dtype=np.uint8)) == "labels"
    assert guess_layer_type(np.linspace(0, 1, 16).reshape(4, 4)) == "image"
    assert guess_layer_type(np.arange(256, dtype=np.uint8).reshape(16, 16)) == "image"
    assert guess_layer_type(np.arange(1, 301, dtype=np.int32).reshape(15, 20)) == "labels"


@pytest.mark.parametrize("ext", [".tif", ".npz"])
def test_roundtrip_keeps_scale_and_type(tmp_path, ext):
    lab = np.random.default_rng(0).integers(0, 500, size=(5, 6, 7)).astype(np.int32)
    path = write_microstructure(tmp_path / f"vol{ext}", lab, layer_type="labels", scale=(2.0, 0.5, 0.25))
    ms = read_microstructure(path)
    np.testing.assert_array_equal(ms.data, lab)
    assert ms.scale == (2.0, 0.5, 0.25)
    assert ms.layer_type == "labels"


def test_tif_description_is_plain_json(tmp_path):
    img = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    path = write_microstructure(tmp_path / "img.tif", img, layer_type="image", scale=(0.2252, 0.2252))
    with tifffile.TiffFile(path) as tif:
        info = json.loads(tif.pages[0].description)["napari_microfingerprint"]
        xres = tif.pages[0].tags["XResolution"].value
    assert info["scale"] == [0.2252, 0.2252] and info["layer_type"] == "image"
    assert xres[0] / xres[1] == pytest.approx(1 / 0.2252, rel=1e-4)
    ms = read_microstructure(path)
    assert ms.layer_type == "image" and ms.data.dtype == np.float32


def test_foreign_tiff_resolution_is_read(tmp_path):
    path = tmp_path / "foreign.tif"
    tifffile.imwrite(path, np.zeros((8, 8), dtype=np.uint8), resolution=(4.0, 2.0))
    assert read_microstructure(path).scale == pytest.approx((0.5, 0.25))


def test_npy_roundtrip_and_errors(tmp_path):
    arr = np.arange(20, dtype=np.uint8).reshape(4, 5) % 3
    path = write_microstructure(tmp_path / "a.npy", arr)
    np.testing.assert_array_equal(read_microstructure(path).data, arr)
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="could not be read"):
        read_microstructure(tmp_path / "broken.tif")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="could not be read"):
        read_microstructure(tmp_path / "objects.npy")
    with pytest.raises(InputError, match="not supported"):
        read_microstructure(tmp_path / "a.png")
    np.savez(tmp_path / "two.npz", a=arr, b=arr)
    with pytest.raises(InputError, match="several arrays"):
        read_microstructure(tmp_path / "two.npz")
