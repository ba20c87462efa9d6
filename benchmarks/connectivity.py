"""Physical fidelity of 2D -> 3D reconstructions: connectivity, topology and transport against real crops.

Data (not shipped; see ``../shared/data/MANIFEST.md``):

* the Leopard sandstone micro-CT sub-volume (100^3, PoreSpy test fixture, MIT; 1 = pore): a 2D slice is
  characterised (volume fractions, S2 with limit_to 8, variation; the defaults) and volumes are reconstructed
  from it with today's method (``connectivity="off"``, descriptors only) and the new default
  (``connectivity="auto"``); every metric of :func:`structure_report` is compared with 8 random crops of the real
  volume (at most 80 % of its side, so 64^3 for 64^3 reconstructions and 80^3 windows for 128^3 ones, the
  reconstruction being measured on as many windows of its own);
* the NETL SOFC anode (one segmented FIB-SEM slice, three phases, values 0 / 128 / 255): 64^3 from a 192^2
  crop, compared on 2D metrics (sections of the volume against windows of the whole slice), with the triple
  phase boundary density and the per-phase tortuosity of the volume;
* target tortuosity: the Leopard slice with the pore tortuosity prescribed 20 % below and above the real crops'
  (geometric) mean; the reached value per axis and the S2 error;
* the porous zone of the Leopard (y >= 55, where the sub-volume is nearly stationary; :func:`zones`): 36^3 from
  three of its sections, several seeds, against 36^3 windows of the zone;
* every low-porosity section of the Leopard (:func:`sweep`): sections along z, y and x with porosity 0.12-0.21,
  two seeds each, 64^3: percolation, largest cluster, tortuosity and the descriptor errors;
* stationary stand-ins for other rocks (:func:`packs`): the pore space between overlapping polydisperse spherical
  grains (a Boolean model, periodic 128^3) at porosity 0.13, 0.17 and 0.20, 64^3 from its section nearest the mean
  porosity against 8 crops of 64^3; with ``--floor-gammas`` also the candidate conductivity exponents of the
  connectivity floor's soft diffusivity (``c = p^gamma``; the default is 3);
* Archie's law as a two-sided target (:func:`archie`): the pore tortuosity prescribed at ``1 / eps`` (m = 2) on
  the Leopard sections z = 50, 15, 20, 8 and the three packs, against the default's one-sided floor, also with
  the pore clusters it cuts off bridged afterwards;
* closed pores (:func:`section_blobs`): the small interior pore clusters of 2D sections, per size, in the rock,
  in the input sections and in their reconstructions: what one section says about the rock's closed pores;
* the floor at the reference volume's own Archie exponent (:func:`own_exponent`), as for a user who has a 3D
  volume of the rock, on the sections of the Archie comparison;
* 3D -> 3D (:func:`from_volume`): 64^3 from the whole Leopard volume and from the whole grain packs, with
  descriptors only, with the floor at m = 2, and by default (the volume's own exponent).
* two more real rocks, 2D only (:func:`rocks_2d`): MCRpy's sandstone (fine pores) and carbonate, 64^3 from the
  whole image; the sections against windows of the image, before and after the floors of fine phases went to full
  resolution.

    python benchmarks/connectivity.py [--data ../shared/data] [--sizes 64 128] [--slices 50 15]
        [--skip leopard anode target zones sweep packs archie blobs own volume rocks] [--zone-seeds 3]
        [--floor-gammas 3 2 1.5] [--own-cases z=15 0.20]
"""
from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
from _report import report as write_report
from skimage.segmentation import clear_border

from napari_microfingerprint import archie_exponent, match, structure_report, tortuosity
from napari_microfingerprint.core import transport
from napari_microfingerprint.core.connectivity import bridge_mask

METRICS = ("volume_fraction", "specific_surface", "euler_density", "cluster_density", "largest_cluster_share",
           "percolating_axes", "chord_mean_z", "chord_mean_y", "chord_mean_x", "pore_size_mean",
           "tortuosity_z", "tortuosity_y", "tortuosity_x", "diffusivity_z", "diffusivity_y", "diffusivity_x")


def _leopard(data: Path) -> np.ndarray:
    """The Leopard sandstone sub-volume (100^3, 1 = pore)."""
    return np.load(data / "porespy" / "image_Leopard_slice100.npy").astype(np.uint8)


def _fmt(x: float) -> str:
    return "inf" if not math.isfinite(x) else f"{x:.4g}"


def _rows(case: str, reports: dict, phases) -> list[dict]:
    rows = []
    any_report = next(iter(reports.values()))
    cmp = any_report.comparison.set_index(["phase", "metric"])
    for phase in phases:
        if phase not in cmp.index.get_level_values(0):
            continue
        for metric in cmp.loc[phase].index:
            base = metric.replace(" (2D sections)", "")
            if base not in METRICS and base != "tpb_density":
                continue
            ref = cmp.loc[(phase, metric)]
            row = {"case": case, "phase": phase, "metric": metric,
                   "real mean ± sd": f"{_fmt(ref.ref_mean)} ± {_fmt(ref.ref_sd)}"}
            for name, rep in reports.items():
                mine = rep.comparison.set_index(["phase", "metric"]).loc[(phase, metric)]
                row[name] = _fmt(mine.value) + ("" if mine.inside else " *")
            rows.append(row)
    return rows


def _summary(case: str, name: str, res, rep, seconds: float) -> dict:
    out = rep.comparison
    pore = rep.phases[1].values if 1 in rep.phases else {}
    return {"case": case, "method": name, "seconds": round(seconds, 1),
            "outside 2 sd": f"{int((~out.inside).sum())}/{len(out)}",
            "pore percolating axes": int(pore.get("percolating_axes", -1)),
            "pore tortuosity (z, y, x)": ", ".join(_fmt(pore.get(f"tortuosity_{a}", math.nan)) for a in "zyx"),
            "s2 error (z)": round(res.errors["z"]["s2"], 4), "undecided": round(res.undecided, 5)}


def leopard(data: Path, sizes, slices) -> tuple[list[dict], list[dict]]:
    vol = _leopard(data)
    rows, summary = [], []
    for size in sizes:
        for z in slices if size == sizes[0] else slices[:1]:
            case = f"Leopard z={z} ({vol[z].mean():.3f}) -> {size}^3"
            reports = {}
            for name, conn in (("descriptors only", "off"), ("default (connected)", "auto")):
                start = time.perf_counter()
                res = match(vol[z], (size,) * 3, connectivity=conn, seed=0)
                seconds = time.perf_counter() - start
                rep = structure_report(res.labels, vol, n_windows=8, seed=0)
                reports[name] = rep
                summary.append(_summary(case, name, res, rep, seconds))
                print(summary[-1], flush=True)
            rows += _rows(case, reports, (1, 0))
    return rows, summary


def anode(data: Path) -> tuple[list[dict], list[dict]]:
    import tifffile

    raw = tifffile.imread(data / "netl_sofc_anode" / "anode_segmented_tiff_z050.tif")
    lab = np.searchsorted(np.unique(raw), raw).astype(np.uint8)
    crop = lab[:192, :192]
    case = "SOFC anode 192^2 -> 64^3"
    reports, summary = {}, []
    for name, conn in (("descriptors only", "off"), ("default (connected)", "auto")):
        start = time.perf_counter()
        res = match(crop, (64, 64, 64), connectivity=conn, seed=0)
        seconds = time.perf_counter() - start
        rep = structure_report(res.labels, lab, n_windows=9, seed=0)
        reports[name] = rep
        row = _summary(case, name, res, rep, seconds)
        row["tpb density (3D, 1/px^2)"] = _fmt(rep.tpb_density)
        for p in range(3):
            v = rep.phases[p].values
            row[f"phase {p}: fraction, tortuosity z/y/x"] = (
                f"{v['volume_fraction']:.3f}; " + "/".join(_fmt(v[f'tortuosity_{a}']) for a in "zyx"))
        summary.append(row)
        print(row, flush=True)
    return _rows(case, reports, (0, 1, 2, -1)), summary


def target_tortuosity(data: Path, z: int) -> list[dict]:
    vol = _leopard(data)
    rng = np.random.default_rng(0)
    taus = []
    for _ in range(8):
        o = rng.integers(0, 100 - 64 + 1, 3)
        crop = vol[o[0]:o[0] + 64, o[1]:o[1] + 64, o[2]:o[2] + 64]
        taus += [r.tortuosity for r in tortuosity(crop, 1).values() if math.isfinite(r.tortuosity)]
    real = float(np.exp(np.mean(np.log(taus))))
    rows = []
    for factor in (0.8, 1.2):
        want = factor * real
        start = time.perf_counter()
        res = match(vol[z], (64, 64, 64), tortuosity=want, seed=0)
        seconds = time.perf_counter() - start
        got = [r.tortuosity for r in tortuosity(res.labels, 1).values()]
        rows.append({"slice": z, "real tau (geometric mean of crops)": round(real, 3), "target": round(want, 3),
                     "reached z, y, x": ", ".join(f"{t:.3f}" for t in got),
                     "max rel. deviation": f"{max(abs(t / want - 1) for t in got):.3%}",
                     "s2 error (z)": round(res.errors["z"]["s2"], 4), "seconds": round(seconds, 1)})
        print(rows[-1], flush=True)
    return rows


def zones(data: Path, seeds: int) -> tuple[list[dict], list[dict]]:
    """The Leopard sub-volume is not stationary along y (porosity 0.07 above y = 45, 0.45 below y = 55), so a
    64^3 crop mixes two rocks that a reconstruction from one slice, stationary by construction, cannot. Its porous
    zone (y >= 55, 100 x 45 x 100) is nearly stationary: sections of it are reconstructed at 36^3 and compared
    with 8 windows of 36^3 of the zone."""
    vol = _leopard(data)
    profile = vol.mean(axis=(0, 2))
    zone = vol[:, 55:, :]
    print("porosity along y (every 10th):", np.round(profile[::10], 3).tolist(), "zone:", round(float(zone.mean()), 3))
    rows, totals = [], {}
    for z in (30, 50, 70):
        for seed in range(seeds):
            for name, conn in (("descriptors only", "off"), ("default (connected)", "auto")):
                start = time.perf_counter()
                res = match(zone[z], (36, 36, 36), connectivity=conn, seed=seed)
                seconds = time.perf_counter() - start
                rep = structure_report(res.labels, zone, n_windows=8, seed=0)
                out = rep.comparison
                outside = out[~out.inside]
                taus = {p: [rep.phases[p].values[f"tortuosity_{a}"] for a in "zyx"] for p in (0, 1)}
                rows.append({"section z": z, "porosity": round(float(zone[z].mean()), 3), "seed": seed,
                             "method": name, "seconds": round(seconds, 1),
                             "outside 2 sd": f"{len(outside)}/{len(out)}",
                             "solid tortuosity z/y/x": "/".join(_fmt(t) for t in taus[0]),
                             "pore tortuosity z/y/x": "/".join(_fmt(t) for t in taus[1]),
                             "chord means outside": int(outside.metric.str.startswith("chord_mean").sum()),
                             "s2 error (z)": round(res.errors["z"]["s2"], 3),
                             "what is outside": ", ".join(f"{r.phase}:{r.metric}" for r in outside.itertuples())})
                print(rows[-1], flush=True)
                t = totals.setdefault(name, {"runs": 0, "outside": 0, "chords outside": 0, "not percolating": 0})
                t["runs"] += 1
                t["outside"] += len(outside)
                t["chords outside"] += rows[-1]["chord means outside"]
                t["not percolating"] += sum(not all(math.isfinite(v) for v in taus[p]) for p in (0, 1))
    summary = [{"method": name, **t, "of metrics": t["runs"] * 32} for name, t in totals.items()]
    return rows, summary


def sweep(data: Path) -> list[dict]:
    """Four sections per axis of the Leopard with porosity 0.12-0.21 (the low-porosity rock where connectivity
    broke), two seeds each, 64^3 with the default."""
    vol = _leopard(data)
    rows = []
    for ax in range(3):
        porosity = np.moveaxis(vol, ax, 0).mean(axis=(1, 2))
        picks = [k for k in range(5, 95) if 0.12 <= porosity[k] <= 0.21]
        for k in picks[::max(1, len(picks) // 4)][:4]:
            for seed in (0, 1):
                start = time.perf_counter()
                res = match(np.take(vol, k, axis=ax), (64, 64, 64), seed=seed)
                seconds = time.perf_counter() - start
                rep = structure_report(res.labels, transport=True).phases[1].values
                rows.append({"section": f"{'zyx'[ax]}={k}", "porosity": round(float(porosity[k]), 3), "seed": seed,
                             "seconds": round(seconds, 1), "pore clusters": int(rep["clusters"]),
                             "largest cluster share": round(rep["largest_cluster_share"], 3),
                             "percolating axes": int(rep["percolating_axes"]),
                             "pore tortuosity z/y/x": "/".join(_fmt(rep[f"tortuosity_{a}"]) for a in "zyx"),
                             "s2 error (z)": round(res.errors["z"]["s2"], 3),
                             "variation error (z)": round(res.errors["z"]["variation"], 3)})
                print(rows[-1], flush=True)
    return rows


def grain_pack(n: int, porosity: float, r_min: float, r_max: float, seed: int) -> np.ndarray:
    """Pore space (1) between overlapping spheres of radii uniform in [r_min, r_max] placed at random in a periodic
    n^3 box until the porosity falls to ``porosity`` (a Boolean model: a stationary stand-in for a sandstone)."""
    rng = np.random.default_rng(seed)
    solid = np.zeros((n, n, n), dtype=bool)
    grid = np.ogrid[:n, :n, :n]
    while 1.0 - solid.mean() > porosity:
        for _ in range(20):
            centre, radius = rng.uniform(0, n, 3), rng.uniform(r_min, r_max)
            d2 = sum(np.minimum(abs(g - c), n - abs(g - c)) ** 2 for g, c in zip(grid, centre))
            solid |= d2 <= radius * radius
    return (~solid).astype(np.uint8)


#: The porosities of the grain packs.
PACK_POROSITIES = (0.13, 0.17, 0.20)


def _pack_and_section(porosity: float) -> tuple[np.ndarray, int]:
    """The 128^3 grain pack of ``porosity`` and its z section nearest its mean porosity (in the middle half)."""
    vol = grain_pack(128, porosity, 5.0, 10.0, seed=int(round(100 * porosity)))
    profile = vol.mean(axis=(1, 2))
    return vol, 32 + int(np.argmin(np.abs(profile[32:96] - vol.mean())))


def packs(gammas: list[float]) -> tuple[list[dict], list[dict]]:
    """Boolean grain packs at porosity 0.13, 0.17, 0.20: descriptors only, the default, and the default with
    other conductivity exponents of the floor's soft diffusivity."""
    summary, rows = [], []
    defaults = transport.SoftDiffusivity.__init__.__defaults__
    for porosity in PACK_POROSITIES:
        vol, z = _pack_and_section(porosity)
        case = f"grain pack {vol.mean():.3f}, section z={z} ({vol[z].mean():.3f}) -> 64^3"
        reports = {}
        runs = [("descriptors only", "off", defaults[0])] + [
            ("default" if g == defaults[0] else f"floor gamma {g:g}", "auto", g) for g in gammas]
        for name, conn, gamma in runs:
            transport.SoftDiffusivity.__init__.__defaults__ = (gamma, *defaults[1:])
            try:
                start = time.perf_counter()
                res = match(vol[z], (64, 64, 64), connectivity=conn, seed=0)
                seconds = time.perf_counter() - start
            finally:
                transport.SoftDiffusivity.__init__.__defaults__ = defaults
            rep = structure_report(res.labels, vol, n_windows=8, seed=0)
            reports[name] = rep
            row = _summary(case, name, res, rep, seconds)
            row["solid tortuosity (z, y, x)"] = ", ".join(_fmt(rep.phases[0].values[f"tortuosity_{a}"]) for a in "zyx")
            row["what is outside"] = ", ".join(f"{r.phase}:{r.metric}" for r in rep.comparison.itertuples()
                                               if not r.inside)
            summary.append(row)
            print(row, flush=True)
        rows += _rows(case, reports, (1, 0))
    return rows, summary


def _stand_ins(data: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, reference volume, input section): the Leopard at z = 50, 15, 20, 8 and the three grain packs."""
    vol = _leopard(data)
    cases = [(f"Leopard z={z}", vol, vol[z]) for z in (50, 15, 20, 8)]
    for porosity in PACK_POROSITIES:
        pack, z = _pack_and_section(porosity)
        cases.append((f"grain pack {porosity:.2f}", pack, pack[z]))
    return cases


def _bridged(labels: np.ndarray, phase: int = 1, rounds: int = 3) -> np.ndarray:
    """``labels`` with the pore clusters that :func:`~napari_microfingerprint.core.connectivity.bridge_mask`
    bridges joined to the largest one, up to ``rounds`` times (the reconstruction bridges once per decision
    stage)."""
    out = labels.copy()
    for _ in range(rounds):
        bridges = bridge_mask(out, phase)
        if not bridges.any():
            break
        out[bridges] = phase
    return out


def archie(data: Path) -> list[dict]:
    """The default's one-sided floor (tortuosity at most ``1 / eps``) against Archie's law as a two-sided target
    (the pore tortuosity prescribed at ``1 / eps`` on every axis), and that target's result with its cut-off pore
    clusters bridged afterwards; 64^3, seed 0."""
    rows = []
    for case, ref, section in _stand_ins(data):
        eps = float(section.mean())
        for name, kwargs in (("default (floor)", {}), ("Archie target 1/eps", {"tortuosity": {1: 1.0 / eps}})):
            start = time.perf_counter()
            res = match(section, (64, 64, 64), seed=0, **kwargs)
            seconds = time.perf_counter() - start
            variants = [(name, res.labels)]
            if kwargs:
                variants.append(("Archie target, then bridges", _bridged(res.labels)))
            for variant, labels in variants:
                rep = structure_report(labels, ref, n_windows=8, seed=0)
                pore, out = rep.phases[1].values, rep.comparison
                rows.append({"case": f"{case} ({eps:.3f})", "method": variant, "seconds": round(seconds, 1),
                             "outside 2 sd": f"{int((~out.inside).sum())}/{len(out)}",
                             "pore tortuosity z/y/x": "/".join(_fmt(pore[f"tortuosity_{a}"]) for a in "zyx"),
                             "largest pore cluster": round(pore["largest_cluster_share"], 3),
                             "voxels changed by bridges": int((labels != res.labels).sum()),
                             "s2 error (z)": round(res.errors["z"]["s2"], 3),
                             "what is outside": ", ".join(f"{r.phase}:{r.metric}" for r in out.itertuples()
                                                          if not r.inside)})
                print(rows[-1], flush=True)
    return rows


def own_exponent(data: Path, cases: list[str] | None = None) -> list[dict]:
    """A user who has a 3D volume of the rock: the floor's exponent set to the volume's own Archie exponent
    (``archie_exponent`` of the whole reference), 64^3 from the section of :func:`_stand_ins`, seed 0; the pore
    tortuosity against ``eps^(1 - m)`` and the 32 metrics against 8 crops."""
    rows = []
    for case, ref, section in _stand_ins(data):
        if cases and not any(case.endswith(c) for c in cases):
            continue
        eps = float(section.mean())
        m = archie_exponent(ref, 1)
        start = time.perf_counter()
        res = match(section, (64, 64, 64), seed=0, archie_exponent=m)
        seconds = time.perf_counter() - start
        rep = structure_report(res.labels, ref, n_windows=8, seed=0)
        pore, out = rep.phases[1].values, rep.comparison
        taus = [pore[f"tortuosity_{a}"] for a in "zyx"]
        bound = eps ** (1.0 - m)
        rows.append({"case": f"{case} ({eps:.3f})", "reference m": round(m, 3), "eps^(1-m)": round(bound, 2),
                     "seconds": round(seconds, 1), "outside 2 sd": f"{int((~out.inside).sum())}/{len(out)}",
                     "porosity": round(float((res.labels == 1).mean()), 3),
                     "pore tortuosity z/y/x": "/".join(_fmt(t) for t in taus),
                     "share of eps^(1-m)": "/".join(_fmt(round(t / bound, 2)) for t in taus),
                     "crops' pore tortuosity": "/".join(f"{r.ref_mean:.2f}±{r.ref_sd:.2f}" for r in out.itertuples()
                                                        if r.phase == 1 and r.metric.startswith("tortuosity")),
                     "s2 error (z)": round(res.errors["z"]["s2"], 3),
                     "what is outside": ", ".join(f"{r.phase}:{r.metric}" for r in out.itertuples() if not r.inside)})
        print(rows[-1], flush=True)
    return rows


def from_volume(data: Path) -> list[dict]:
    """A user who has a 3D scan: 64^3 from the whole reference volume (``match`` of the volume: per-axis targets),
    with descriptors only, with the floor at Archie's m = 2, and by default (the volume's own exponent,
    :func:`~napari_microfingerprint.core.reconstruction.own_exponents`); the Leopard and the three grain packs,
    seed 0; the 32 metrics against 8 crops of the volume."""
    cases = [("Leopard 100^3", _leopard(data))]
    cases += [(f"grain pack {porosity:.2f} 128^3", _pack_and_section(porosity)[0]) for porosity in PACK_POROSITIES]
    rows = []
    for case, ref in cases:
        for name, kwargs in (("descriptors only", {"connectivity": "off"}), ("floor m = 2", {"archie_exponent": 2.0}),
                             ("default (own m)", {})):
            start = time.perf_counter()
            res = match(ref, (64, 64, 64), seed=0, **kwargs)
            seconds = time.perf_counter() - start
            rep = structure_report(res.labels, ref, n_windows=8, seed=0)
            pore, out = rep.phases[1].values, rep.comparison
            m = res.settings.get("archie_exponent")
            m = m.get(1, math.nan) if isinstance(m, dict) else m
            rows.append({"case": f"{case} ({ref.mean():.3f})", "method": name,
                         "pore m": "" if m is None else round(float(m), 3),
                         "seconds": round(seconds, 1), "outside 2 sd": f"{int((~out.inside).sum())}/{len(out)}",
                         "porosity": round(float((res.labels == 1).mean()), 3),
                         "largest pore cluster": round(pore["largest_cluster_share"], 3),
                         "pore tortuosity z/y/x": "/".join(_fmt(pore[f"tortuosity_{a}"]) for a in "zyx"),
                         "crops' pore tortuosity": "/".join(f"{r.ref_mean:.2f}±{r.ref_sd:.2f}" for r in
                                                            out.itertuples() if r.phase == 1
                                                            and r.metric.startswith("tortuosity")),
                         "s2 error z/y/x": "/".join(f"{res.errors[a]['s2']:.3f}" for a in "zyx"),
                         "what is outside": ", ".join(f"{r.phase}:{r.metric}" for r in out.itertuples()
                                                      if not r.inside)})
            print(rows[-1], flush=True)
    return rows


#: MCRpy's real low-porosity rocks (Li et al. 2018; 256^2, 1 = pore): (name, file under ``mcrpy/``).
ROCKS_2D = (("sandstone", "sandstone_resized.npy"), ("carbonate", "carbonate_resized.npy"))


def rocks_2d(data: Path, seeds: int = 2) -> list[dict]:
    """Two more real rocks, 2D only (MCRpy's sandstone, porosity 0.197 with pores 2.4 px across, and carbonate,
    0.139): 64^3 from the whole 256^2 image with descriptors only, with the floors judged on the field pooled by
    2 whatever the phase's chords (the rule before ``TransportTerm.POOL_MIN_CHORD``), and by default; the 2D
    metrics of the volume's sections against 8 windows of the image, the pore's 3D percolation and tortuosity
    (no 3D reference), and the S2 and variation errors of the z slices."""
    rule = transport.TransportTerm.POOL_MIN_CHORD
    rows = []
    for name, file in ROCKS_2D:
        image = np.load(data / "mcrpy" / file).astype(np.uint8)
        for seed in range(seeds):
            for method, conn, min_chord in (("descriptors only", "off", rule), ("floors pooled (before)", "auto", 0.0),
                                            ("default", "auto", rule)):
                transport.TransportTerm.POOL_MIN_CHORD = min_chord
                try:
                    start = time.perf_counter()
                    res = match(image, (64, 64, 64), connectivity=conn, seed=seed)
                    seconds = time.perf_counter() - start
                finally:
                    transport.TransportTerm.POOL_MIN_CHORD = rule
                rep = structure_report(res.labels, image, n_windows=8, seed=0)
                pore, out = rep.phases[1].values, rep.comparison
                errors = res.errors["z"]
                rows.append({"case": f"{name} ({image.mean():.3f})", "seed": seed, "method": method,
                             "seconds": round(seconds, 1),
                             "outside 2 sd (2D)": f"{int((~out.inside).sum())}/{len(out)}",
                             "porosity": round(float((res.labels == 1).mean()), 3),
                             "largest pore cluster": round(pore["largest_cluster_share"], 3),
                             "pore axes": int(pore["percolating_axes"]),
                             "pore tortuosity z/y/x": "/".join(_fmt(pore[f"tortuosity_{a}"]) for a in "zyx"),
                             "s2 / variation error (z)": f"{errors['s2']:.3f} / {errors['variation']:.3f}",
                             "what is outside": ", ".join(
                                 f"{r.phase}:{r.metric.replace(' (2D sections)', '')} {r.value:.3g} "
                                 f"({r.ref_mean:.3g} ± {r.ref_sd:.2g})" for r in out.itertuples() if not r.inside)})
                print(rows[-1], flush=True)
    return rows


#: Size bins (pixels) of :func:`section_blobs`: 1-2, 3-10, 11-30, 31-100 and at least 101.
BLOB_BINS = (1, 3, 11, 31, 101, math.inf)


def _blobs(section: np.ndarray) -> np.ndarray:
    """Pore clusters (4-connected) of a 2D section that do not touch its border, per 10^4 pixels, by size."""
    inner = clear_border(ndi.label(section == 1)[0])
    sizes = np.bincount(inner.ravel())[1:]
    return np.histogram(sizes[sizes > 0], BLOB_BINS)[0] / section.size * 1e4


def _section_blobs(vol: np.ndarray) -> np.ndarray:
    return np.array([_blobs(np.take(vol, k, axis=ax)) for ax in range(3) for k in range(0, vol.shape[ax], 4)])


def section_blobs(data: Path) -> list[dict]:
    """Small closed pores show in sections as small pore clusters inside the section. Their density per size in
    the rock's sections (every 4th along each axis), in the input sections and in the sections of their 64^3
    reconstructions (descriptors only and the default), seed 0."""
    vol = _leopard(data)
    bins = [f"{a}-{b - 1} px" if math.isfinite(b) else f">={a} px" for a, b in zip(BLOB_BINS, BLOB_BINS[1:])]
    real = _section_blobs(vol)
    rows = [{"structure": "the rock's sections (mean ± sd)", "3D pore clusters": "",
             **{b: f"{m:.2f} ± {s:.2f}" for b, m, s in zip(bins, real.mean(0), real.std(0))}}]
    for z in (50, 15, 20):
        rows.append({"structure": f"input section z={z}", "3D pore clusters": "",
                     **{b: f"{v:.2f}" for b, v in zip(bins, _blobs(vol[z]))}})
        for name, conn in (("descriptors only", "off"), ("default", "auto")):
            labels = match(vol[z], (64, 64, 64), connectivity=conn, seed=0).labels
            rows.append({"structure": f"  its 64^3 reconstruction, {name}",
                         "3D pore clusters": ndi.label(labels == 1)[1],
                         **{b: f"{v:.2f}" for b, v in zip(bins, _section_blobs(labels).mean(0))}})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--slices", type=int, nargs="+", default=[50, 15, 20])
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["leopard", "anode", "target", "zones", "sweep", "packs", "archie", "blobs", "own",
                                 "volume", "rocks"])
    parser.add_argument("--zone-seeds", type=int, default=3, help="seeds per section of the porous zone")
    parser.add_argument("--floor-gammas", type=float, nargs="+", default=[3.0],
                        help="conductivity exponents of the floor's soft diffusivity tried on the grain packs")
    parser.add_argument("--own-cases", nargs="*", default=None,
                        help="endings of the cases of the own-exponent runs, e.g. 'z=15' '0.20' (default: all)")
    args = parser.parse_args()
    print("load:", os.getloadavg())
    if "leopard" not in args.skip:
        rows, summary = leopard(args.data, args.sizes, args.slices)
        write_report(summary, "connectivity_leopard_summary")
        write_report(rows, "connectivity_leopard_metrics")
    if "anode" not in args.skip:
        rows, summary = anode(args.data)
        write_report(summary, "connectivity_anode_summary")
        write_report(rows, "connectivity_anode_metrics")
    if "target" not in args.skip:
        write_report(target_tortuosity(args.data, args.slices[0]), "connectivity_target_tortuosity")
    if "zones" not in args.skip:
        rows, summary = zones(args.data, args.zone_seeds)
        write_report(rows, "connectivity_zones_runs")
        write_report(summary, "connectivity_zones_summary")
    if "sweep" not in args.skip:
        write_report(sweep(args.data), "connectivity_low_porosity_sweep")
    if "packs" not in args.skip:
        rows, summary = packs(args.floor_gammas)
        write_report(summary, "connectivity_packs_summary")
        write_report(rows, "connectivity_packs_metrics")
    if "archie" not in args.skip:
        write_report(archie(args.data), "connectivity_archie_target")
    if "blobs" not in args.skip:
        write_report(section_blobs(args.data), "connectivity_section_blobs")
    if "own" not in args.skip:
        write_report(own_exponent(args.data, args.own_cases), "connectivity_own_exponent")
    if "volume" not in args.skip:
        write_report(from_volume(args.data), "connectivity_from_volume")
    if "rocks" not in args.skip:
        write_report(rocks_2d(args.data), "connectivity_rocks_2d")
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
