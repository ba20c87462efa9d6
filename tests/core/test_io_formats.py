"""Round trips and refusals for the .raw, .vti and slice-folder formats of core.io."""
import json
import zipfile

import numpy as np
import pytest
import tifffile

from napari_microfingerprint.core import io as mio
from napari_microfingerprint.core import memory
from napari_microfingerprint.core.io import read_microstructure, write_microstructure
from napari_microfingerprint.core.validation import InputError

RNG = np.random.default_rng(7)
LABELS_3D = RNG.integers(0, 3, size=(4, 5, 6)).astype(np.uint8)
IMAGE_3D = RNG.random((3, 7, 5)).astype(np.float32)


# --------------------------------------------------------------------------------------------------- .raw
@pytest.mark.parametrize("arr", [LABELS_3D, IMAGE_3D, RNG.integers(0, 60000, (6, 9)).astype(np.uint16)])
def test_raw_roundtrip_with_sidecar(tmp_path, arr):
    scale = (2.0, 0.5, 0.25)[-arr.ndim:]
    path = write_microstructure(tmp_path / "vol.raw", arr, layer_type="labels", scale=scale)
    side = json.loads((tmp_path / "vol.raw.json").read_text())
    assert side["shape"] == list(arr.shape) and side["dtype"] == arr.dtype.name and side["byte_order"] == "little"
    assert (tmp_path / "vol.raw").stat().st_size == arr.nbytes
    ms = read_microstructure(path)
    np.testing.assert_array_equal(ms.data, arr)
    assert ms.data.dtype == arr.dtype and ms.scale == scale and ms.layer_type == "labels"


def test_raw_bytes_are_little_endian_c_order(tmp_path):
    arr = np.arange(24, dtype=np.uint16).reshape(2, 3, 4) * 257 + 1
    write_microstructure(tmp_path / "v.raw", arr)
    np.testing.assert_array_equal(np.frombuffer((tmp_path / "v.raw").read_bytes(), "<u2"), arr.ravel(order="C"))


def test_raw_without_sidecar_needs_shape(tmp_path):
    arr = RNG.integers(0, 1000, size=(3, 4, 5)).astype(np.int32)
    (tmp_path / "bare.raw").write_bytes(arr.astype("<i4").tobytes())
    with pytest.raises(InputError, match="shape="):
        read_microstructure(tmp_path / "bare.raw")
    ms = read_microstructure(tmp_path / "bare.raw", shape=(3, 4, 5), dtype="int32")
    np.testing.assert_array_equal(ms.data, arr)
    assert ms.scale is None
    as_uint8 = read_microstructure(tmp_path / "bare.raw", shape=(4, 6, 10))  # default dtype uint8
    assert as_uint8.data.dtype == np.uint8 and as_uint8.data.shape == (4, 6, 10)


def test_raw_wrong_size_and_bad_arguments(tmp_path):
    (tmp_path / "a.raw").write_bytes(bytes(100))
    with pytest.raises(InputError, match=r"holds 100 bytes .* needs 120 bytes"):
        read_microstructure(tmp_path / "a.raw", shape=(2, 3, 5), dtype="uint32")
    with pytest.raises(InputError, match=r"shape=\(100,\) has 1 axes; it must have 2 or 3"):
        read_microstructure(tmp_path / "a.raw", shape=(100,))
    with pytest.raises(InputError, match="shape entry=0 is out of range"):
        read_microstructure(tmp_path / "a.raw", shape=(10, 0, 10))
    with pytest.raises(InputError, match="not numeric"):
        read_microstructure(tmp_path / "a.raw", shape=(10, 10), dtype="complex64")


# --------------------------------------------------------------------------------------------------- .vti
def _read_with_vtk(path):
    """Array (z, y, x), spacing (x, y, z) and array name as VTK's own reader sees the file."""
    vtk = pytest.importorskip("vtk")
    from vtkmodules.util import numpy_support

    reader = vtk.vtkXMLImageDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    cells = image.GetCellData()
    assert cells.GetNumberOfArrays() == 1
    flat = numpy_support.vtk_to_numpy(cells.GetArray(0))
    nx, ny, nz = (max(d - 1, 1) for d in image.GetDimensions())
    return flat.reshape(nz, ny, nx), image.GetSpacing(), cells.GetArrayName(0)


@pytest.mark.parametrize("arr, layer_type, scale, name", [
    (LABELS_3D, "labels", (3.0, 0.5, 0.25), "phase"),
    (IMAGE_3D, "image", (1.5, 1.0, 0.2), "intensity"),
    (RNG.integers(0, 4, size=(7, 9)).astype(np.uint8), "labels", (0.5, 0.25), "phase"),
    (RNG.random((6, 4)).astype(np.float32), "image", (2.0, 1.0), "intensity"),
    (RNG.integers(-5, 500, size=(2, 3, 4)).astype(np.int32), "labels", None, "phase"),
])
def test_vti_matches_vtk_reader(tmp_path, arr, layer_type, scale, name):
    pytest.importorskip("vtk")
    path = write_microstructure(tmp_path / "vol.vti", arr, layer_type=layer_type, scale=scale)
    vol, spacing, vtk_name = _read_with_vtk(path)
    assert vtk_name == name
    expected = arr[np.newaxis] if arr.ndim == 2 else arr
    np.testing.assert_array_equal(vol, expected)
    assert vol.dtype == arr.dtype
    sc = scale or (1.0,) * arr.ndim
    assert spacing[:2] == pytest.approx((sc[-1], sc[-2]))
    if arr.ndim == 3:
        assert spacing[2] == pytest.approx(sc[0])
    ms = read_microstructure(path)
    np.testing.assert_array_equal(ms.data, arr)
    assert ms.data.dtype == arr.dtype and ms.layer_type == layer_type
    assert ms.scale == pytest.approx(sc)


def test_vti_voxel_index_matches_vtk_cell(tmp_path):
    """Voxel (z, y, x) is the VTK cell at (i=x, j=y, k=z)."""
    vtk = pytest.importorskip("vtk")
    arr = np.zeros((3, 4, 5), dtype=np.uint8)
    arr[2, 1, 3] = 9
    path = write_microstructure(tmp_path / "one.vti", arr)
    reader = vtk.vtkXMLImageDataReader()
    reader.SetFileName(path)
    reader.Update()
    image = reader.GetOutput()
    cell = image.ComputeCellId([3, 1, 2])
    assert image.GetCellData().GetArray(0).GetValue(cell) == 9


def test_vti_written_by_vtk_is_read(tmp_path):
    """Files from VTK's writer (ascii and binary point data) read with the same voxel order and spacing."""
    vtk = pytest.importorskip("vtk")
    from vtkmodules.util import numpy_support

    arr = RNG.integers(0, 200, size=(3, 4, 5)).astype(np.int16)
    image = vtk.vtkImageData()
    image.SetDimensions(5, 4, 3)
    image.SetSpacing(0.5, 0.25, 2.0)
    values = numpy_support.numpy_to_vtk(arr.ravel(), deep=True)
    values.SetName("grey")
    image.GetPointData().SetScalars(values)
    for mode in ("Ascii", "Binary"):
        writer = vtk.vtkXMLImageDataWriter()
        writer.SetFileName(str(tmp_path / f"{mode}.vti"))
        writer.SetInputData(image)
        getattr(writer, f"SetDataModeTo{mode}")()
        writer.SetCompressorTypeToNone()
        writer.Write()
        ms = read_microstructure(tmp_path / f"{mode}.vti")
        np.testing.assert_array_equal(ms.data, arr)
        assert ms.scale == pytest.approx((2.0, 0.25, 0.5))


def test_vti_ascii_cell_data_is_read(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    text = " ".join(str(v) for v in arr.ravel())
    (tmp_path / "a.vti").write_text(
        '<VTKFile type="ImageData" version="1.0" byte_order="LittleEndian">'
        '<ImageData WholeExtent="0 4 0 3 0 1" Origin="0 0 0" Spacing="0.5 0.5 0.5"><Piece Extent="0 4 0 3 0 1">'
        f'<CellData><DataArray type="UInt8" Name="phase" format="ascii">{text}</DataArray></CellData>'
        "</Piece></ImageData></VTKFile>")
    ms = read_microstructure(tmp_path / "a.vti")
    np.testing.assert_array_equal(ms.data, arr)
    assert ms.scale == (0.5, 0.5) and ms.layer_type == "labels"


def test_corrupt_and_unsupported_vti(tmp_path):
    good = (tmp_path / "good.vti")
    write_microstructure(good, LABELS_3D)
    text = good.read_text()
    (tmp_path / "cut.vti").write_text(text[: len(text) // 2])
    with pytest.raises(InputError, match="could not be read"):
        read_microstructure(tmp_path / "cut.vti")
    (tmp_path / "extent.vti").write_text(text.replace('WholeExtent="0 6 0 5 0 4"', 'WholeExtent="0 6 0 5 0 5"'))
    with pytest.raises(InputError, match="corrupt"):
        read_microstructure(tmp_path / "extent.vti")
    start = text.index("format=\"binary\">") + len("format=\"binary\">")
    payload = text[start:].split("<")[0].strip()
    (tmp_path / "short.vti").write_text(text.replace(payload, payload[:-8]))
    with pytest.raises(InputError, match="corrupt|could not be read"):
        read_microstructure(tmp_path / "short.vti")
    (tmp_path / "zlib.vti").write_text(text.replace('header_type="UInt64"',
                                                    'header_type="UInt64" compressor="vtkZLibDataCompressor"'))
    with pytest.raises(InputError, match="compressed"):
        read_microstructure(tmp_path / "zlib.vti")
    (tmp_path / "appended.vti").write_text(text.replace('format="binary"', 'format="appended" offset="0"'))
    with pytest.raises(InputError, match="appended"):
        read_microstructure(tmp_path / "appended.vti")
    (tmp_path / "poly.vti").write_text('<VTKFile type="PolyData"></VTKFile>')
    with pytest.raises(InputError, match="not a VTK XML ImageData"):
        read_microstructure(tmp_path / "poly.vti")


def test_vti_refuses_bad_scale_and_4d(tmp_path):
    with pytest.raises(InputError, match="scale"):
        write_microstructure(tmp_path / "a.vti", LABELS_3D, scale=(1.0, 1.0))
    with pytest.raises(InputError, match="2D or 3D"):
        write_microstructure(tmp_path / "b.vti", np.zeros((2, 2, 2, 2), dtype=np.uint8))


# --------------------------------------------------------------------------------------------------- folders
def test_tif_folder_in_natural_order(tmp_path):
    folder = tmp_path / "stack"
    folder.mkdir()
    slices = {n: np.full((6, 8), n, dtype=np.uint16) for n in (1, 2, 10)}
    for n, arr in slices.items():
        tifffile.imwrite(folder / f"slice_{n}.tif", arr)
    (folder / "notes.txt").write_text("not an image")
    ms = read_microstructure(folder)
    assert ms.data.shape == (3, 6, 8)
    assert [int(ms.data[i, 0, 0]) for i in range(3)] == [1, 2, 10]
    assert ms.metadata["slices"] == ["slice_1.tif", "slice_2.tif", "slice_10.tif"]


def test_png_folder(tmp_path):
    from skimage.io import imsave

    folder = tmp_path / "pngs"
    folder.mkdir()
    for n in (3, 20, 100):
        imsave(folder / f"img{n}.png", np.full((5, 4), n, dtype=np.uint8), check_contrast=False)
    ms = read_microstructure(folder)
    assert ms.data[:, 0, 0].tolist() == [3, 20, 100]


def test_bad_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    with pytest.raises(InputError, match="holds no"):
        read_microstructure(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    tifffile.imwrite(mixed / "s1.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(mixed / "s2.tif", np.zeros((4, 5), np.uint8))
    with pytest.raises(InputError, match=r"s2.tif has shape \(4, 5\)"):
        read_microstructure(mixed)


# --------------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("ext", [".npy", ".npz", ".tif", ".raw", ".vti"])
def test_object_complex_and_none_refused(tmp_path, ext):
    for bad in (np.array([{"a": 1}, None], dtype=object), np.ones((3, 3), dtype=np.complex64),
                np.array([["a", "b"]]), None):
        with pytest.raises(InputError, match="data"):
            write_microstructure(tmp_path / f"bad{ext}", bad)
    assert not list(tmp_path.iterdir())


def test_npz_bomb_refused_from_header(tmp_path, monkeypatch):
    arr = np.zeros((64, 64, 64), dtype=np.float32)  # 1 MiB, compresses to almost nothing
    write_microstructure(tmp_path / "bomb.npz", arr, layer_type="image")
    loaded = []
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1_000_000)
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", lambda self, key: loaded.append(key))
    with pytest.raises(InputError, match=r"1\.0 MB of memory"):
        read_microstructure(tmp_path / "bomb.npz")
    assert loaded == []  # refused before anything was decompressed
    with zipfile.ZipFile(tmp_path / "bomb.npz") as zf:
        assert zf.getinfo("data.npy").compress_size < 100_000


def test_raw_and_folder_memory_guard(tmp_path, monkeypatch):
    write_microstructure(tmp_path / "v.raw", np.zeros((10, 10, 10), np.uint8))
    folder = tmp_path / "stack"
    folder.mkdir()
    for n in range(3):
        tifffile.imwrite(folder / f"s{n}.tif", np.zeros((20, 20), np.uint8))
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    with pytest.raises(InputError, match="free memory"):
        read_microstructure(tmp_path / "v.raw")
    with pytest.raises(InputError, match="free memory"):
        read_microstructure(folder)


def test_supported_extensions():
    assert {".raw", ".vti"} <= set(mio.SUPPORTED_EXTENSIONS)
