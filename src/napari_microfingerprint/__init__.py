"""napari-microfingerprint: segmentation, VAE fingerprints and descriptor-based 3D reconstruction of
microstructures, in napari and from plain Python.

The public API mirrors the widgets::

    from napari_microfingerprint import make_grain_structure, segment_grains, grain_statistics
"""
from .core.analysis import PropertyReport, classify, embed, fit_property, window_properties
from .core.characterization import grain_statistics, line_intercept_length, phase_fractions
from .core.connectivity import archie_exponent
from .core.descriptors import available_descriptors, register_descriptor
from .core.descriptors.sets import DescriptorSet, characterize, descriptor_error, interpolate, merge
from .core.ensemble import reconstruct_ensemble, reconstruct_ensemble_iter
from .core.fingerprint_grains import GrainHead, fit_grain_head, grains_from_fingerprint, grow_grains
from .core.fingerprint_structures import DescriptorHead, fit_descriptor_head, structure_from_fingerprint
from .core.folders import encode_folder, segment_folder
from .core.generation_quality import GenerationQuality, generation_quality, structure_quality, walk_quality
from .core.io import read_microstructure, write_microstructure
from .core.latent import (
    LatentWalk,
    decoder_probes,
    gaussian_cloud,
    interpolate_latent,
    ood_score,
    sample_latent,
    traverse,
)
from .core.morphometry import StructureReport, cluster_labels, structure_report
from .core.pixel_classifier import PixelClassifier, fit_pixel_classifier, segment_with_scribbles
from .core.real_data import load_example
from .core.reconstruction import (
    ReconstructionResult,
    ReconstructionSettings,
    match,
    reconstruct,
    reconstruct_batch_iter,
    reconstruct_iter,
    reference_exponents,
    reference_tortuosity,
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
from .core.smoothing import smooth
from .core.synthetic import make_grain_structure, make_lamellae, make_micrograph, make_particles, make_two_phase
from .core.transport import TransportResult, effective_diffusivity, tortuosity
from .core.vae.model_io import decode, decode_labels, encode, load_builtin_model, load_model, save_model
from .core.vae.training import VAEModel, train_vae, train_vae_iter
from .core.validation import InputError

__version__ = "0.1.0"

__all__ = [
    "DescriptorHead",
    "DescriptorSet",
    "GenerationQuality",
    "GrainHead",
    "InputError",
    "LatentWalk",
    "PixelClassifier",
    "PropertyReport",
    "ReconstructionResult",
    "ReconstructionSettings",
    "StructureReport",
    "TransportResult",
    "VAEModel",
    "archie_exponent",
    "available_descriptors",
    "characterize",
    "classify",
    "cluster_labels",
    "correct_illumination",
    "decode",
    "decode_labels",
    "decoder_probes",
    "denoise",
    "descriptor_error",
    "effective_diffusivity",
    "distance_to_labels",
    "embed",
    "encode",
    "encode_folder",
    "fit_descriptor_head",
    "fit_grain_head",
    "fit_pixel_classifier",
    "fit_property",
    "gaussian_cloud",
    "generation_quality",
    "grains_from_fingerprint",
    "grain_statistics",
    "grow_grains",
    "interpolate",
    "interpolate_latent",
    "labels_to_boundaries",
    "labels_to_distance",
    "line_intercept_length",
    "load_example",
    "load_builtin_model",
    "load_model",
    "make_grain_structure",
    "make_lamellae",
    "make_micrograph",
    "make_particles",
    "make_two_phase",
    "match",
    "merge",
    "normalize",
    "ood_score",
    "phase_fractions",
    "read_microstructure",
    "reconstruct",
    "reconstruct_batch_iter",
    "reconstruct_ensemble",
    "reconstruct_ensemble_iter",
    "reconstruct_iter",
    "reference_exponents",
    "reference_tortuosity",
    "register_descriptor",
    "sample_latent",
    "save_model",
    "segment_folder",
    "segment_grains",
    "segment_phases",
    "segment_with_scribbles",
    "smooth",
    "structure_from_fingerprint",
    "structure_quality",
    "structure_report",
    "train_vae",
    "train_vae_iter",
    "tortuosity",
    "traverse",
    "walk_quality",
    "window_properties",
    "write_microstructure",
]
