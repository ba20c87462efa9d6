"""Differentiable, periodic microstructure descriptors of batched 2D indicator slices, in one registry.

Importing this package registers the built-in descriptors: ``volume_fractions``, ``s2``, ``s3``, ``gram``,
``variation``, ``lineal_path`` and ``chord_lengths``.
"""
from . import correlations, gram, morphology  # noqa: F401 - register the built-in descriptors
from .registry import (
    ENTRY_POINT_GROUP,
    DescriptorSpec,
    available_descriptors,
    get_descriptor,
    register_descriptor,
)

__all__ = ["ENTRY_POINT_GROUP", "DescriptorSpec", "available_descriptors", "get_descriptor", "register_descriptor"]
