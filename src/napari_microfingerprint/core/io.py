"""Reading and writing microstructures as ``.npy``, ``.npz``, ``.tif``, ``.raw`` and ``.vti`` files, keeping the
pixel scale; folders of 2D slices are read as 3D stacks.

* TIFF files written here carry a JSON image description ``{"napari_microfingerprint": {"scale": [...],
  "layer_type": ...}}`` and standard resolution tags; reading falls back to ImageJ's ``spacing`` and the
  resolution tags for TIFFs from elsewhere.
* ``.npz`` files may hold ``data`` (or a single array), ``scale`` and ``layer_type``.
* ``.raw`` files are bare little-endian bytes in C order (``(z, y, x)``, x fastest). Reading needs ``shape`` (and
  ``dtype``, default ``uint8``) unless the sidecar ``<name>.raw.json`` written next to it gives them.
* ``.vti`` files are VTK XML ImageData, one cell per voxel (``CellData``, so ParaView shows voxels), ``Spacing`` in
  VTK's x y z order, inline ``binary`` (base64, ``UInt64`` byte-count header) data. Reading accepts that and inline
  ``ascii`` data, cell or point data; compressed and appended data are refused.
* A folder of ``.tif/.tiff/.png`` slices is read in natural name order (``slice_2`` before ``slice_10``).

Nothing is unpickled (``allow_pickle=False`` everywhere) and object/complex arrays are never written. Arrays that
would need more than half the free memory are refused from their header before they are loaded.
"""
from __future__ import annotations

import base64
import json
import math
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tifffile

from .validation import InputError, check_choice, check_fits, check_shape, check_spacing

SUPPORTED_EXTENSIONS = (".npy", ".npz", ".tif", ".tiff", ".raw", ".vti")
#: Extensions of the 2D slices read from a folder.
SLICE_EXTENSIONS = (".tif", ".tiff", ".png")
_KEY = "napari_microfingerprint"
#: Integer arrays with at most this many distinct values are read as Labels.
MAX_PHASE_VALUES = 32
#: What to do when a file is too large for the free memory.
FIT_ADVICE = "free memory, or crop or downsample the data before loading it"
LAYER_TYPES = ("labels", "image")
_VTK_TYPES = {
    "int8": "Int8", "uint8": "UInt8", "int16": "Int16", "uint16": "UInt16", "int32": "Int32", "uint32": "UInt32",
    "int64": "Int64", "uint64": "UInt64", "float32": "Float32", "float64": "Float64",
}
_NUMPY_TYPES = {v: k for k, v in _VTK_TYPES.items()}
_VTI_NAMES = {"labels": "phase", "image": "intensity"}

# (data, scale, layer_type, metadata) as returned by the per-format readers
_Loaded = tuple[np.ndarray, "tuple[float, ...] | None", "str | None", dict]


@dataclass
class Microstructure:
    """An array read from disk with the layer type it should become and its pixel scale."""

    data: np.ndarray
    layer_type: str
    scale: tuple[float, ...] | None = None
    metadata: dict = field(default_factory=dict)


def guess_layer_type(arr: np.ndarray) -> str:
    """``"labels"`` for boolean arrays, integer arrays with few values (phases) and integer arrays whose values
    run 0..N or 1..N without gaps (grain label maps, except 8-bit data); ``"image"`` otherwise."""
    if arr.dtype == bool:
        return "labels"
    if not np.issubdtype(arr.dtype, np.integer):
        return "image"
    values = np.unique(arr)
    if values.size <= MAX_PHASE_VALUES:
        return "labels"
    if arr.dtype.itemsize > 1 and values[0] >= 0 and values[0] <= 1 and values[-1] - values[0] + 1 == values.size:
        return "labels"
    return "image"


# --------------------------------------------------------------------------------------------------- shared checks
def _is_numeric(dtype: np.dtype) -> bool:
    return dtype.kind == "b" or np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)


def _check_dtype(dtype, what: str) -> np.dtype:
    """``dtype`` as a numeric numpy dtype (boolean, integer or real float), or :class:`InputError`."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise InputError(f"{what}: dtype {dtype!r} is not a numpy dtype ({err}); use e.g. 'uint8', 'uint16', "
                         "'float32'.") from err
    if not _is_numeric(dt):
        raise InputError(f"{what}: dtype {dt} is not numeric; use a boolean, integer or float dtype such as 'uint8'.")
    return dt


def _natural_key(name: str) -> list:
    """Sort key that orders ``slice_2`` before ``slice_10``."""
    parts = re.split(r"(\d+)", name.lower())
    return [int(part) if i % 2 else part for i, part in enumerate(parts)]


# --------------------------------------------------------------------------------------------------- numpy files
def _npy_header_nbytes(fh: BinaryIO) -> int:
    """Bytes of the array whose ``.npy`` header starts at the current position of ``fh`` (nothing else is read)."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return math.prod(shape) * dtype.itemsize


def _read_npy(p: Path) -> _Loaded:
    with open(p, "rb") as fh:
        check_fits(_npy_header_nbytes(fh), p.name, FIT_ADVICE)
    return np.load(p, allow_pickle=False), None, None, {}


def _check_npz_members(p: Path, keys: list[str]) -> None:
    """Refuse an ``.npz`` whose members ``keys`` would not fit in memory, from their headers alone."""
    with zipfile.ZipFile(p) as zf:
        total = 0
        for key in keys:
            with zf.open(f"{key}.npy") as fh:
                total += _npy_header_nbytes(fh)
    check_fits(total, f"{p.name} (arrays {keys})", FIT_ADVICE)


def _read_npz(p: Path) -> _Loaded:
    scale, layer_type = None, None
    with np.load(p, allow_pickle=False) as npz:
        keys = list(npz.files)
        key = "data" if "data" in keys else (keys[0] if len(keys) == 1 else None)
        if key is None:
            raise InputError(f"{p.name} holds several arrays {keys} and none is called 'data'.")
        _check_npz_members(p, [k for k in (key, "scale", "layer_type") if k in keys])
        data = npz[key]
        if "scale" in keys:
            scale = tuple(float(s) for s in npz["scale"])
        if "layer_type" in keys and str(npz["layer_type"]) in ("image", "labels"):
            layer_type = str(npz["layer_type"])
    return data, scale, layer_type, {}


# --------------------------------------------------------------------------------------------------- TIFF
def _tiff_scale(tif: tifffile.TiffFile, ndim: int) -> tuple[tuple[float, ...] | None, str | None]:
    page = tif.pages[0]
    try:
        info = json.loads(page.description)[_KEY]
        scale = info.get("scale")
        return (tuple(float(s) for s in scale) if scale else None), info.get("layer_type")
    except (ValueError, KeyError, TypeError):
        pass
    tags = page.tags
    if "XResolution" in tags and "YResolution" in tags:
        xr, yr = tags["XResolution"].value, tags["YResolution"].value
        if xr[0] and yr[0] and (xr != (1, 1) or yr != (1, 1)):
            sx, sy = xr[1] / xr[0], yr[1] / yr[0]
            z = (tif.imagej_metadata or {}).get("spacing", 1.0) if ndim == 3 else None
            return ((float(z), sy, sx) if ndim == 3 else (sy, sx)), None
    return None, None


def _read_tiff(p: Path) -> _Loaded:
    with tifffile.TiffFile(p) as tif:
        series = tif.series[0]
        check_fits(math.prod(series.shape) * np.dtype(series.dtype).itemsize, p.name, FIT_ADVICE)
        data = tif.asarray()
        scale, layer_type = _tiff_scale(tif, data.ndim)
    return data, scale, layer_type, {}


# --------------------------------------------------------------------------------------------------- slice folders
def _slice_files(folder: Path) -> list[Path]:
    files = [f for f in folder.iterdir()
             if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in SLICE_EXTENSIONS]
    if not files:
        raise InputError(f"Folder {folder.name} holds no {'/'.join(SLICE_EXTENSIONS)} slices; choose a folder of 2D "
                         "image slices, or a single file.")
    return sorted(files, key=lambda f: _natural_key(f.name))


def _read_slice(f: Path) -> np.ndarray:
    """One 2D slice; greyscale stored as RGB(A) is reduced to one channel, colour images are refused."""
    if f.suffix.lower() == ".png":
        from skimage.io import imread

        arr = imread(f)
    else:
        arr = tifffile.imread(f)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and np.array_equal(arr[..., 0], arr[..., 1]) \
            and np.array_equal(arr[..., 0], arr[..., 2]):
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputError(f"Slice {f.name} has shape {arr.shape}; every slice in a folder must be a 2D greyscale "
                         "image (convert colour or multi-page files first).")
    return arr


def _read_folder(folder: Path) -> _Loaded:
    files = _slice_files(folder)
    first = _read_slice(files[0])
    check_fits(first.nbytes * len(files), f"Folder {folder.name} ({len(files)} slices of {first.shape})",
               FIT_ADVICE)
    slices = [first]
    for f in files[1:]:
        arr = _read_slice(f)
        if arr.shape != first.shape:
            raise InputError(f"Slice {f.name} has shape {arr.shape} but {files[0].name} has {first.shape}; all "
                             f"slices in {folder.name} must have the same size (remove or crop the odd ones).")
        slices.append(arr)
    meta = {"slices": [f.name for f in files]}
    layer_type = None
    if files[0].suffix.lower() != ".png":
        with tifffile.TiffFile(files[0]) as tif:
            slice_scale, layer_type = _tiff_scale(tif, 2)
        if slice_scale is not None:
            meta["slice_scale"] = slice_scale  # the spacing between slices is unknown, so no 3D scale
    return np.stack(slices), None, layer_type, meta


# --------------------------------------------------------------------------------------------------- raw
def _raw_sidecar(p: Path) -> dict | None:
    side = p.with_name(p.name + ".json")
    if not side.is_file():
        return None
    try:
        info = json.loads(side.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{side.name} is not valid JSON ({err}); fix or delete it, or pass shape= and dtype=.") \
            from err
    if not isinstance(info, dict):
        raise InputError(f"{side.name} should hold a JSON object with 'shape' and 'dtype'; fix or delete it.")
    return info


def _raw_layout(p: Path, shape, dtype) -> tuple[tuple[int, ...], np.dtype, dict]:
    """Shape, dtype (with byte order) and sidecar info of a ``.raw`` file; explicit arguments win over the sidecar."""
    info = _raw_sidecar(p) or {}
    if shape is None:
        if "shape" not in info:
            raise InputError(f"{p.name} is a headerless .raw file, so its shape is needed: pass --shape Z Y X on the "
                             "command line or shape=(z, y, x) in Python (and dtype=, default uint8).")
        shape = info["shape"]
    if dtype is None:
        dtype = info.get("dtype")  # the sidecar's dtype also serves an explicit shape
    dims = check_shape(shape, f"{p.name}: shape")
    dt = _check_dtype(dtype if dtype is not None else np.uint8, p.name)
    order = ">" if info.get("byte_order") == "big" and list(info.get("shape", [])) == list(dims) else "<"
    return dims, dt.newbyteorder(order), info


def _read_raw(p: Path, shape=None, dtype=None) -> _Loaded:
    dims, dt, info = _raw_layout(p, shape, dtype)
    expected, actual = math.prod(dims) * dt.itemsize, p.stat().st_size
    if expected != actual:
        raise InputError(f"{p.name} holds {actual} bytes but shape {dims} with dtype {dt.name} needs {expected} "
                         "bytes; check shape= (--shape) and dtype= (--dtype).")
    check_fits(expected, p.name, FIT_ADVICE)
    data = np.fromfile(p, dtype=dt).reshape(dims).astype(dt.newbyteorder("="), copy=False)
    same = list(info.get("shape", [])) == list(dims)
    scale = info.get("scale") if same else None
    layer_type = info.get("layer_type") if same and info.get("layer_type") in ("image", "labels") else None
    return data, (tuple(float(s) for s in scale) if scale else None), layer_type, {}


# --------------------------------------------------------------------------------------------------- vti
def _ints(text: str | None, n: int, what: str) -> list[int]:
    values = [int(v) for v in (text or "").split()]
    if len(values) != n:
        raise InputError(f"{what} should hold {n} numbers, not {text!r}; the .vti file is corrupt.")
    return values


def _vti_root(p: Path) -> ET.Element:
    root = ET.parse(p).getroot()
    if root.tag != "VTKFile" or root.get("type") != "ImageData":
        raise InputError(f"{p.name} is not a VTK XML ImageData file (root {root.tag!r}, type {root.get('type')!r}); "
                         "only .vti image data can be read.")
    if root.get("compressor"):
        raise InputError(f"{p.name} is compressed ({root.get('compressor')}), which is not supported; re-save it "
                         "(e.g. from ParaView) with Data Mode 'Binary' or 'Ascii' and Compressor Type 'None'.")
    if root.get("header_type", "UInt32") not in ("UInt32", "UInt64"):
        raise InputError(f"{p.name} has header_type {root.get('header_type')!r}; only UInt32 and UInt64 are known.")
    return root


def _vti_array(p: Path, piece: ET.Element) -> tuple[ET.Element, bool]:
    """The data array of a piece and whether it holds cell (voxel) data; ``phase``/``intensity`` are preferred."""
    for kind in ("CellData", "PointData"):
        group = piece.find(kind)
        arrays = group.findall("DataArray") if group is not None else []
        if arrays:
            wanted = [a for a in arrays if a.get("Name") in (*_VTI_NAMES.values(), group.get("Scalars"))]
            return (wanted or arrays)[0], kind == "CellData"
    raise InputError(f"{p.name} holds no CellData or PointData array; there is nothing to read.")


def _decode_binary(text: str, header: np.dtype, what: str) -> bytes:
    """Bytes of an inline base64 DataArray: a byte-count header then the data, encoded together or apart."""
    n_chars = 4 * -(-header.itemsize // 3)
    if len(text) > n_chars and text[n_chars - 1] == "=":  # header encoded on its own
        head, body = base64.b64decode(text[:n_chars], validate=True), base64.b64decode(text[n_chars:], validate=True)
    else:
        raw = base64.b64decode(text, validate=True)
        head, body = raw[:header.itemsize], raw[header.itemsize:]
    if len(head) != header.itemsize or int(np.frombuffer(head, header)[0]) != len(body):
        raise InputError(f"{what}: the byte-count header does not match the {len(body)} data bytes; the file is "
                         "corrupt or truncated.")
    return body


def _vti_values(p: Path, root: ET.Element, array: ET.Element) -> np.ndarray:
    """The flat values of a DataArray (ascii or inline binary), in file order."""
    vtk_type, fmt = array.get("type"), array.get("format", "ascii")
    if vtk_type not in _NUMPY_TYPES:
        raise InputError(f"{p.name}: DataArray type {vtk_type!r} is not supported; use one of {sorted(_NUMPY_TYPES)}.")
    if array.get("NumberOfComponents", "1") != "1":
        raise InputError(f"{p.name}: DataArray {array.get('Name')!r} has {array.get('NumberOfComponents')} components;"
                         " only scalar (1-component) arrays can be read.")
    order = ">" if root.get("byte_order") == "BigEndian" else "<"
    dt = np.dtype(_NUMPY_TYPES[vtk_type]).newbyteorder(order)
    text = "".join((array.text or "").split())
    if fmt == "ascii":
        return np.array((array.text or "").split()).astype(dt)
    if fmt == "binary":
        header = np.dtype(_NUMPY_TYPES[root.get("header_type", "UInt32")]).newbyteorder(order)
        body = _decode_binary(text, header, p.name)
        if len(body) % dt.itemsize:
            raise InputError(f"{p.name}: {len(body)} data bytes are not a whole number of {vtk_type} values; the file "
                             "is corrupt.")
        return np.frombuffer(body, dt).copy()  # writable, like every other reader
    raise InputError(f"{p.name}: DataArray format {fmt!r} is not supported (appended data); re-save it with Data Mode "
                     "'Binary' (inline) or 'Ascii' and Compressor Type 'None'.")


def _read_vti(p: Path) -> _Loaded:
    root = _vti_root(p)
    image = root.find("ImageData")
    pieces = image.findall("Piece") if image is not None else []
    if len(pieces) != 1:
        raise InputError(f"{p.name} holds {len(pieces)} ImageData pieces; exactly one is supported.")
    ext = _ints(image.get("WholeExtent"), 6, f"{p.name}: WholeExtent")
    spacing = [float(s) for s in (image.get("Spacing") or "1 1 1").split()]
    array, on_cells = _vti_array(p, pieces[0])
    nx, ny, nz = (ext[2 * i + 1] - ext[2 * i] + (0 if on_cells else 1) for i in range(3))
    nx, ny, nz = (max(n, 1) for n in (nx, ny, nz))  # a flat extent still has one layer of cells
    values = _vti_values(p, root, array)
    if values.size != nx * ny * nz:
        raise InputError(f"{p.name}: array {array.get('Name')!r} holds {values.size} values but the extent needs "
                         f"{nx}x{ny}x{nz} = {nx * ny * nz}; the file is corrupt.")
    data = values.astype(values.dtype.newbyteorder("="), copy=False).reshape(nz, ny, nx)
    scale = (spacing[2], spacing[1], spacing[0]) if len(spacing) == 3 else None
    if nz == 1:
        data, scale = data[0], scale[1:] if scale else None
    layer_type = {v: k for k, v in _VTI_NAMES.items()}.get(array.get("Name"))
    meta = {"vti_array": array.get("Name"), "vti_origin": image.get("Origin"), "vti_cell_data": on_cells}
    return data, scale, layer_type, meta


# --------------------------------------------------------------------------------------------------- reading
def read_microstructure(path: str | Path, shape=None, dtype=None) -> Microstructure:
    """Read a ``.npy``, ``.npz``, ``.tif/.tiff``, ``.raw`` or ``.vti`` file, or a folder of 2D slices, as a
    :class:`Microstructure`; raise :class:`InputError` with the reason when it cannot be read (unknown extension,
    corrupt file, object arrays, no array inside, too large for memory).

    ``shape`` (2 or 3 ints) and ``dtype`` (default ``uint8``) describe ``.raw`` files and are ignored otherwise; a
    ``<name>.raw.json`` sidecar next to the file supplies them when ``shape`` is not given.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if p.is_dir():
        reader = _read_folder
    elif ext in SUPPORTED_EXTENSIONS:
        reader = {".npy": _read_npy, ".npz": _read_npz, ".raw": lambda q: _read_raw(q, shape, dtype),
                  ".vti": _read_vti}.get(ext, _read_tiff)
    else:
        raise InputError(f"{p.name}: extension {ext!r} is not supported; use one of {', '.join(SUPPORTED_EXTENSIONS)}"
                         f" or a folder of {'/'.join(SLICE_EXTENSIONS)} slices.")
    if not p.exists():
        raise InputError(f"path={str(path)!r} does not exist; check the name and the folder.")
    try:
        data, scale, layer_type, meta = reader(p)
    except InputError:
        raise
    except Exception as err:  # corrupt or truncated files raise many exception types
        raise InputError(f"{p.name} could not be read ({type(err).__name__}: {err}); is the file complete?") from err
    if scale is not None and len(scale) != data.ndim:
        scale = None
    return Microstructure(data, layer_type or guess_layer_type(data), scale, {"source": str(p), **meta})


# --------------------------------------------------------------------------------------------------- writing
def _writable_array(data) -> np.ndarray:
    """``data`` as a boolean, integer or real float array; ``None``, ragged, object, complex and text are refused."""
    if data is None:
        raise InputError("data is None; pass the array to write (a numpy array of numbers).")
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as err:
        raise InputError(f"data could not be turned into an array ({err}); pass a rectangular numeric array.") from err
    if not _is_numeric(arr.dtype):
        raise InputError(f"data has dtype {arr.dtype}; only boolean, integer and real float arrays can be written "
                         "(object, complex and text arrays are refused so that nothing is pickled). Convert it first, "
                         "e.g. data.astype(np.float32).")
    return arr


def _write_raw(p: Path, arr: np.ndarray, layer_type: str, scale, metadata: dict | None) -> None:
    with open(p, "wb") as fh:
        np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tofile(fh)
    info = {
        "shape": list(arr.shape), "dtype": arr.dtype.name, "byte_order": "little", "order": "C",
        "axes": "zyx"[-arr.ndim:] if arr.ndim <= 3 else None,
        "scale": [float(s) for s in scale] if scale is not None else None,
        "layer_type": layer_type, "metadata": metadata or {},
        "read_with": f"numpy.fromfile(path, dtype='<{arr.dtype.str[1:]}').reshape({tuple(arr.shape)})",
    }
    p.with_name(p.name + ".json").write_text(json.dumps(info, indent=2, default=str))


def _vti_spacing(scale, ndim: int, name: str) -> tuple[float, float, float]:
    """VTK ``Spacing`` (x, y, z) from our (z, y, x) or (y, x) scale; a 2D slice gets the finer in-plane spacing."""
    if scale is None:
        return 1.0, 1.0, 1.0
    sc = [float(s) for s in scale]
    if len(sc) != ndim or not all(math.isfinite(s) and s > 0 for s in sc):
        raise InputError(f"{name}: scale {tuple(scale)} must hold {ndim} positive numbers, one per axis of the data.")
    return (sc[2], sc[1], sc[0]) if ndim == 3 else (sc[1], sc[0], min(sc))


def _vti_payload(vol: np.ndarray, name: str) -> tuple[str, str]:
    """VTK type name and base64 text (UInt64 byte count + little-endian C-order bytes, encoded together)."""
    if vol.dtype == bool:
        vol = vol.astype(np.uint8)
    elif vol.dtype == np.float16:
        vol = vol.astype(np.float32)
    if vol.dtype.name not in _VTK_TYPES:
        raise InputError(f"{name}: dtype {vol.dtype} has no VTK equivalent; convert to one of {sorted(_VTK_TYPES)}.")
    body = np.ascontiguousarray(vol, dtype=vol.dtype.newbyteorder("<")).tobytes()
    payload = np.array([len(body)], dtype="<u8").tobytes() + body
    return _VTK_TYPES[vol.dtype.name], base64.b64encode(payload).decode("ascii")


def _write_vti(p: Path, arr: np.ndarray, layer_type: str, scale) -> None:
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise InputError(f"{p.name}: a .vti file needs a non-empty 2D or 3D array, not shape {arr.shape}.")
    spacing = _vti_spacing(scale, arr.ndim, p.name)
    vol = arr[np.newaxis] if arr.ndim == 2 else arr
    nz, ny, nx = vol.shape
    vtk_type, text = _vti_payload(vol, p.name)
    name = _VTI_NAMES.get(layer_type, "phase")
    extent = f"0 {nx} 0 {ny} 0 {nz}"
    xml = (
        '<?xml version="1.0"?>\n'
        '<VTKFile type="ImageData" version="1.0" byte_order="LittleEndian" header_type="UInt64">\n'
        f'  <ImageData WholeExtent="{extent}" Origin="0 0 0" Spacing="{" ".join(repr(s) for s in spacing)}">\n'
        f'    <Piece Extent="{extent}">\n'
        f'      <CellData Scalars="{name}">\n'
        f'        <DataArray type="{vtk_type}" Name="{name}" NumberOfComponents="1" format="binary">\n'
        f"          {text}\n"
        "        </DataArray>\n"
        "      </CellData>\n"
        "    </Piece>\n"
        "  </ImageData>\n"
        "</VTKFile>\n"
    )
    p.write_text(xml, encoding="ascii")


def _write_tiff(p: Path, arr: np.ndarray, layer_type: str, scale, metadata: dict | None) -> None:
    sc = [float(s) for s in scale] if scale is not None else None
    desc = json.dumps({_KEY: {"scale": sc, "layer_type": layer_type, **(metadata or {})}}, default=str)
    kwargs = {}
    if sc is not None:
        kwargs["resolution"] = (1.0 / sc[-1], 1.0 / sc[-2])
    tifffile.imwrite(p, arr, description=desc, metadata=None, **kwargs)


def write_microstructure(path: str | Path, data, layer_type: str = "labels",
                         scale=None, metadata: dict | None = None) -> str:
    """Write an array to ``.tif``/``.tiff`` (with scale and layer type in the description), ``.npy``
    (array only), ``.npz`` (``data`` and ``scale``), ``.raw`` (bare little-endian C-order bytes plus a
    ``<name>.raw.json`` sidecar) or ``.vti`` (VTK ImageData, one cell per voxel). Returns the path written.

    Raises :class:`InputError` for ``data=None``, for object, complex or text arrays (never pickled), for a
    ``scale`` whose length is not the array's dimensions, and for ``.raw``/``.vti`` data that is not 2D or 3D.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise InputError(f"{p.name}: extension {ext!r} is not supported; use one of {', '.join(SUPPORTED_EXTENSIONS)}.")
    check_choice(layer_type, "layer_type", LAYER_TYPES)
    arr = _writable_array(data)
    if arr.size == 0:
        raise InputError(f"data is empty (shape {arr.shape}); there is nothing to write.")
    if scale is not None:
        scale = check_spacing(scale, arr.ndim, "scale")
    if ext in (".raw", ".vti") and arr.ndim not in (2, 3):
        raise InputError(f"{p.name}: {ext} holds 2D or 3D scalar data, but the array has shape {arr.shape}; select "
                         "a 2D or 3D part (an RGB image: convert it to grey first).")
    if arr.dtype == np.int64 and layer_type == "labels" and arr.size and arr.min() >= 0 and arr.max() < 2**31:
        arr = arr.astype(np.int32)
    if ext == ".npy":
        np.save(p, arr, allow_pickle=False)
    elif ext == ".npz":
        extra = {"scale": np.asarray(scale, dtype=float)} if scale is not None else {}
        np.savez_compressed(p, data=arr, layer_type=np.array(layer_type), **extra)
    elif ext == ".raw":
        _write_raw(p, arr, layer_type, scale, metadata)
    elif ext == ".vti":
        _write_vti(p, arr, layer_type, scale)
    else:
        _write_tiff(p, arr, layer_type, scale, metadata)
    return str(p)
