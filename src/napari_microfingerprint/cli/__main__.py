"""``python -m napari_microfingerprint.cli`` is the ``microfingerprint`` command."""
import sys

from . import main

sys.exit(main())
