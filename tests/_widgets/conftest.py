import pytest

from napari_microfingerprint._widgets import _common
from napari_microfingerprint._widgets import encoding as enc_module
from napari_microfingerprint._widgets import reconstruction as rec_module
from napari_microfingerprint._widgets import scribbles as scrib_module
from napari_microfingerprint._widgets import segmentation as seg_module
from napari_microfingerprint._widgets import traversal as trav_module


@pytest.fixture
def messages(monkeypatch):
    """Capture the napari notifications that the widgets raise, by kind."""
    got: dict[str, list[str]] = {"error": [], "info": [], "warning": []}
    monkeypatch.setattr(_common, "show_error", lambda m: got["error"].append(m))
    monkeypatch.setattr(seg_module, "show_error", lambda m: got["error"].append(m))
    for module in (_common, seg_module, rec_module, enc_module, trav_module, scrib_module):
        monkeypatch.setattr(module, "show_info", lambda m: got["info"].append(m))
    for module in (enc_module, rec_module):
        monkeypatch.setattr(module, "show_warning", lambda m: got["warning"].append(m))
    return got
