"""Choice of the torch device shared by every core call."""
from __future__ import annotations

import torch

from .validation import InputError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return a torch device; ``"auto"`` picks CUDA, then Apple MPS, then the CPU.

    Raises :class:`InputError` (a ``ValueError``) naming the devices that exist when the requested one does not.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but no CUDA GPU is visible; use device='auto' or 'cpu'.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("device 'mps' was requested but Apple MPS is not available; use device='auto' or 'cpu'.")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise InputError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'mps'.") from err
