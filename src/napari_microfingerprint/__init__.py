"""napari-microfingerprint: segmentation, VAE fingerprints and descriptor-based 3D reconstruction of
microstructures, in napari and from plain Python.

The public API mirrors the widgets::

    from napari_microfingerprint import make_grain_structure, segment_grains, grain_statistics
"""
from .core.characterization import grain_statistics, line_intercept_length, phase_fractions
from .core.descriptors import available_descriptors, register_descriptor
from .core.descriptors.sets import DescriptorSet, characterize, descriptor_error, interpolate, merge
from .core.io import read_microstructure, write_microstructure
from .core.real_data import load_example
from .core.reconstruction import (
    ReconstructionResult,
    ReconstructionSettings,
    match,
    reconstruct,
    reconstruct_iter,
)
from .core.segmentation import (
    correct_illumination,
    denoise,
    distance_to_labels,
    labels_to_boundaries,
    labels_to_distance,
    normalize,
    segment_grains,
    segment_phases,
)
from .core.synthetic import make_grain_structure, make_lamellae, make_micrograph, make_particles, make_two_phase
from .core.validation import InputError

__version__ = "0.1.0"

__all__ = [
    "DescriptorSet",
    "InputError",
    "ReconstructionResult",
    "ReconstructionSettings",
    "available_descriptors",
    "characterize",
    "descriptor_error",
    "interpolate",
    "match",
    "merge",
    "reconstruct",
    "reconstruct_iter",
    "register_descriptor",
    "correct_illumination",
    "denoise",
    "distance_to_labels",
    "grain_statistics",
    "labels_to_boundaries",
    "labels_to_distance",
    "line_intercept_length",
    "load_example",
    "make_grain_structure",
    "make_lamellae",
    "make_micrograph",
    "make_particles",
    "make_two_phase",
    "normalize",
    "phase_fractions",
    "read_microstructure",
    "segment_grains",
    "segment_phases",
    "write_microstructure",
]
