"""One registry of microstructure descriptors, open to third-party packages through an entry-point group.

A descriptor is a function ``f(indicator, limit_to, **params) -> Tensor`` of a batch of 2D phase-indicator
slices ``indicator`` of shape ``(B, P, H, W)`` (``P`` indicator functions, values in [0, 1]); it returns one
flat descriptor vector per slice, shape ``(B, K)``. Descriptors are periodic and, where marked, differentiable.
A 3D volume is handled by the caller, which batches all slices along one axis into one call.

Third-party packages register more descriptors by exposing a module in the entry-point group
``napari_microfingerprint.descriptors``; importing the module runs its :func:`register_descriptor` decorators.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

import torch

from ..validation import InputError

ENTRY_POINT_GROUP = "napari_microfingerprint.descriptors"

DescriptorFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class DescriptorSpec:
    """A registered descriptor: its function, whether gradients flow through it, and a one-line summary."""

    name: str
    func: DescriptorFn
    differentiable: bool
    summary: str


_REGISTRY: dict[str, DescriptorSpec] = {}
_PLUGINS_LOADED = False


def register_descriptor(name: str, differentiable: bool = True) -> Callable[[DescriptorFn], DescriptorFn]:
    """Decorator that registers ``func`` as descriptor ``name`` (the first docstring line is its summary)."""

    def wrap(func: DescriptorFn) -> DescriptorFn:
        if name in _REGISTRY and _REGISTRY[name].func is not func:
            raise ValueError(f"a descriptor called {name!r} is already registered")
        summary = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else name
        _REGISTRY[name] = DescriptorSpec(name, func, differentiable, summary)
        return func

    return wrap


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def available_descriptors() -> dict[str, DescriptorSpec]:
    """All registered descriptors, built-in and from plugins."""
    _load_plugins()
    return dict(_REGISTRY)


def get_descriptor(name: str) -> DescriptorSpec:
    """The registered descriptor ``name``; :class:`InputError` listing the known names otherwise."""
    known = available_descriptors()
    if name not in known:
        raise InputError(f"unknown descriptor {name!r}; available: {', '.join(sorted(known))}.")
    return known[name]
