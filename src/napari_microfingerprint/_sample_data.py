"""npe2 sample data: seeded synthetic microstructures and the bundled real micrographs."""
from __future__ import annotations

from .core.real_data import load_example
from .core.synthetic import make_grain_structure, make_lamellae, make_micrograph, make_particles, make_two_phase


def grains_2d() -> list[tuple]:
    """Potts grain growth, 256 x 256, intermediate stage."""
    return [(make_grain_structure((256, 256), stage="intermediate", seed=0), {"name": "grains 2D (Potts, intermediate)"}, "labels")]


def grains_3d() -> list[tuple]:
    """Potts grain growth, 48^3, early stage."""
    return [(make_grain_structure((48, 48, 48), stage="early", seed=0), {"name": "grains 3D (Potts, early)"}, "labels")]


def grain_micrograph() -> list[tuple]:
    """A synthetic optical micrograph of a grain structure (dark boundaries, noise, uneven light)."""
    truth = make_grain_structure((256, 256), stage="late", seed=1)
    return [(make_micrograph(truth, seed=1), {"name": "grain micrograph (synthetic)"}, "image")]


def two_phase() -> list[tuple]:
    """Thresholded Gaussian random field, volume fraction 0.4."""
    return [(make_two_phase((256, 256), volume_fraction=0.4, correlation_length=5, seed=0), {"name": "two-phase GRF (vf 0.4)"}, "labels")]


def particles() -> list[tuple]:
    """Polydisperse non-overlapping disks, area fraction 0.25."""
    return [(make_particles((256, 256), volume_fraction=0.25, mean_radius=8, seed=0), {"name": "particles (af 0.25)"}, "labels")]


def lamellae() -> list[tuple]:
    """Wavy lamellae at 30 degrees, spacing 16 px."""
    return [(make_lamellae((256, 256), spacing=16, angle=30, waviness=3, seed=0), {"name": "lamellae (30 deg, 16 px)"}, "labels")]


def ceramics() -> list[tuple]:
    """Real two-phase ceramic micrograph (Li et al. 2018, CC BY 4.0)."""
    return [(load_example("ceramics"), {"name": "ceramics (Li et al. 2018)"}, "labels")]


def alloy() -> list[tuple]:
    """Real alloy grain micrograph, boundaries 0 (Li et al. 2018, CC BY 4.0)."""
    return [(load_example("alloy"), {"name": "alloy grains (Li et al. 2018)"}, "labels")]
