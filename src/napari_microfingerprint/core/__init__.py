"""Qt-free scientific core of napari-microfingerprint (never imports napari or Qt)."""
